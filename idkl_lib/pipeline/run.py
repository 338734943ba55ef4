"""Run the numbered notebooks in order with papermill and write a presentable report folder.

Command line::

    python -m idkl_lib.pipeline --run-dir reports/demo [--preset demo|ci|full] [-p NAME VALUE ...]
        [--notebooks-dir notebooks] [--only 03_evaluate ...] [--resume] [--kernel python3] [--log-output]

Python::

    result = run_pipeline("reports/demo", preset="demo", params={"epochs": 3})
    result.index_html  # reports/demo/index.html

Steps. :data:`DEFAULT_STEPS` lists the run: each :class:`Step` is a notebook stem, a step name (the output
name; the same notebook may run twice, e.g. ``02_train`` and ``02_train_baseline``) and extra parameters.
``--only NAME ...`` runs a subset, named by step name. A missing notebook file is an error unless ``--only``
leaves its step out.

Parameters: see :mod:`idkl_lib.pipeline.steps` (presets, steps and how a step's parameters are resolved).

Notebook conventions (the pipeline relies on them):

* exactly one cell tagged ``parameters`` holding literals, declaring ``run_dir`` and/or ``step_dir``;
* the notebook writes everything into ``step_dir`` (= ``<run_dir>/<step name>/``, created by the pipeline):
  ``metrics.json`` (required; a step that ends without it failed) and ``figures/`` (``.png``/``.svg``/``.jpg``
  are shown inline in ``index.html``, ``.html`` files, e.g. interactive plotly, are linked);
* a notebook that reads an earlier step's output finds it under ``run_dir/<that step name>/``;
* notebooks run with the notebooks folder as working directory, as in JupyterLab, so relative paths in
  parameters are relative to that folder.

Before a step runs, its old ``metrics.json``, ``figures/`` and HTML export are removed (other files in the step
folder, e.g. checkpoints, are kept; papermill overwrites the executed notebook as it goes).

Run folder: see :mod:`idkl_lib.runs` (one definition of the layout for the pipeline, the trainer and the
notebooks).

Output: one line per step, ``[2/6] 02_train ... done in 182.7 s`` (on a terminal a progress bar over the notebook's
cells runs while the step does, and is cleared after it), then the report's path. Kernels are started with
CurveZMQ transport encryption where the kernel supports it (:func:`idkl_lib.pipeline.execute._kernel_manager_class`),
so no per-step "Kernel is running over TCP without encryption" warning. Each finished step also gets a reveal.js
slide deck, ``<step>.slides.html`` (:mod:`idkl_lib.report.slides`).

Failure: a notebook error stops the run with a :class:`PipelineError` naming the notebook, the cell
(execution count and index) and ``ename: evalue``; the partial executed notebook and its HTML are kept and
the failure is recorded in ``status.json``; the CLI exits with status 1.

Resume: ``--resume`` skips a step that finished earlier with the same parameters and the same notebook code
(hashes in ``status.json``) whose outputs are still there; once a step runs, every later step runs too, as it
may read that step's outputs. Without ``--resume`` a run folder made by the same command (same preset and
parameters) is reused and every selected step re-runs, overwriting its outputs.

Protection: the run folder records what made it (``run.json``: kind, hash of preset and parameters, creation time,
command line) and is locked while the pipeline writes it. A run folder holding another pipeline run's results is
refused unless ``resume`` or ``overwrite``; a training out-dir (or another kind of run folder) is always refused; a
second pipeline writing the same folder fails naming the first (:mod:`idkl_lib.runs.guard`). A real dataset's folder
given as ``data_root`` with ``dataset="synthetic"`` is refused before anything runs (the data is never modified).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from idkl_lib.pipeline.execute import PipelineError, _check_kernel, _execute_step
from idkl_lib.pipeline.steps import DEFAULT_STEPS, RESERVED_PARAMS, Step, _resolve_params
from idkl_lib.report.index import write_index
from idkl_lib.report.slides import slides_path
from idkl_lib.runs import (
    CELL_LOG_NAME,
    CELL_STATE_NAME,
    ENVIRONMENT_NAME,
    METRICS_NAME,
    PARAMS_NAME,
    RUN_RECORD_NAME,
    STATUS_NAME,
    guard_run_folder,
    jsonable,
    read_metrics,
    read_params,
    read_status,
    step_path,
)
from idkl_lib.utils.io import atomic_write_json

__all__ = ["PipelineResult", "StepResult", "run_pipeline"]

_STATUS_SCHEMA = 1


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step in this run (``state`` is ``"done"`` or ``"skipped"`` by ``resume``); ``slides`` is the
    step's reveal.js deck (``<run_dir>/<step>.slides.html``, see :mod:`idkl_lib.report.slides`)."""

    name: str
    notebook: Path
    state: str
    duration_s: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    executed_notebook: Path
    html: Path
    slides: Path | None = None


@dataclass(frozen=True)
class PipelineResult:
    """Outcome of :func:`run_pipeline`: the report location and every step's metrics."""

    run_dir: Path
    index_html: Path
    metrics: dict[str, Any]
    steps: list[StepResult]
    environment: dict[str, Any]


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _notebook_hash(path: Path) -> str:
    """Hash of the code cells' sources (editing markdown or outputs does not invalidate a finished step)."""
    nb = nbformat.read(str(path), as_version=4)
    return _hash([cell.source for cell in nb.cells if cell.cell_type == "code"])


class _Run:
    """State of one pipeline invocation: the run folder's status, params and report files."""

    def __init__(
        self,
        run_dir: Path,
        steps: Sequence[Step],
        preset: str | None,
        environment: dict[str, Any],
        kernel_name: str,
        log_output: bool,
        verbose: bool,
    ) -> None:
        self.run_dir = run_dir
        self.steps = steps
        self.environment = environment
        self.kernel_name = kernel_name
        self.log_output = log_output
        self.verbose = verbose
        previous = read_status(run_dir, on_error="warn")
        old_steps = previous.get("steps", {}) if isinstance(previous, dict) else {}
        self.status: dict[str, Any] = {
            "schema": _STATUS_SCHEMA,
            "state": "running",
            "preset": preset,
            "started": environment["started"],
            "finished": None,
            "order": [step.name for step in steps],
            "steps": {name: entry for name, entry in old_steps.items() if isinstance(entry, dict)},
            "failure": None,
        }
        old_params = read_params(run_dir, on_error="warn")
        self.params: dict[str, Any] = old_params if isinstance(old_params, dict) else {}
        self.metrics: dict[str, Any] = {}

    def save_status(self) -> None:
        atomic_write_json(self.run_dir / STATUS_NAME, self.status)

    def finish(self, state: str, failure: PipelineError | None = None) -> Path:
        """Write status, environment, run metrics and the index; return the index path."""
        self.status["state"] = state
        self.status["finished"] = _now()
        self.status["failure"] = None if failure is None else failure.to_dict()
        self.environment["finished"] = self.status["finished"]
        self.save_status()
        atomic_write_json(self.run_dir / ENVIRONMENT_NAME, self.environment)
        self.metrics = self.collect_metrics()
        atomic_write_json(self.run_dir / METRICS_NAME, self.metrics)
        return write_index(self.run_dir)

    def echo(self, text: str, end: str = "\n") -> None:
        if self.verbose:
            print(text, end=end, flush=True)

    def run_step(
        self, step: Step, notebook: Path, params: dict[str, Any], prefix: str, skip_if_fresh: bool
    ) -> StepResult:
        """Run one step (or skip it when ``skip_if_fresh`` and it is fresh), keeping status.json current."""
        hashed = {key: value for key, value in params.items() if key not in RESERVED_PARAMS}
        params_hash = _hash({"params": hashed, "kernel": self.kernel_name})
        nb_hash = _notebook_hash(notebook)
        executed, html = self.run_dir / f"{step.name}.ipynb", self.run_dir / f"{step.name}.html"
        previous = self.status["steps"].get(step.name)
        if skip_if_fresh and _is_fresh(previous, params_hash, nb_hash, self.run_dir, step.name):
            self.echo(f"{prefix} ... skipped (finished earlier with the same parameters)")
            metrics = read_metrics(step_path(self.run_dir, step.name), on_error="warn") or {}
            deck = slides_path(executed)
            return StepResult(
                step.name, notebook, "skipped", 0.0, params, metrics, executed, html, deck if deck.is_file() else None
            )

        entry: dict[str, Any] = {"notebook": str(notebook), "state": "running", "params_hash": params_hash}
        entry.update(notebook_hash=nb_hash, started=_now(), finished=None, duration_s=None, error=None)
        self.status["steps"][step.name] = entry
        self.save_status()
        # one line per step: "[i/n] name ... done in 12.3 s"; on a terminal a bar over the cells runs meanwhile
        bar = {"desc": prefix, "leave": False} if self.verbose and not self.log_output and _is_terminal() else False
        line_open = not bar and not self.log_output  # the line is finished when the step is
        if line_open:
            self.echo(f"{prefix} ...", end=" ")
        elif self.log_output:
            self.echo(f"{prefix} ...")
        tail = "" if line_open else f"{prefix} ... "
        start = time.perf_counter()
        try:
            _, html_written = _execute_step(
                step, notebook, params, self.run_dir, self.kernel_name, self.log_output, progress_bar=bar
            )
        except PipelineError as exc:
            entry.update(state="failed", finished=_now(), duration_s=round(time.perf_counter() - start, 3))
            entry["error"] = {key: exc.to_dict()[key] for key in ("cell_index", "exec_count", "ename", "evalue")}
            self.echo(f"{tail}FAILED after {entry['duration_s']:.1f} s")
            self.echo(f"Report (partial): {self.finish('failed', exc)}")
            raise
        except BaseException:  # KeyboardInterrupt and the like: record it, then let it propagate
            entry.update(state="interrupted", finished=_now())
            self.finish("interrupted")
            raise
        duration = time.perf_counter() - start
        entry.update(state="done", finished=_now(), duration_s=round(duration, 3))
        self.save_status()
        self.echo(f"{tail}done in {duration:.1f} s")
        metrics = read_metrics(step_path(self.run_dir, step.name), on_error="warn") or {}
        deck = slides_path(executed)
        html_path = html_written or html
        return StepResult(
            step.name,
            notebook,
            "done",
            duration,
            params,
            metrics,
            executed,
            html_path,
            deck if deck.is_file() else None,
        )

    def collect_metrics(self) -> dict[str, Any]:
        collected: dict[str, Any] = {}
        for step in self.steps:
            metrics = read_metrics(step_path(self.run_dir, step.name), on_error="warn")
            if metrics is not None:
                collected[step.name] = jsonable(metrics, f"{step.name}/{METRICS_NAME}")
        return collected


def _is_terminal() -> bool:
    """Whether stderr is a terminal: a progress bar there redraws in place; in a log file it would be noise."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _is_fresh(entry: Mapping[str, Any] | None, params_hash: str, nb_hash: str, run_dir: Path, name: str) -> bool:
    """A step finished earlier with these parameters and this code, and its outputs are still there."""
    return (
        isinstance(entry, Mapping)
        and entry.get("state") == "done"
        and entry.get("params_hash") == params_hash
        and entry.get("notebook_hash") == nb_hash
        and (run_dir / name / METRICS_NAME).is_file()
        and (run_dir / f"{name}.ipynb").is_file()
    )


def run_pipeline(
    run_dir: str | Path,
    preset: str | None = "demo",
    params: Mapping[str, Any] | None = None,
    steps: Sequence[Step] | None = None,
    notebooks_dir: str | Path = "notebooks",
    resume: bool = False,
    kernel_name: str = "python3",
    only: Sequence[str] | None = None,
    log_output: bool = False,
    verbose: bool = True,
    overwrite: bool = False,
) -> PipelineResult:
    """Execute the steps' notebooks in order into ``run_dir`` and write the report (see module docstring).

    Args:
        run_dir: Run folder, e.g. ``reports/demo``; created if needed, reused if it exists.
        preset: Key of :data:`PRESETS`, or None for the notebooks' own defaults.
        params: Overrides, ``{"epochs": 3}`` for every notebook declaring it, ``{"02_train.epochs": 3}`` for
            one step.
        steps: The step list; default :data:`DEFAULT_STEPS`.
        notebooks_dir: Folder holding ``<stem>.ipynb``.
        resume: Skip steps that finished earlier with the same parameters and notebook code.
        kernel_name: Jupyter kernel to execute with.
        only: Step names to run (the others are left as they are in ``run_dir``).
        log_output: Stream the notebooks' output through papermill's logger.
        verbose: Print a progress line per step and the report path.
        overwrite: Replace another pipeline run's results in ``run_dir`` (its ``status.json`` and ``metrics.json``).

    Returns:
        The report path, the per-step results and the run-level metrics.

    Raises:
        PipelineError: A notebook failed or wrote no ``metrics.json``.
        FileNotFoundError: A selected step's notebook does not exist.
        ValueError: Unknown preset, step name, kernel or ``-p`` name, a notebook without the parameters the
            pipeline needs, or a real dataset's folder with ``dataset="synthetic"``.
        idkl_lib.runs.guard.RunFolderError: ``run_dir`` holds another run's results (see Protection above).
        idkl_lib.utils.lock.FolderLockTimeout: another process writes ``run_dir``.
    """
    steps = tuple(DEFAULT_STEPS if steps is None else steps)
    names = [step.name for step in steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"step names must be unique; repeated: {duplicates}")
    if only is not None:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ValueError(f"only={unknown}: no such step; steps: {names}")
    selected = [step for step in steps if only is None or step.name in only]
    if not selected:
        raise ValueError("no step selected")

    notebooks_dir = Path(notebooks_dir).resolve()
    notebooks: dict[str, Path] = {}
    for step in steps:
        path = notebooks_dir / f"{step.notebook}.ipynb"
        if path.is_file():
            notebooks[step.notebook] = path
        elif step in selected:
            raise FileNotFoundError(
                f"notebook {path} for step {step.name!r} does not exist; check --notebooks-dir or leave the step out "
                "with --only"
            )
    _check_kernel(kernel_name)
    run_dir = Path(run_dir).resolve()
    resolved = _resolve_params(steps, selected, notebooks, preset, dict(params or {}), run_dir)
    _check_real_data(resolved, notebooks_dir)
    made_by = {"preset": preset, "params": dict(params or {})}
    with guard_run_folder(run_dir, "pipeline", made_by, resume=resume, overwrite=overwrite, same_config_reuses=True):
        return _run_steps(
            run_dir,
            steps,
            selected,
            notebooks,
            notebooks_dir,
            resolved,
            preset,
            resume,
            kernel_name,
            log_output,
            verbose,
        )


def _check_real_data(resolved: Mapping[str, Mapping[str, Any]], notebooks_dir: Path) -> None:
    """Refuse a real dataset's folder given as the synthetic data's ``data_root`` (relative to the notebooks)."""
    from idkl_lib.data.layout import find_real_dataset

    for name, params in resolved.items():
        if params.get("dataset", "synthetic") != "synthetic" or "data_root" not in params:
            continue
        found = find_real_dataset(notebooks_dir / str(params["data_root"]))
        if found is not None:
            folder, layout = found
            raise ValueError(
                f"step {name}: data_root={params['data_root']!r} is (inside) a real {layout} dataset at {folder}, but "
                f"dataset='synthetic' would write a synthetic dataset there and report on it; pass -p dataset {layout} "
                "to use the real data, or a data_root outside it for synthetic data"
            )


def _run_steps(
    run_dir: Path,
    steps: Sequence[Step],
    selected: Sequence[Step],
    notebooks: Mapping[str, Path],
    notebooks_dir: Path,
    resolved: dict[str, dict[str, Any]],
    preset: str | None,
    resume: bool,
    kernel_name: str,
    log_output: bool,
    verbose: bool,
) -> PipelineResult:
    """Run the selected steps into the claimed and locked ``run_dir``."""
    if any(p.name not in (RUN_RECORD_NAME, CELL_STATE_NAME, CELL_LOG_NAME) for p in run_dir.iterdir()) and verbose:
        how = "skipping steps finished with the same parameters" if resume else "re-running every selected step"
        print(f"Reusing existing run folder {run_dir}: {how}", flush=True)
    from idkl_lib.utils.runtime import environment_info  # imports torch: not needed for --help or bad arguments

    device = next((p["device"] for p in resolved.values() if "device" in p), None)
    environment = {
        **environment_info(device=device, repo_dir=notebooks_dir),
        "started": _now(),
        "finished": None,
        "preset": preset,
        "kernel": kernel_name,
        "notebooks_dir": str(notebooks_dir),
    }
    run = _Run(run_dir, steps, preset, environment, kernel_name, log_output, verbose)
    run.params.update(resolved)
    atomic_write_json(run_dir / PARAMS_NAME, run.params)
    atomic_write_json(run_dir / ENVIRONMENT_NAME, environment)
    run.save_status()

    results: list[StepResult] = []
    must_run = not resume  # once a step runs, every later step runs: it may read that step's outputs
    for number, step in enumerate(selected, start=1):
        prefix = f"[{number}/{len(selected)}] {step.name}"
        result = run.run_step(step, notebooks[step.notebook], resolved[step.name], prefix, skip_if_fresh=not must_run)
        must_run = must_run or result.state == "done"
        results.append(result)

    index = run.finish("done")
    run.echo(f"Report: {index}")
    return PipelineResult(run_dir, index, run.metrics, results, environment)
