"""Sweeps: the pipeline's training and evaluation notebooks over a grid of parameters, one run folder per cell.

Command line (``idkl-sweep`` is the same command)::

    python -m idkl_lib.experiments.sweep --run-dir reports/abl --preset demo \\
        --sweep loss_preset=baseline,full --sweep seed=0,1,2 [-p NAME VALUE ...] [--only 02_train 03_evaluate]
    python -m idkl_lib.experiments.sweep --run-dir reports/abl --experiment experiments/ablation.yaml [--resume]

Grid. Every ``--sweep NAME=V1,V2,...`` (values parsed like ``-p`` values; commas inside ``[...]`` do not split) and
every ``grid:`` entry of the experiment file is one axis; the cells are their cartesian product, in the order given.
A name is any notebook parameter (``loss_preset`` with the presets of :mod:`idkl_lib.config.ablation`, ``w_tgsa_inter``,
``seed``, ``synthetic_modality_evidence``, ...). Fixed parameters come from the pipeline preset, the file's
``params:`` and ``-p`` (in that priority order, then the grid).

Experiment file (YAML; any other key is an error)::

    description: what the sweep is for            # optional
    preset: demo                                  # pipeline preset of the base parameters (default demo)
    steps: [02_train, 03_evaluate]                # pipeline steps per cell (default: these two)
    params: {final_eval: false}                   # fixed parameters
    grid: {loss_preset: [baseline, full], seed: [0, 1, 2]}
    compare: true                                 # run notebooks/06_compare_runs.ipynb at the end (default true)

Sweep folder::

    <run_dir>/<cell>/             a complete pipeline run folder per cell (index.html, metrics.json, ...)
    <run_dir>/sweep.json          the grid, fixed parameters and every cell's state (done / failed + error)
    <run_dir>/results.csv, .json  one row per cell: its parameters, every scalar metric, training time
    <run_dir>/index.html          the comparison report (notebook 06 run by the pipeline), linking the cells

A failing cell is recorded (``sweep.json``, its own ``status.json``) and the sweep goes on; results are rewritten
atomically after every cell, so an interrupted sweep loses no finished cell. ``--resume`` skips cells that finished
with the same parameters (and, inside a rerun cell, the pipeline's own resume skips finished steps).
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import yaml

from idkl_lib.pipeline import DEFAULT_STEPS, PRESETS, PipelineError, Step, parse_param_value, run_pipeline
from idkl_lib.runs import (
    COMPARE_STEP,
    EVAL_STEP,
    RESULTS_CSV,
    RESULTS_JSON,
    SWEEP_NAME,
    TRAIN_STEP,
    read_metrics,
    read_status,
    read_sweep,
)
from idkl_lib.utils.errors import CommandParser, run_command
from idkl_lib.utils.io import atomic_write_json, atomic_write_text

__all__ = ["Experiment", "SweepResult", "collect_results", "load_experiment", "main", "parse_sweep", "run_sweep"]

DEFAULT_SWEEP_STEPS: tuple[str, ...] = (TRAIN_STEP, EVAL_STEP)
COMPARE_NOTEBOOK = COMPARE_STEP
EXPERIMENT_KEYS = ("description", "preset", "steps", "params", "grid", "compare")
_SCHEMA = 1


@dataclass(frozen=True)
class Experiment:
    """A sweep: base preset, fixed parameters, the grid (name -> values, in axis order) and the steps per cell."""

    grid: dict[str, list[Any]]
    preset: str | None = "demo"
    params: dict[str, Any] = field(default_factory=dict)
    steps: tuple[str, ...] = DEFAULT_SWEEP_STEPS
    compare: bool = True
    description: str = ""

    def cells(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(cell name, {grid name: value})]``: the cartesian product of the grid, with unique readable names."""
        names = list(self.grid)
        cells, seen = [], set()
        for values in itertools.product(*(self.grid[n] for n in names)):
            params = dict(zip(names, values, strict=True))
            name = "__".join(f"{n}-{_slug(v)}" for n, v in params.items()) or "cell"
            base, number = name, 2
            while name in seen:
                name, number = f"{base}-{number}", number + 1
            seen.add(name)
            cells.append((name, params))
        return cells


@dataclass(frozen=True)
class SweepResult:
    """Outcome of :func:`run_sweep`: the folder, one row per cell and the cells that failed."""

    run_dir: Path
    rows: list[dict[str, Any]]
    failed: list[str]
    index_html: Path | None


def _slug(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def split_values(text: str) -> list[str]:
    """Split ``"a,b,[1,2]"`` at the commas outside brackets: ``["a", "b", "[1,2]"]``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def parse_sweep(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["seed=0,1", "loss_preset=baseline,full"]`` -> ``{"seed": [0, 1], "loss_preset": ["baseline", "full"]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, eq, values = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"--sweep {item!r}: expected NAME=V1,V2,... (e.g. --sweep seed=0,1,2)")
        texts = split_values(values) if values.strip() else []
        if not texts or any(not text for text in texts):
            raise ValueError(f"--sweep {item!r}: empty value in the list of {name!r}; give NAME=V1,V2,...")
        if name in grid:
            raise ValueError(f"--sweep {name}: given twice; put all its values in one --sweep")
        grid[name] = [parse_param_value(text) for text in texts]
    return grid


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment file (see the module docstring); errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"experiment file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"experiment file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"experiment file {path} must be a mapping with keys {', '.join(EXPERIMENT_KEYS)}")
    unknown = sorted(set(data) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ValueError(f"experiment file {path}: unknown key(s) {unknown}; valid keys: {', '.join(EXPERIMENT_KEYS)}")
    grid = data.get("grid") or {}
    params = data.get("params") or {}
    for key, value in (("grid", grid), ("params", params)):
        if not isinstance(value, dict):
            raise ValueError(f"experiment file {path}: {key!r} must be a mapping of parameter names")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"experiment file {path}: grid.{name} must be a non-empty list of values, got {values!r}")
    steps = data.get("steps", list(DEFAULT_SWEEP_STEPS))
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps) or not steps:
        raise ValueError(f"experiment file {path}: 'steps' must be a non-empty list of step names, got {steps!r}")
    return Experiment(
        grid=dict(grid),
        preset=data.get("preset", "demo"),
        params=dict(params),
        steps=tuple(steps),
        compare=bool(data.get("compare", True)),
        description=str(data.get("description", "")),
    )


def _check(experiment: Experiment, notebooks_dir: Path) -> None:
    """Every grid/fixed name is declared by a notebook of the selected steps and every value passes its rule."""
    steps = {step.name: step for step in DEFAULT_STEPS}
    unknown_steps = sorted(set(experiment.steps) - set(steps))
    if unknown_steps:
        raise ValueError(f"unknown step(s) {unknown_steps}; steps: {list(steps)}")
    if experiment.preset is not None and experiment.preset not in PRESETS:
        raise ValueError(f"preset {experiment.preset!r} is not defined; presets: {sorted(PRESETS)}")
    declared: set[str] = set()
    for name in experiment.steps:
        path = notebooks_dir / f"{steps[name].notebook}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"notebook {path} for step {name!r} does not exist; check --notebooks-dir")
        declared |= set(papermill.inspect_notebook(str(path))) - {"run_dir", "step_dir"}
    if not experiment.grid:
        raise ValueError("the sweep has no grid: give --sweep NAME=V1,V2 or a 'grid:' in the experiment file")
    from idkl_lib.notebook.params import ParameterError, check_params  # imports torch: only once arguments parse

    for kind, mapping in (("sweep parameter", experiment.grid), ("fixed parameter", experiment.params)):
        for name, values in mapping.items():
            if "." in name and kind == "fixed parameter":  # STEP.NAME: checked by the pipeline
                continue
            if name not in declared:
                raise ValueError(
                    f"{kind} {name!r}: no notebook of the steps {list(experiment.steps)} declares it; "
                    f"known names: {sorted(declared)}"
                )
            for value in values if kind == "sweep parameter" else [values]:
                try:
                    check_params(**{name: value})
                except ParameterError as exc:
                    reason = str(exc).splitlines()[-1].strip().removeprefix(f"parameter {name}={value!r}: ")
                    raise ValueError(f"{kind} {name}={value!r} {reason}") from None


def _flatten(obj: Any, prefix: str, out: dict[str, Any]) -> None:
    """Scalar leaves of a metrics dict as ``prefix.key.sub`` columns (lists, e.g. CMC curves, are left out)."""
    if isinstance(obj, Mapping):
        for key, value in obj.items():
            _flatten(value, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(obj, bool | int | float | str) or obj is None:
        out[prefix] = obj


def cell_row(cell_dir: Path, params: Mapping[str, Any], state: str, error: str | None = None) -> dict[str, Any]:
    """One results row: cell name, state, its grid parameters, every scalar metric, each step's time."""
    row: dict[str, Any] = {"cell": cell_dir.name, "state": state, **dict(params)}
    status = read_status(cell_dir, on_error="warn") or {}
    for step, entry in (status.get("steps") or {}).items():
        if isinstance(entry, dict) and entry.get("duration_s") is not None:
            row[f"time_s.{step}"] = entry["duration_s"]
    if f"time_s.{TRAIN_STEP}" in row:
        row["train_time_s"] = row[f"time_s.{TRAIN_STEP}"]
    metrics = read_metrics(cell_dir, on_error="warn") or {}
    for step, values in metrics.items():
        if isinstance(values, Mapping):
            _flatten({k: v for k, v in values.items() if k not in ("history", "checkpoint")}, step, row)
    if error:
        row["error"] = error
    return row


def collect_results(run_dir: Path, rows: Sequence[Mapping[str, Any]]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.csv`` (union of the columns, first-seen order) atomically."""
    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: json.dumps(v) if isinstance(v, list | dict) else v for key, v in row.items()})
    return (
        atomic_write_json(run_dir / RESULTS_JSON, {"columns": columns, "rows": list(rows)}),
        atomic_write_text(run_dir / RESULTS_CSV, buffer.getvalue()),
    )


def _cell_hash(experiment: Experiment, params: Mapping[str, Any]) -> str:
    import hashlib

    blob = json.dumps([experiment.preset, experiment.params, dict(params), list(experiment.steps)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _same_cell(entry: Any, experiment: Experiment, params: Mapping[str, Any]) -> bool:
    """An earlier invocation's entry of this cell, run with the same parameters, steps and preset."""
    return isinstance(entry, dict) and entry.get("hash") == _cell_hash(experiment, params)


def run_sweep(
    run_dir: str | Path,
    experiment: Experiment,
    notebooks_dir: str | Path = "notebooks",
    resume: bool = False,
    kernel_name: str = "python3",
    log_output: bool = False,
    progress: bool = True,
) -> SweepResult:
    """Run every cell of ``experiment`` into ``run_dir/<cell>/`` and collect the results (module docstring)."""
    from tqdm.auto import tqdm

    notebooks_dir = Path(notebooks_dir).resolve()
    run_dir = Path(run_dir).resolve()
    _check(experiment, notebooks_dir)
    cells = experiment.cells()
    run_dir.mkdir(parents=True, exist_ok=True)
    old = read_sweep(run_dir) or {}
    old_cells = old.get("cells") or {}
    state: dict[str, Any] = {
        "schema": _SCHEMA,
        "description": experiment.description,
        "preset": experiment.preset,
        "steps": list(experiment.steps),
        "params": experiment.params,
        "grid": experiment.grid,
        "order": [name for name, _ in cells],  # the grid's order (JSON objects are written with sorted keys)
        # a cell finished by an earlier invocation stays listed (and in the results) until it runs again
        "cells": {
            name: dict(old_cells[name]) if _same_cell(old_cells.get(name), experiment, params) else {"params": params}
            for name, params in cells
        },
    }
    for entry in state["cells"].values():
        entry.setdefault("state", "pending")

    def save() -> list[dict[str, Any]]:
        atomic_write_json(run_dir / SWEEP_NAME, state)
        rows = [
            cell_row(run_dir / name, params, entry["state"], entry.get("error"))
            for name, params in cells
            if (entry := state["cells"][name])["state"] in ("done", "failed")
        ]
        collect_results(run_dir, rows)
        return rows

    failed: list[str] = []
    bar = tqdm(cells, desc="sweep", unit="cell", disable=not progress, dynamic_ncols=True)
    for name, params in bar:
        bar.set_postfix_str(name)
        cell_dir, digest = run_dir / name, _cell_hash(experiment, params)
        entry = state["cells"][name]
        cell_status = read_status(cell_dir, on_error="warn") or {}
        if resume and entry.get("state") == "done" and cell_status.get("state") == "done":
            continue
        entry.clear()
        entry.update(params=params, state="running", hash=digest, started=time.strftime("%Y-%m-%dT%H:%M:%S"))
        atomic_write_json(run_dir / SWEEP_NAME, state)
        start = time.perf_counter()
        try:
            run_pipeline(
                cell_dir,
                preset=experiment.preset,
                params={**experiment.params, **params},
                notebooks_dir=notebooks_dir,
                resume=resume,
                kernel_name=kernel_name,
                only=list(experiment.steps),
                log_output=log_output,
                verbose=False,
            )
        except KeyboardInterrupt:
            entry.update(state="interrupted")
            save()
            raise
        except (PipelineError, Exception) as exc:  # noqa: BLE001 - a failed cell is recorded, the sweep goes on
            message = f"{type(exc).__name__}: {exc}"
            entry.update(state="failed", error=message, duration_s=round(time.perf_counter() - start, 3))
            failed.append(name)
            bar.write(f"cell {name} FAILED: {message.splitlines()[0]}")
        else:
            entry.update(state="done", duration_s=round(time.perf_counter() - start, 3))
            bar.write(f"cell {name} done in {entry['duration_s']:.0f} s")
        save()
    bar.close()
    rows = save()
    failed = [row["cell"] for row in rows if row["state"] == "failed"]
    index = None
    if experiment.compare and len(rows) > len(failed):
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
    return SweepResult(run_dir, rows, failed, index)


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m idkl_lib.experiments.sweep",
        description="Run the training/evaluation notebooks over a parameter grid, one run folder per cell.",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="sweep folder, e.g. reports/ablation")
    parser.add_argument("--experiment", type=Path, help="YAML experiment file (grid, preset, params, steps)")
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=V1,V2", help="one grid axis")
    parser.add_argument("--preset", choices=[*PRESETS, "none"], help="pipeline preset (default: the file's, or demo)")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    parser.add_argument(
        "--only", nargs="+", metavar="STEP", help=f"steps per cell (default {' '.join(DEFAULT_SWEEP_STEPS)})"
    )
    parser.add_argument("--no-compare", action="store_true", help="do not run notebook 06 at the end")
    parser.add_argument("--notebooks-dir", type=Path, default=Path("notebooks"))
    parser.add_argument("--resume", action="store_true", help="skip cells finished with the same parameters")
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--log-output", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0 (every cell done), 1 (some cell failed) or 2 (bad input: one line,
    ``--debug`` for the traceback)."""
    return run_command(_parser(), _sweep_command, argv, failures=(PipelineError,))


def _sweep_command(args: argparse.Namespace) -> int:
    if args.experiment is not None and not args.experiment.is_file():
        raise FileNotFoundError(f"--experiment {args.experiment}: no such file; the shipped ones are in experiments/")
    experiment = load_experiment(args.experiment) if args.experiment else Experiment(grid={})
    grid = {**experiment.grid, **parse_sweep(args.sweep)}
    params = {**experiment.params, **{n: parse_param_value(v, n) for n, v in args.parameter}}
    preset = experiment.preset if args.preset is None else None if args.preset == "none" else args.preset
    steps = tuple(args.only) if args.only else experiment.steps
    experiment = Experiment(
        grid, preset, params, steps, experiment.compare and not args.no_compare, experiment.description
    )
    result = run_sweep(args.run_dir, experiment, args.notebooks_dir, args.resume, args.kernel, args.log_output)
    print(f"{len(result.rows) - len(result.failed)} of {len(result.rows)} cells done; results: {result.run_dir}")
    if result.index_html:
        print(f"Report: {result.index_html}")
    for name in result.failed:
        print(f"failed: {name} (its pipeline status in {result.run_dir / name})", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
