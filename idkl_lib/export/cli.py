"""The command line of :func:`idkl_lib.export.export_onnx`::

    python -m idkl_lib.export --checkpoint C --onnx model.onnx [--feature shared] [--flip] [--images DIR...]
        [--batch 16] [--tolerance 1e-4] [--device cpu] [--debug]

Exit status: 0 written (parity printed), 2 bad input or a failed parity check (nothing written), 1 an unexpected error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..features.backends import FEATURES
from ..utils.errors import OneLineArgumentParser, run_body
from .onnx_export import DEFAULT_TOLERANCE, ParityError, export_onnx

__all__ = ["main"]

PROG = "python -m idkl_lib.export"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog=PROG, description="Export a checkpoint's retrieval path (image -> normalised feature) to ONNX, checked."
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="training checkpoint")
    parser.add_argument("--onnx", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--feature", choices=FEATURES, default="shared", help="retrieval feature (default shared)")
    parser.add_argument("--flip", action="store_true", help="export flip averaging")
    parser.add_argument(
        "--images", nargs="+", type=Path, default=None, help="parity images (default: the checkpoint's test images)"
    )
    parser.add_argument("--batch", type=int, default=16, help="images in the parity check (default 16)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="max abs difference (1e-4)")
    parser.add_argument("--device", default="cpu", help="where PyTorch computes the reference (default cpu)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (else one line)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))

    def body() -> None:
        result = export_onnx(
            args.checkpoint,
            args.onnx,
            feature=args.feature,
            flip=args.flip,
            images=args.images,
            batch=args.batch,
            tolerance=args.tolerance,
            device=args.device,
        )
        info = result.info
        print(result.parity.line())
        print(
            f"wrote {result.path} ({result.size_bytes / 2**20:.1f} MiB, {result.seconds:.1f} s): images float32 "
            f"(batch, 3, {info.height}, {info.width}) -> features (batch, {info.dim}), L2-normalised; preprocessing: "
            f"resize to {info.height}x{info.width}, /255, mean {list(info.mean)}, std {list(info.std)} (in the file's "
            f"metadata); model {info.fingerprint}"
        )

    return run_body(PROG, body, debug=args.debug, bad_input=(ParityError, ImportError))
