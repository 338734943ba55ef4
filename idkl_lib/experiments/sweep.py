"""Sweeps: the pipeline's training and evaluation notebooks over a grid of parameters, one run folder per cell.

Command line (``idkl-sweep`` is the same command)::

    python -m idkl_lib.experiments.sweep --run-dir reports/abl --preset demo \\
        --sweep loss_preset=baseline,full --sweep seed=0,1,2 [-p NAME VALUE ...] [--only 02_train 03_evaluate]
    python -m idkl_lib.experiments.sweep --run-dir reports/abl --experiment experiments/ablation.yaml [--resume]
    python -m idkl_lib.experiments.sweep ... --jobs 4 [--gpus-per-cell 1]          # cells in parallel here
    python -m idkl_lib.experiments.sweep ... --executor slurm --partition gpu --time-min 720 --gpus-per-cell 1 \\
        [--cpus-per-cell 8] [--mem-gb 32] [--sbatch account=lab] [--array-parallelism 8] [--no-wait]
    python -m idkl_lib.experiments.sweep --status reports/abl [--wait]           # collect submitted cells

Grid. Every ``--sweep NAME=V1,V2,...`` (values parsed like ``-p`` values; commas inside ``[...]`` do not split) and
every ``grid:`` entry of the experiment file is one axis; the cells are their cartesian product, in the order given.
A name is any notebook parameter (``loss_preset`` with the presets of :mod:`idkl_lib.config.ablation`, ``w_tgsa_inter``,
``seed``, ``synthetic_modality_evidence``, ...). Fixed parameters come from the pipeline preset, the file's
``params:`` and ``-p`` (in that priority order, then the grid). The experiment file: :mod:`idkl_lib.experiments.grid`.

Where cells run (:mod:`idkl_lib.experiments.executors`): each cell in a process of its own; ``local`` runs
``--jobs`` of them at a time (default 1, or one per GPU), ``slurm`` submits the grid as one job array through
submitit (:mod:`idkl_lib.experiments.cluster`). A cell gives the same numbers wherever it runs. Cells that train
continue their own checkpoint when run again (notebook 02's ``resume="auto"``), so a requeued or resumed cell does
not start over.

Sweep folder::

    <run_dir>/<cell>/             a complete pipeline run folder per cell (index.html, metrics.json, ..., cell.json)
    <run_dir>/sweep.json          the grid, fixed parameters and every cell's state (done / failed + error + log)
    <run_dir>/results.csv, .json  one row per cell: its parameters, every scalar metric, training time
    <run_dir>/index.html          the comparison report (notebook 06 run by the pipeline), linking the cells

Only the coordinator (this command, holding the sweep folder's lock: a second one is refused, naming the first)
writes ``sweep.json`` and the results, atomically after every cell, so an interrupted or killed sweep loses no
finished cell. A failing, crashed or killed cell is recorded with its log and the sweep goes on. ``--resume`` skips
cells that finished with the same parameters (a cell whose process finished after its coordinator died counts) and
reruns the others (inside a rerun cell, the pipeline's own resume skips finished steps). ``--no-wait`` (Slurm)
returns once the array is submitted; ``--status DIR`` then collects what finished, ``--status DIR --wait`` waits for
the rest and writes the comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idkl_lib.experiments.cluster import make_executor
from idkl_lib.experiments.executors import EXECUTOR_KINDS, CellTask, Executor, LocalExecutor
from idkl_lib.experiments.grid import (
    DEFAULT_SWEEP_STEPS,
    Experiment,
    _check,
    cell_hash,
    load_experiment,
    parse_sweep,
    split_values,
)
from idkl_lib.experiments.sweep_state import WAITING, SweepBook, cell_row, collect_results, settle
from idkl_lib.pipeline import PRESETS, PipelineError, Step, run_pipeline
from idkl_lib.pipeline.steps import add_parameter_option, parameters
from idkl_lib.runs import (
    COMPARE_STEP,
    SWEEP_NAME,
    read_status,
    read_sweep,
)
from idkl_lib.utils.errors import CommandParser, run_command
from idkl_lib.utils.lock import folder_lock

__all__ = [
    "Experiment",
    "SweepResult",
    "cell_row",
    "collect_results",
    "load_experiment",
    "main",
    "parse_sweep",
    "run_sweep",
    "split_values",
    "sweep_status",
]

COMPARE_NOTEBOOK = COMPARE_STEP
LOCK_PURPOSE = "run by a sweep coordinator"


@dataclass(frozen=True)
class SweepResult:
    """Outcome of :func:`run_sweep`: the folder, one row per finished cell, the cells that failed and those still
    running or queued (a sweep that did not wait)."""

    run_dir: Path
    rows: list[dict[str, Any]]
    failed: list[str]
    index_html: Path | None
    waiting: list[str] = field(default_factory=list)


def _task_params(experiment: Experiment, params: Mapping[str, Any], declared: set[str]) -> dict[str, Any]:
    """The pipeline parameters of a cell: fixed, then grid; training continues its own checkpoint."""
    merged = {**experiment.params, **params}
    if "resume" in declared and "resume" not in merged:
        merged["resume"] = "auto"
    return merged


def run_sweep(
    run_dir: str | Path,
    experiment: Experiment,
    notebooks_dir: str | Path = "notebooks",
    resume: bool = False,
    kernel_name: str = "python3",
    log_output: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> SweepResult:
    """Run every cell of ``experiment`` into ``run_dir/<cell>/`` with ``executor`` (default: one cell at a time
    here, or one per GPU) and collect the results (module docstring).

    Raises:
        idkl_lib.utils.lock.FolderLockTimeout: another coordinator runs this sweep (named).
        ValueError: a bad grid or parameter (before any cell runs), or cells of a resubmitted sweep still queued.
    """
    from tqdm.auto import tqdm

    notebooks_dir = Path(notebooks_dir).resolve()
    run_dir = Path(run_dir).resolve()
    declared = _check(experiment, notebooks_dir)
    executor = executor or LocalExecutor()
    cells = experiment.cells()
    grid_params = dict(cells)
    run_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(run_dir, purpose=LOCK_PURPOSE):
        book = SweepBook(run_dir, experiment, cells, executor=executor.kind, notebooks_dir=str(notebooks_dir))
        tasks, busy = [], []
        for name, params in cells:
            entry = book.entry(name)
            settle(run_dir, name, entry, executor.kind)
            if (
                resume
                and entry["state"] == "done"
                and (read_status(run_dir / name, on_error="warn") or {}).get("state") == "done"
            ):
                continue
            if entry["state"] in WAITING:
                busy.append(f"{name} ({entry.get('job_id') or entry.get('pid')})")
                continue
            digest = cell_hash(experiment, params)
            task_params = _task_params(experiment, params, declared)
            tasks.append(CellTask(str(run_dir), name, digest, task_params, experiment.preset, experiment.steps,
                                  str(notebooks_dir), kernel_name, log_output, resume))  # fmt: skip
        if busy and not resume:
            raise ValueError(f"cell(s) still running or queued from an earlier submission: {', '.join(busy)}; "
                             f"--resume leaves them running, --status {run_dir} --wait waits for them")  # fmt: skip
        book.save()
        bar = tqdm(total=len(tasks), desc="sweep", unit="cell", disable=None if progress else True, dynamic_ncols=True)
        bar.write(f"{len(tasks)} of {len(cells)} cell(s) to run: {executor.describe()}")

        def started(task: CellTask, info: dict[str, Any]) -> None:
            entry = book.entry(task.name)
            entry.clear()
            entry.update(params=grid_params[task.name], hash=task.digest, **info)
            entry.update(state="running" if executor.waits else "submitted", started=time.strftime("%Y-%m-%dT%H:%M:%S"))
            book.save_state()

        def finished(task: CellTask, outcome: dict[str, Any]) -> None:
            book.entry(task.name).update({k: v for k, v in outcome.items() if v is not None or k == "error"})
            book.save()
            bar.update()
            if outcome["state"] == "done":
                bar.write(f"cell {task.name} done in {outcome['duration_s']:.0f} s")
            else:
                bar.write(f"cell {task.name} {outcome['state'].upper()}: {outcome['error']}")

        try:
            executor.run(run_dir, tasks, started, finished)
        finally:
            bar.close()
            rows = book.save()
        waiting = book.waiting()
    return _finish(run_dir, experiment, rows, waiting, notebooks_dir, kernel_name)


def _finish(
    run_dir: Path, experiment: Experiment, rows: list[dict[str, Any]], waiting: list[str], notebooks_dir: Path,
    kernel_name: str,
) -> SweepResult:  # fmt: skip
    """The result, with notebook 06's comparison once no cell is left running."""
    failed = [row["cell"] for row in rows if row["state"] == "failed"]
    index = None
    if experiment.compare and not waiting and len(rows) > len(failed):
        try:
            index = run_pipeline(
                run_dir,
                None,
                steps=[Step(COMPARE_NOTEBOOK)],
                notebooks_dir=notebooks_dir,
                kernel_name=kernel_name,
                verbose=False,
            ).index_html
        except PipelineError as exc:  # the cells' results are written already
            print(f"the comparison notebook failed: {exc}", file=sys.stderr)
    return SweepResult(run_dir, rows, failed, index, waiting)


def sweep_status(
    run_dir: str | Path, wait: bool = False, poll_s: float = 30.0, kernel_name: str = "python3"
) -> SweepResult:
    """Collect a sweep whose cells run without a coordinator (``--no-wait``, or a coordinator that died): every
    running or submitted cell's state from its ``cell.json``, process or Slurm job; the results; and, once no cell
    is left running (``wait`` waits for that), the comparison.

    Raises:
        ValueError: ``run_dir`` is no sweep folder.
        idkl_lib.utils.lock.FolderLockTimeout: a coordinator runs this sweep (named).
    """
    run_dir = Path(run_dir).resolve()
    with folder_lock(run_dir, purpose=LOCK_PURPOSE):
        sweep = read_sweep(run_dir)
        if sweep is None:
            raise ValueError(f"--status {run_dir}: no sweep folder (no {SWEEP_NAME}); give the folder of --run-dir")
        experiment = Experiment(
            grid=sweep["grid"], preset=sweep.get("preset"), params=sweep.get("params") or {},
            steps=tuple(sweep.get("steps") or DEFAULT_SWEEP_STEPS), compare=bool(sweep.get("compare", True)),
            description=sweep.get("description", ""),
        )  # fmt: skip
        book = SweepBook(run_dir, experiment, experiment.cells(), executor=sweep.get("executor", "local"),
                     notebooks_dir=sweep.get("notebooks_dir", "notebooks"))  # fmt: skip
        while True:
            for name, _ in book.cells:
                settle(run_dir, name, book.entry(name), book.state["executor"])
            rows = book.save()
            waiting = book.waiting()
            if not (wait and waiting):
                break
            time.sleep(poll_s)
    return _finish(run_dir, experiment, rows, waiting, Path(book.state["notebooks_dir"]), kernel_name)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m idkl_lib.experiments.sweep",
        description="Run the training/evaluation notebooks over a parameter grid, one run folder per cell.",
    )
    parser.add_argument("--run-dir", type=Path, help="sweep folder, e.g. reports/ablation")
    parser.add_argument("--experiment", type=Path, help="YAML experiment file (grid, preset, params, steps)")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="one grid axis")
    parser.add_argument("--preset", choices=[*PRESETS, "none"], help="pipeline preset (default: the file's, or demo)")
    add_parameter_option(parser, help="notebook parameter of every cell (NAME or STEP.NAME), as the pipeline's -p")
    parser.add_argument(
        "--only", nargs="+", metavar="STEP", help=f"steps per cell (default {' '.join(DEFAULT_SWEEP_STEPS)})"
    )
    parser.add_argument("--no-compare", action="store_true", help="do not run notebook 06 at the end")
    parser.add_argument("--notebooks-dir", type=Path, default=Path("notebooks"))
    parser.add_argument("--resume", action="store_true", help="skip cells finished with the same parameters")
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--log-output", action="store_true")
    run = parser.add_argument_group("where the cells run (also the experiment file's executor: settings)")
    run.add_argument("--executor", choices=EXECUTOR_KINDS, help="local (default), slurm, or submitit-local")
    run.add_argument("--jobs", type=_positive, help="local: cells at a time (default 1, or one per GPU)")
    run.add_argument("--gpus-per-cell", type=int, help="GPUs per cell (local: CUDA_VISIBLE_DEVICES per cell)")
    run.add_argument("--partition", help="slurm: partition")
    run.add_argument("--time-min", type=_positive, help="slurm: time limit per cell in minutes (requeued past it)")
    run.add_argument("--cpus-per-cell", type=_positive, help="slurm: CPUs per cell")
    run.add_argument("--mem-gb", type=float, help="slurm: memory per cell")
    run.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE", help="slurm: further option")
    run.add_argument("--array-parallelism", type=_positive, help="slurm: cells running at once")
    run.add_argument("--no-wait", action="store_true", help="slurm: return once submitted (then --status)")
    run.add_argument("--status", type=Path, metavar="DIR", help="collect a submitted sweep's cells and results")
    run.add_argument("--wait", action="store_true", help="with --status: wait until every cell has ended")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 (every cell done, or submitted), 1 (some cell failed) or 2 (bad input:
    one line, ``--debug`` for the traceback)."""
    return run_command(_parser(), _sweep_command, argv, failures=(PipelineError,))


def _executor(args: argparse.Namespace, settings: Mapping[str, Any]) -> Executor:
    sbatch = dict(settings.get("sbatch") or {})
    for item in args.sbatch:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--sbatch {item!r}: expected KEY=VALUE (an sbatch option without its dashes)")
        sbatch[key] = value
    given = {key: getattr(args, key) for key in ("jobs", "gpus_per_cell", "partition", "time_min", "cpus_per_cell",
                                                 "mem_gb", "array_parallelism")}  # fmt: skip
    merged = {k: v for k, v in settings.items() if k not in ("kind", "sbatch")}
    merged.update({k: v for k, v in given.items() if v is not None}, sbatch=sbatch or None)
    kind = args.executor or settings.get("kind") or "local"
    return make_executor(kind, wait=not args.no_wait, **merged)


def _report(result: SweepResult) -> int:
    total = len(result.rows) + len(result.waiting)
    print(f"{len(result.rows) - len(result.failed)} of {total} cells done; results: {result.run_dir}")
    if result.waiting:
        print(f"{len(result.waiting)} cell(s) still running or queued; collect them with: "
              f"python -m idkl_lib.experiments.sweep --status {result.run_dir} [--wait]")  # fmt: skip
    if result.index_html:
        print(f"Report: {result.index_html}")
    for row in result.rows:
        if row["state"] == "failed":
            print(f"failed: {row['cell']}: {row.get('error', '')}", file=sys.stderr)
    return 1 if result.failed else 0


def _sweep_command(args: argparse.Namespace) -> int:
    if args.status is not None:
        return _report(sweep_status(args.status, wait=args.wait, kernel_name=args.kernel))
    if args.run_dir is None:
        raise ValueError("--run-dir is required (or --status DIR to collect a submitted sweep)")
    if args.experiment is not None and not args.experiment.is_file():
        raise FileNotFoundError(f"--experiment {args.experiment}: no such file; the shipped ones are in experiments/")
    experiment = load_experiment(args.experiment) if args.experiment else Experiment(grid={})
    grid = {**experiment.grid, **parse_sweep(args.sweep)}
    params = {**experiment.params, **parameters(args.parameter)}
    preset = experiment.preset if args.preset is None else None if args.preset == "none" else args.preset
    steps = tuple(args.only) if args.only else experiment.steps
    executor = _executor(args, experiment.executor)
    experiment = Experiment(
        grid, preset, params, steps, experiment.compare and not args.no_compare, experiment.description
    )
    result = run_sweep(
        args.run_dir, experiment, args.notebooks_dir, args.resume, args.kernel, args.log_output, executor=executor
    )
    return _report(result)


if __name__ == "__main__":
    sys.exit(main())
