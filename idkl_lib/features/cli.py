"""The command line of :func:`idkl_lib.features.extract_image_features`::

    python -m idkl_lib.features --checkpoint C --images DIR_OR_LIST... --out feats.npz
        [--split all|test|query|gallery|train] [--feature shared|specific|concat] [--flip] [--modality visible|infrared]
        [--skip-corrupt] [--batch-size 64] [--num-workers 0] [--device cpu] [--no-progress] [--debug]

``--checkpoint`` also takes an ONNX export (``.onnx``, run with onnxruntime). Exit status: 0 written, 2 bad input
(missing or undecodable image, empty folder, unreadable model), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..data.image_files import SPLITS, collect_images
from ..data.records import INFRARED, VISIBLE
from ..utils.errors import OneLineArgumentParser, run_body
from .backends import FEATURES
from .extract import extract_image_features

__all__ = ["MODALITY_CHOICES", "main"]

PROG = "python -m idkl_lib.features"
MODALITY_CHOICES = {"visible": VISIBLE, "infrared": INFRARED}


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG,
        description="Write the L2-normalised retrieval features of images (and their dataset labels) to a .npz file.",
    )
    parser.add_argument("--checkpoint", "--model", dest="model", required=True, type=Path, help="checkpoint or .onnx")
    parser.add_argument(
        "--images", required=True, nargs="+", type=Path, help="image files, folders (recursive) or .txt lists of paths"
    )
    parser.add_argument("--out", required=True, type=Path, help="feature file to write (.npz)")
    parser.add_argument("--split", choices=SPLITS, default="all", help="for a dataset root: which split (default all)")
    parser.add_argument("--feature", choices=FEATURES, default=None, help="retrieval feature (default shared)")
    parser.add_argument("--flip", action="store_true", default=None, help="average each image with its mirror image")
    parser.add_argument(
        "--modality", choices=tuple(MODALITY_CHOICES), default=None, help="modality of images outside a dataset layout"
    )
    parser.add_argument("--skip-corrupt", action="store_true", help="leave out undecodable images (else an error)")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default 64)")
    parser.add_argument("--num-workers", type=int, default=0, help="data-loading processes (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (else one line)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")

    def body() -> None:
        modality = None if args.modality is None else MODALITY_CHOICES[args.modality]
        images = collect_images(args.images, split=args.split, skip_corrupt=args.skip_corrupt, modality=modality)
        for path, reason in images.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        result = extract_image_features(
            args.model,
            images,
            args.out,
            device=args.device,
            feature=args.feature,
            flip=args.flip,
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            progress=not args.no_progress,
        )
        labelled = f", {result.layout} layout (identities, cameras, modalities)" if result.layout else ""
        print(
            f"wrote {args.out}: {len(result)} images x {result.dim} ({result.meta['feature']} feature, "
            f"flip={result.meta['flip']}, {result.meta['backend']}){labelled}; model {result.fingerprint}"
        )

    return run_body(PROG, body, debug=args.debug, bad_input=(ImportError,))
