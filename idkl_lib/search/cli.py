"""The command line of :func:`idkl_lib.search.search`::

    python -m idkl_lib.search --gallery feats.npz --query IMAGE_OR_DIR_OR_NPZ... [--topk 10] [--rerank]
        [--html out.html] [--json out.json] [--csv out.csv] [--model C_OR_ONNX] [--query-modality visible|infrared]
        [--modality-rule cross|same|any] [--camera-rule none|protocol|all|same_identity] [--skip-corrupt]
        [--device cpu] [--debug]

Exit status: 0 done, 2 bad input (features of another model, a query modality the gallery lacks, an unreadable
image), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..features.cli import MODALITY_CHOICES
from ..features.files import FeatureFile
from ..utils.errors import OneLineArgumentParser, run_body
from .output import write_csv, write_html, write_json
from .query import load_queries
from .ranking import CAMERA_RULES, MODALITY_RULES, SearchResult, search

__all__ = ["main"]

PROG = "python -m idkl_lib.search"
_SHOWN_QUERIES = 5


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG, description="Rank a gallery feature file for query images (or a query feature file)."
    )
    parser.add_argument(
        "--gallery", required=True, type=Path, help="gallery feature file (python -m idkl_lib.features)"
    )
    parser.add_argument(
        "--query", required=True, nargs="+", type=Path, help="query images, folders, .txt lists, or one .npz file"
    )
    parser.add_argument("--topk", type=int, default=10, help="gallery images per query (default 10)")
    parser.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1 20, k2 6, lambda 0.3)")
    parser.add_argument("--html", type=Path, default=None, help="write an HTML page with thumbnails")
    parser.add_argument("--json", type=Path, default=None, help="write the ranked lists as JSON")
    parser.add_argument("--csv", type=Path, default=None, help="write the ranked lists as CSV")
    parser.add_argument(
        "--model", type=Path, default=None, help="checkpoint or .onnx for query images (default: the gallery's)"
    )
    parser.add_argument(
        "--query-modality", choices=tuple(MODALITY_CHOICES), default=None, help="modality of the query images"
    )
    parser.add_argument(
        "--modality-rule", choices=MODALITY_RULES, default="cross", help="which gallery modality (default cross)"
    )
    parser.add_argument(
        "--camera-rule", choices=CAMERA_RULES, default="none", help="same-camera removal (default none)"
    )
    parser.add_argument("--skip-corrupt", action="store_true", help="leave out undecodable query images")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (else one line)")
    return parser


def _short(path: str) -> str:
    """The last three parts of a path (``cam3/0001/0002.jpg``)."""
    return "/".join(Path(path).parts[-3:])


def _summary(result: SearchResult) -> str:
    lines = []
    for query in result.as_records()[:_SHOWN_QUERIES]:
        best = ", ".join(f"{_short(r['path'])} ({r['distance']:.3f})" for r in query["results"][:3])
        lines.append(f"  {_short(query['path'])}: {best}")
    more = len(result.query) - _SHOWN_QUERIES
    return "\n".join(lines + ([f"  ... and {more} more queries"] if more > 0 else []))


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.topk < 1:
        parser.error(f"--topk must be at least 1, got {args.topk}")

    def body() -> None:
        gallery = FeatureFile.load(args.gallery)
        modality = None if args.query_modality is None else MODALITY_CHOICES[args.query_modality]
        queries = load_queries(
            gallery, args.query, model=args.model, device=args.device, modality=modality, skip_corrupt=args.skip_corrupt
        )
        result = search(
            gallery,
            queries,
            topk=args.topk,
            rerank=args.rerank,
            modality_rule=args.modality_rule,
            camera_rule=args.camera_rule,
            gallery_name=f"gallery {args.gallery}",
            query_name="the queries",
        )
        print(
            f"{len(result.query)} queries against {len(gallery)} gallery images ({result.settings['camera_rule']} "
            f"camera rule, {result.settings['modality_rule']} modality); nearest:"
        )
        print(_summary(result))
        for path, write in ((args.html, write_html), (args.json, write_json), (args.csv, write_csv)):
            if path is not None:
                print(f"wrote {write(result, path)}")

    return run_body(PROG, body, debug=args.debug, bad_input=(ImportError,))
