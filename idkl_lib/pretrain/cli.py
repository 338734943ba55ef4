"""The command line of the pretrained start (``python -m idkl_lib.pretrain``, ``idkl-pretrain``): make (or reuse) the
cached file and print its path.

Example (the demo's backbone)::

    python -m idkl_lib.pretrain --arch resnet18 --base-width 8 --ids 1000 --epochs 10
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import torch

from ..utils.errors import CommandParser, run_command
from .cache import LABEL, PretrainConfig, default_cache_dir, ensure_pretrained


def _parser() -> argparse.ArgumentParser:
    d = PretrainConfig()
    p = CommandParser(prog="python -m idkl_lib.pretrain", description=LABEL)
    p.add_argument("--arch", default=d.arch, choices=("resnet18", "resnet50"), help="backbone (default %(default)s)")
    p.add_argument("--base-width", type=int, default=d.base_width, help="stem width (default %(default)s)")
    p.add_argument("--height", type=int, default=d.height, help="image height (default %(default)s)")
    p.add_argument("--width", type=int, default=d.width, help="image width (default %(default)s)")
    p.add_argument("--ids", type=int, default=d.num_ids, help="population identities (default %(default)s)")
    p.add_argument("--images-per-id", type=int, default=d.images_per_id, help="visible images per id (%(default)s)")
    p.add_argument("--epochs", type=int, default=d.epochs, help="training epochs (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="images per step (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="rendering and training seed (default %(default)s)")
    p.add_argument("--first-pid", type=int, default=d.first_pid, help="first identity number (reserved range)")
    p.add_argument("--cache-dir", default=None, help=f"cache folder (default {default_cache_dir()})")
    p.add_argument("--cpu-threads", type=int, default=1, help="torch CPU threads, 0: torch's default (default 1)")
    p.add_argument("--force", action="store_true", help="rebuild even a valid cached file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Make or reuse the file and print its path last; exit 2 on bad input or a refused configuration (one line,
    ``--debug`` for the traceback)."""
    return run_command(_parser(), _pretrain_command, argv)


def _pretrain_command(args: argparse.Namespace) -> int:
    if args.cpu_threads > 0:
        torch.set_num_threads(args.cpu_threads)
    cfg = PretrainConfig(
        arch=args.arch,
        base_width=args.base_width,
        height=args.height,
        width=args.width,
        num_ids=args.ids,
        images_per_id=args.images_per_id,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        first_pid=args.first_pid,
    )
    print(ensure_pretrained(cfg, args.cache_dir, force=args.force))
    return 0
