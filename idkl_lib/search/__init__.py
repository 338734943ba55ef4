"""Search a gallery feature file with query images or features (``python -m idkl_lib.search``): the evaluation's
ranking (:mod:`idkl_lib.search.ranking`), the modality and camera rules, re-ranking, and HTML / JSON / CSV output."""

from .output import CSV_COLUMNS, write_csv, write_html, write_json
from .query import gallery_model, load_queries
from .ranking import CAMERA_RULES, MODALITY_RULES, SearchError, SearchResult, search

__all__ = [
    "CAMERA_RULES",
    "CSV_COLUMNS",
    "MODALITY_RULES",
    "SearchError",
    "SearchResult",
    "gallery_model",
    "load_queries",
    "search",
    "write_csv",
    "write_html",
    "write_json",
]
