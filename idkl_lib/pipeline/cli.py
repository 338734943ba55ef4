"""The command line of :func:`idkl_lib.pipeline.run.run_pipeline`::

python -m idkl_lib.pipeline --run-dir reports/demo [--preset demo|ci|full] [-p NAME VALUE ...]
    [--notebooks-dir notebooks] [--only 03_evaluate ...] [--resume | --overwrite] [--kernel python3] [--log-output]
    [--debug]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from idkl_lib.pipeline.execute import PipelineError
from idkl_lib.pipeline.run import run_pipeline
from idkl_lib.pipeline.steps import DEFAULT_STEPS, PRESETS, add_parameter_option, parameters
from idkl_lib.utils.errors import CommandParser, run_command

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m idkl_lib.pipeline",
        description="Run the idkl_lib notebooks in order with papermill and write a report folder.",
        epilog=f"Steps: {', '.join(step.name for step in DEFAULT_STEPS)}. Presets: {', '.join(PRESETS)}. "
        "Sweeps over parameter grids: python -m idkl_lib.experiments.sweep.",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="report folder, e.g. reports/demo")
    parser.add_argument("--preset", default="demo", choices=[*PRESETS, "none"], help="parameter preset (default demo)")
    add_parameter_option(parser)
    parser.add_argument("--notebooks-dir", type=Path, default=Path("notebooks"), help="folder with the notebooks")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (by step name)")
    parser.add_argument("--resume", action="store_true", help="skip steps finished with the same parameters")
    parser.add_argument("--overwrite", action="store_true", help="replace another pipeline run's results in --run-dir")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 a step failed or an unexpected error, 2 a user
    error: bad arguments, a protected or locked run folder, a real dataset's folder as synthetic data_root). Errors
    are one line; ``--debug`` shows the traceback. Sweeps have their own command
    (``python -m idkl_lib.experiments.sweep``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    for arg in argv:
        if arg.split("=")[0] in ("--sweep", "--experiment"):
            parser.error(
                f"{arg.split('=')[0]} belongs to sweeps, which have their own command: "
                "python -m idkl_lib.experiments.sweep --run-dir DIR --sweep NAME=V1,V2 (or --experiment FILE.yaml)"
            )
    return run_command(parser, _pipeline_command, argv, failures=(PipelineError,))


def _pipeline_command(args: argparse.Namespace) -> int:
    if args.log_output:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")
    params = parameters(args.parameter)
    run_pipeline(
        args.run_dir,
        preset=None if args.preset == "none" else args.preset,
        params=params,
        notebooks_dir=args.notebooks_dir,
        resume=args.resume,
        kernel_name=args.kernel,
        only=args.only,
        log_output=args.log_output,
        overwrite=args.overwrite,
    )
    return 0
