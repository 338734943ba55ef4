"""The command line of :func:`idkl_lib.train.train`: one ``--option`` per :class:`~idkl_lib.config.TrainConfig` field,
its help, type and choices read from the field's metadata. The recipe fields (image size, P x K, loss preset, lr,
epochs, ...) default to the recipe of ``--dataset`` (:meth:`TrainConfig.for_dataset`); an option given overrides it.

    python -m idkl_lib.train --dataset regdb --data-root /data/RegDB --out-dir runs/regdb --images-per-id 8

Every option has a long name that no abbreviation of torchrun's own options matches (``--ids-per-batch`` and
``--images-per-id`` for P and K; ``--p``/``--k`` stay as aliases for plain ``python -m``), so all of them pass through
``torchrun --nproc_per_node N -m idkl_lib.train ...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Sequence
from typing import Any

import torch.distributed as dist

from idkl_lib.config import TrainConfig, format_loss_overrides
from idkl_lib.config.recipe import RECIPE_FIELDS, recipe_help
from idkl_lib.runs import CHECKPOINT_NAME
from idkl_lib.train.loop import NonFiniteLossError, load_dataset, train
from idkl_lib.utils.errors import USER_ERRORS, OneLineArgumentParser, one_line
from idkl_lib.utils.runtime import resolve_device

__all__ = ["OPTION_NAMES", "build_arg_parser", "main"]

OPTION_NAMES: dict[str, tuple[str, ...]] = {"p": ("--ids-per-batch", "--p"), "k": ("--images-per-id", "--k")}
"""Fields whose option is not ``--<field-name>``: the long name first, then aliases. ``--p`` cannot pass through
torchrun (its parser reads it as an ambiguous abbreviation of ``--print-completion``)."""


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _parse_bool_or_path(text: str) -> bool | str:
    try:
        return _parse_bool(text)
    except argparse.ArgumentTypeError:
        return text


def _parse_optional_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "null", ""):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or none, got {text!r}") from None


def build_arg_parser() -> argparse.ArgumentParser:
    """An argument parser with one ``--option`` per :class:`TrainConfig` field (defaults from the dataclass; the
    recipe fields are left out of the result when not given, so that :meth:`TrainConfig.for_dataset` fills them)."""
    parser = OneLineArgumentParser(
        prog="python -m idkl_lib.train",
        description="Train IDKL on a VI-ReID dataset (one option per TrainConfig field; bad values exit with code 2).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for f in dataclasses.fields(TrainConfig):
        flags = OPTION_NAMES.get(f.name, ("--" + f.name.replace("_", "-"),))
        kind = str(f.type)
        default: Any = f.default
        if default is dataclasses.MISSING and callable(f.default_factory):
            default = f.default_factory()
        options: dict[str, Any] = {"default": default, "help": f.metadata["help"].replace("%", "%%")}
        if kind == "bool":  # a bare --flag means true
            options.update(type=_parse_bool, nargs="?", const=True, metavar="{true,false}")
        elif kind == "bool | str":
            options.update(type=_parse_bool_or_path, metavar="{true,false,PATH}")
        elif kind == "int | None":
            options.update(type=_parse_optional_int, metavar="{INT,none}")
        elif kind == "tuple[int, ...]":
            options.update(type=int, nargs="*", default=list(default), metavar="EPOCH")
        elif kind == "dict[str, float]":  # the text form, parsed by TrainConfig (name=weight,...)
            options.update(type=str, default=format_loss_overrides(default), metavar="NAME=WEIGHT,...")
        else:
            options.update(type={"int": int, "float": float, "str": str}[kind], choices=f.metadata["choices"])
        if f.name in RECIPE_FIELDS:
            options.update(default=argparse.SUPPRESS, help=f"{options['help']} ({recipe_help(f.name)})")
        parser.add_argument(*flags, dest=f.name, **options)
    parser.add_argument("--resume", action="store_true", help=f"continue from <out-dir>/{CHECKPOINT_NAME} if present")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (batch logs)")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (else one line)")
    return parser


def _flag_names(message: str) -> str:
    """``TrainConfig.loss_overrides=...`` -> ``--loss-overrides=...``: name the command-line option."""
    return re.sub(r"TrainConfig\.(\w+)", lambda m: OPTION_NAMES.get(m[1], ("--" + m[1].replace("_", "-"),))[0], message)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code.

    Exit codes: 0 success; 2 a user error (unknown option, invalid value, unavailable device, missing or damaged
    dataset, an out-dir that is a file, read-only, full, locked by another run or holding another run's results, a
    pretrained file that is not a state dict, a checkpoint that does not fit: one line naming the thing and the fix,
    no traceback); 1 training diverged (:class:`NonFiniteLossError`; the last good checkpoint is kept and named) or
    an unexpected error (one line; ``--debug`` shows the traceback).
    """
    parser = build_arg_parser()
    args = vars(parser.parse_args(argv))
    resume, no_progress, debug = args.pop("resume"), args.pop("no_progress"), args.pop("debug")
    if "milestones" in args:
        args["milestones"] = tuple(args["milestones"])
    try:
        cfg = TrainConfig.for_dataset(args.pop("dataset"), **args)  # the dataset's recipe, then the options given
    except ValueError as exc:
        parser.error(_flag_names(str(exc)))  # exits with code 2
    try:
        resolve_device(cfg.device)
    except ValueError as exc:
        parser.error(f"--device: {exc}")
    try:
        dataset = load_dataset(cfg)
    except (ValueError, OSError) as exc:
        if debug:
            raise
        parser.error(f"--data-root {cfg.data_root}: {' '.join(str(exc).split())}")
    try:
        result = train(cfg, dataset=dataset, resume=resume, progress=not no_progress)
    except Exception as exc:
        if debug:
            raise
        code = 1 if isinstance(exc, NonFiniteLossError) or not isinstance(exc, USER_ERRORS) else 2
        print(f"{parser.prog}: error: {_flag_names(one_line(exc, (NonFiniteLossError,)))}", file=sys.stderr)
        return code
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    for name, res in result.metrics.items():
        mean = res.get("mean", res)
        print(f"{name}: " + "  ".join(f"{k} {v:.2f}" for k, v in mean.items() if isinstance(v, float)))
    print(f"checkpoint: {result.checkpoint}  ({result.images_per_second:.1f} img/s)")
    return 0
