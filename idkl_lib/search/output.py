"""A search result as files: a self-contained HTML page with thumbnails, a JSON file and a CSV file (each written
atomically)."""

from __future__ import annotations

import csv
import html
import io
import json
import os
from pathlib import Path
from typing import Any

from ..utils.io import atomic_write_json, atomic_write_text
from ..viz.images import load_image, png_data_uri
from ..viz.theme import MATCH_COLOR, MISMATCH_COLOR
from .ranking import SearchResult

__all__ = ["CSV_COLUMNS", "write_csv", "write_html", "write_json"]

CSV_COLUMNS = (
    "query_index",
    "query_path",
    "query_pid",
    "query_camid",
    "query_modality",
    "rank",
    "gallery_index",
    "gallery_path",
    "distance",
    "pid",
    "camid",
    "modality",
    "match",
)
_THUMB = (128, 64)  # height, width of a thumbnail
_UNKNOWN_COLOR = "#999999"
_QUERY_COLOR = "#555555"
_STYLE = """
body { font-family: sans-serif; margin: 1em; color: #222; }
.row { display: flex; gap: 8px; align-items: flex-start; margin: 12px 0; padding-bottom: 8px;
       border-bottom: 1px solid #ddd; overflow-x: auto; }
.tile { text-align: center; font-size: 11px; min-width: 80px; }
.tile img { border: 4px solid; display: block; margin: 0 auto 2px auto; }
.missing { width: 64px; height: 128px; display: flex; align-items: center; justify-content: center;
           background: #eee; border: 4px solid #ccc; margin: 0 auto; }
.settings { font-size: 12px; color: #555; }
"""


def write_json(result: SearchResult, path: str | os.PathLike[str]) -> Path:
    """``{"settings": ..., "gallery": {...}, "queries": [{path, pid, camid, modality, results: [...]}]}``."""
    payload = {
        "settings": result.settings,
        "gallery": {"size": len(result.gallery), "model": result.gallery.meta.get("model")},
        "queries": result.as_records(),
    }
    return atomic_write_json(path, payload)


def write_csv(result: SearchResult, path: str | os.PathLike[str]) -> Path:
    """One row per (query, rank) with :data:`CSV_COLUMNS`; unknown labels are -1, an unknown match is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for query in result.as_records():
        head = [query["query_index"], query["path"], query["pid"], query["camid"], query["modality"]]
        for r in query["results"]:
            match = "" if r["match"] is None else int(r["match"])
            row = [r["rank"], r["gallery_index"], r["path"], f"{r['distance']:.6f}", r["pid"], r["camid"]]
            writer.writerow([*head, *row, r["modality"], match])
    return atomic_write_text(path, buffer.getvalue())


def _thumbnail(path: str, color: str) -> str:
    """An embedded thumbnail framed in ``color``, or a placeholder when the image cannot be read any more."""
    try:
        uri = png_data_uri(load_image(path, _THUMB))
    except (OSError, ValueError):
        return '<div class="missing">missing</div>'
    return f'<img src="{uri}" width="{_THUMB[1]}" height="{_THUMB[0]}" style="border-color:{color}">'


def _labels(item: dict[str, Any]) -> str:
    parts = [f"pid {item['pid']}" if item["pid"] >= 0 else "", f"cam {item['camid']}" if item["camid"] >= 0 else ""]
    parts.append(item["modality"] if item["modality"] != "unknown" else "")
    return html.escape(" · ".join(p for p in parts if p))


def _tile(item: dict[str, Any], caption: str, color: str) -> str:
    title = html.escape(item["path"], quote=True)
    name = html.escape(Path(item["path"]).name)
    return (
        f'<div class="tile" title="{title}">{_thumbnail(item["path"], color)}'
        f"<div>{html.escape(caption)}</div><div>{_labels(item)}</div><div>{name}</div></div>"
    )


def write_html(result: SearchResult, path: str | os.PathLike[str], title: str = "Search results") -> Path:
    """A page with one row per query: its thumbnail, then its top-k gallery thumbnails with rank and distance; a
    bluish-green frame is the query's identity, an orange one another identity, grey unknown. Thumbnails are
    embedded (the page works offline and when moved)."""
    rows = []
    for query in result.as_records():
        tiles = [_tile(query, f"query #{query['query_index']}", _QUERY_COLOR)]
        for r in query["results"]:
            color = _UNKNOWN_COLOR if r["match"] is None else (MATCH_COLOR if r["match"] else MISMATCH_COLOR)
            mark = "" if r["match"] is None else ("✓ " if r["match"] else "✗ ")
            tiles.append(_tile(r, f"{mark}rank {r['rank']} · d {r['distance']:.4f}", color))
        rows.append(f'<div class="row">{"".join(tiles)}</div>')
    settings = html.escape(json.dumps(result.settings, sort_keys=True))
    page = (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{len(result.query)} queries, gallery of {len(result.gallery)} images; frame "
        f"<span style='color:{MATCH_COLOR}'>✓ same identity</span>, "
        f"<span style='color:{MISMATCH_COLOR}'>✗ another identity</span>, grey: identity unknown.</p>"
        f"<p class='settings'>{settings}</p>{''.join(rows)}</body></html>\n"
    )
    return atomic_write_text(path, page)
