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

Parameters. Every notebook receives, in increasing priority: the preset (:data:`PRESETS`), the global
``-p NAME VALUE`` overrides, the step's own ``params``, step-scoped overrides ``-p STEP.NAME VALUE``, and
finally ``run_dir`` (absolute) and ``step_dir`` (absolute, ``<run_dir>/<step name>``). Each notebook only
gets the names its ``parameters`` cell declares (read with ``papermill.inspect_notebook``). A ``-p`` name
that no notebook of the step list declares is an error listing the known names; a step ``params`` name its
notebook does not declare is an error too. ``-p`` values are parsed like papermill's ``-p``: ``True``/``true``,
``False``/``false``, ``None``/``null``, integers and floats become those types, ``[...]``/``{...}`` are
parsed as YAML, anything else stays a string.

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

Run folder::

    <run_dir>/index.html              the report (links every step, figures, metrics table)
    <run_dir>/<step>.ipynb, .html     executed notebook and its HTML export (also for a failed step)
    <run_dir>/<step>/                 the step's metrics.json, figures/ and other outputs
    <run_dir>/metrics.json            {step name: that step's metrics}
    <run_dir>/params.json             {step name: the parameters it ran with}
    <run_dir>/environment.json        versions, git commit, device, host, start/end time
    <run_dir>/status.json             run state, per-step state and parameter hashes, the failure if any

Failure: a notebook error stops the run with a :class:`PipelineError` naming the notebook, the cell
(execution count and index) and ``ename: evalue``; the partial executed notebook and its HTML are kept and
the failure is recorded in ``status.json``; the CLI exits with status 1.

Resume: ``--resume`` skips a step that finished earlier with the same parameters and the same notebook code
(hashes in ``status.json``) whose outputs are still there; once a step runs, every later step runs too, as it
may read that step's outputs. Without ``--resume`` an existing run folder is reused and every selected step
re-runs, overwriting its outputs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import re
import shutil
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from idkl_lib import reports
from idkl_lib.utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "DEFAULT_STEPS",
    "PRESETS",
    "PipelineError",
    "PipelineResult",
    "Step",
    "StepResult",
    "main",
    "parse_param_value",
    "run_pipeline",
]

# Notebook parameters per preset (names as declared in the notebooks' ``parameters`` cells; a notebook only receives
# the names it declares). Names that no notebook declares are ignored with a warning.
PRESETS: dict[str, dict[str, Any]] = {
    # `make demo`: the synthetic SYSU-layout dataset (192 training identities, so that matching across modalities has
    # to generalise), a narrow randomly initialised ResNet-18 at 128 x 64 and one CPU thread (fastest for this size);
    # about five minutes on an idle 2-core CPU, uses a GPU when there is one. Both trainings (IDKL and the baseline of
    # notebooks 04/05) get the same budget.
    "demo": {
        "dataset": "synthetic",
        "synthetic_layout": "sysu",
        "synthetic_ids": 192,
        "synthetic_images": 2,
        "device": "auto",
        "cpu_threads": 1,
        "arch": "resnet18",
        "base_width": 8,
        "pretrained": False,
        "height": 128,
        "width": 64,
        "p": 8,
        "k": 4,
        "epochs": 20,
        "lr": 0.01,
        "milestones": [16],
        "augment": False,
        "random_erasing": 0.0,
        "num_workers": 0,
        "seed": 0,
    },
    # Tests: the smallest sizes that still exercise every code path (each notebook well under a minute on a CPU).
    "ci": {
        "dataset": "synthetic",
        "synthetic_layout": "sysu",
        "synthetic_ids": 8,
        "synthetic_images": 2,
        "device": "cpu",
        "cpu_threads": 1,
        "arch": "resnet18",
        "base_width": 8,
        "pretrained": False,
        "height": 64,
        "width": 32,
        "p": 2,
        "k": 2,
        "epochs": 1,
        "log_every": 1,
        "num_workers": 0,
        "seed": 0,
        "num_trials": 2,
        "max_size_images": 50,
        "num_identities": 1,
        "num_queries": 1,
        "max_points": 100,
        "umap_neighbors": 5,
    },
    # The published recipe on a real dataset and a GPU (SPEC.md §3); set data_root with -p data_root /path.
    "full": {
        "dataset": "sysu",
        "device": "cuda",
        "cpu_threads": 0,
        "arch": "resnet50",
        "base_width": 64,
        "pretrained": True,
        "height": 384,
        "width": 144,
        "p": 12,
        "k": 10,
        "epochs": 160,
        "lr": 3.5e-4,
        "milestones": [55, 95],
        "augment": True,
        "random_erasing": 0.5,
        "num_workers": 8,
        "seed": 1,
    },
}

RESERVED_PARAMS = ("run_dir", "step_dir")
_STATUS_SCHEMA = 1


@dataclass(frozen=True)
class Step:
    """One notebook execution.

    Attributes:
        notebook: Notebook stem in the notebooks folder (``"02_train"`` for ``02_train.ipynb``).
        name: Step name: the executed notebook is ``<run_dir>/<name>.ipynb`` and outputs go to
            ``<run_dir>/<name>/``. Defaults to ``notebook``.
        params: Parameters for this step only (override the preset and global ``-p`` values).
    """

    notebook: str
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.notebook)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"step name {self.name!r} must use only letters, digits, '_' and '-'")


DEFAULT_STEPS: tuple[Step, ...] = (
    Step("01_data_exploration"),
    Step("02_train"),
    Step("02_train", "02_train_baseline", {"loss_preset": "baseline", "run_tag": "baseline"}),
    Step("03_evaluate"),
    Step("04_gradcam"),
    Step("05_embeddings"),
)


class PipelineError(RuntimeError):
    """A step failed. Fields name the step, notebook and, for a notebook error, the cell and the exception.

    Attributes:
        step: Step name.
        notebook: Source notebook path.
        executed_notebook: The (partial) executed notebook in the run folder, if written.
        html: Its HTML export, if written.
        cell_index: Index of the failing cell in the saved executed notebook (which holds papermill's injected
            parameters cell and error-marker cells); None if not a cell error.
        exec_count: Execution count of the failing cell (``In [n]``).
        ename: Exception class name raised in the notebook (or by the pipeline check).
        evalue: Exception message.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str,
        notebook: Path,
        executed_notebook: Path | None = None,
        html: Path | None = None,
        cell_index: int | None = None,
        exec_count: int | None = None,
        ename: str = "",
        evalue: str = "",
    ) -> None:
        super().__init__(message)
        self.step = step
        self.notebook = notebook
        self.executed_notebook = executed_notebook
        self.html = html
        self.cell_index = cell_index
        self.exec_count = exec_count
        self.ename = ename
        self.evalue = evalue

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in ``status.json`` as ``failure``)."""
        return {
            "step": self.step,
            "notebook": str(self.notebook),
            "executed_notebook": None if self.executed_notebook is None else str(self.executed_notebook),
            "html": None if self.html is None else str(self.html),
            "cell_index": self.cell_index,
            "exec_count": self.exec_count,
            "ename": self.ename,
            "evalue": self.evalue,
            "message": str(self),
        }


@dataclass(frozen=True)
class StepResult:
    """Outcome of one step in this run (``state`` is ``"done"`` or ``"skipped"`` by ``resume``)."""

    name: str
    notebook: Path
    state: str
    duration_s: float
    params: dict[str, Any]
    metrics: dict[str, Any]
    executed_notebook: Path
    html: Path


@dataclass(frozen=True)
class PipelineResult:
    """Outcome of :func:`run_pipeline`: the report location and every step's metrics."""

    run_dir: Path
    index_html: Path
    metrics: dict[str, Any]
    steps: list[StepResult]
    environment: dict[str, Any]


def parse_param_value(text: str) -> Any:
    """Parse a command-line parameter value like papermill's ``-p``.

    Args:
        text: The raw value.

    Returns:
        ``True``/``False``/``None`` for ``True``/``true``, ``False``/``false``, ``None``/``null``; an ``int``
        or ``float`` for numbers (``1e-3`` included, ``nan``/``inf`` stay strings); YAML for values starting
        with ``[`` or ``{``; otherwise the string itself.
    """
    words = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
    if text in words:
        return words[text]
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        return float(text)
    if text[:1] in "[{":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"parameter value {text!r} looks like YAML but does not parse: {exc}") from exc
    return text


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:16]


def _notebook_hash(path: Path) -> str:
    """Hash of the code cells' sources (editing markdown or outputs does not invalidate a finished step)."""
    nb = nbformat.read(str(path), as_version=4)
    return _hash([cell.source for cell in nb.cells if cell.cell_type == "code"])


def _check_json_value(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"parameter {name}={value!r} is not a plain literal (str, int, float, bool, None, list, dict): {exc}"
        ) from exc


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        warnings.warn(f"could not read {path} ({exc}); ignoring it", stacklevel=3)
        return None


def _finite(obj: Any, where: str) -> Any:
    """Replace NaN/inf (not valid JSON) by None, warning once per value."""
    if isinstance(obj, float) and not math.isfinite(obj):
        warnings.warn(f"{where} is {obj}; stored as null in the run's metrics.json", stacklevel=3)
        return None
    if isinstance(obj, dict):
        return {key: _finite(value, f"{where}.{key}") for key, value in obj.items()}
    if isinstance(obj, list):
        return [_finite(value, f"{where}[{i}]") for i, value in enumerate(obj)]
    return obj


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        known = sorted(manager.find_kernel_specs())
        raise ValueError(
            f"kernel {kernel_name!r} is not installed (available: {known or 'none'}); pass --kernel NAME or install "
            f"one into this environment: {sys.executable} -m ipykernel install --sys-prefix --name {kernel_name}"
        ) from None


def _declared(path: Path) -> dict[str, Any]:
    return papermill.inspect_notebook(str(path))


def _resolve_params(
    steps: Sequence[Step],
    selected: Sequence[Step],
    notebooks: Mapping[str, Path],
    preset: str | None,
    overrides: Mapping[str, Any],
    run_dir: Path,
) -> dict[str, dict[str, Any]]:
    """Per selected step, the parameters it runs with (see the module docstring for the priority order)."""
    declared = {stem: set(_declared(path)) for stem, path in notebooks.items()}
    selected_stems = {step.notebook for step in selected}
    known: set[str] = set().union(*declared.values()) - set(RESERVED_PARAMS)
    steps_by_name = {step.name: step for step in steps}

    global_overrides: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        _check_json_value(key, value)
        step_name, dot, name = key.partition(".")
        if not dot:
            step_name, name = "", key
        if name in RESERVED_PARAMS:
            raise ValueError(f"parameter {name!r} is set by the pipeline (use --run-dir), not with -p")
        if step_name:
            if step_name not in steps_by_name:
                raise ValueError(f"-p {key}: no step named {step_name!r}; steps: {sorted(steps_by_name)}")
            stem = steps_by_name[step_name].notebook
            if stem in declared and name not in declared[stem]:
                raise ValueError(
                    f"-p {key}: notebook {stem}.ipynb declares no parameter {name!r}; "
                    f"it declares {sorted(declared[stem] - set(RESERVED_PARAMS))}"
                )
            scoped.setdefault(step_name, {})[name] = value
        else:
            if name not in known:
                raise ValueError(f"-p {name}: no notebook declares a parameter {name!r}; known names: {sorted(known)}")
            if not any(name in declared[stem] for stem in selected_stems):
                warnings.warn(f"-p {name}: only steps left out by --only declare it; it has no effect", stacklevel=3)
            global_overrides[name] = value

    preset_params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} is not defined; presets: {sorted(PRESETS)}")
        preset_params = dict(PRESETS[preset])
        unused = sorted(set(preset_params) - known)
        if unused:
            warnings.warn(
                f"preset {preset!r} sets parameters no notebook declares: {unused} (PRESETS in idkl_lib/pipeline.py)",
                stacklevel=3,
            )

    resolved: dict[str, dict[str, Any]] = {}
    for step in selected:
        names = declared[step.notebook]
        if not names & set(RESERVED_PARAMS):
            raise ValueError(
                f"{notebooks[step.notebook]} declares neither run_dir nor step_dir in a cell tagged 'parameters'; "
                "the pipeline cannot tell it where to write (see the idkl_lib.pipeline docstring)"
            )
        undeclared = sorted(set(step.params) - names)
        if undeclared:
            raise ValueError(
                f"step {step.name!r} sets {undeclared} but {notebooks[step.notebook]} does not declare them; "
                f"it declares {sorted(names - set(RESERVED_PARAMS))}"
            )
        params: dict[str, Any] = {}
        for layer in (preset_params, global_overrides, step.params, scoped.get(step.name, {})):
            params.update({key: value for key, value in layer.items() if key in names})
        for key, value in params.items():
            _check_json_value(key, value)
        if "run_dir" in names:
            params["run_dir"] = str(run_dir)
        if "step_dir" in names:
            params["step_dir"] = str(run_dir / step.name)
        resolved[step.name] = params
    return resolved


def _export_html(executed: Path, html_path: Path) -> Path | None:
    from nbconvert import HTMLExporter

    try:
        body, _ = HTMLExporter().from_filename(str(executed))
    except Exception as exc:  # a broken export must not hide the step's own result
        warnings.warn(f"could not export {executed} to HTML: {exc}", stacklevel=2)
        return None
    return atomic_write_text(html_path, body)


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
        previous = _read_json(run_dir / "status.json")
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
        old_params = _read_json(run_dir / "params.json")
        self.params: dict[str, Any] = old_params if isinstance(old_params, dict) else {}
        self.metrics: dict[str, Any] = {}

    def save_status(self) -> None:
        atomic_write_json(self.run_dir / "status.json", self.status)

    def finish(self, state: str, failure: PipelineError | None = None) -> Path:
        """Write status, environment, run metrics and the index; return the index path."""
        self.status["state"] = state
        self.status["finished"] = _now()
        self.status["failure"] = None if failure is None else failure.to_dict()
        self.environment["finished"] = self.status["finished"]
        self.save_status()
        atomic_write_json(self.run_dir / "environment.json", self.environment)
        self.metrics = self.collect_metrics()
        atomic_write_json(self.run_dir / "metrics.json", self.metrics)
        return reports.write_index(self.run_dir)

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
            metrics = _read_json(self.run_dir / step.name / "metrics.json") or {}
            return StepResult(step.name, notebook, "skipped", 0.0, params, metrics, executed, html)

        entry: dict[str, Any] = {"notebook": str(notebook), "state": "running", "params_hash": params_hash}
        entry.update(notebook_hash=nb_hash, started=_now(), finished=None, duration_s=None, error=None)
        self.status["steps"][step.name] = entry
        self.save_status()
        self.echo(f"{prefix} ...", end="\n" if self.log_output else " ")
        start = time.perf_counter()
        try:
            _, html_written = _execute_step(step, notebook, params, self.run_dir, self.kernel_name, self.log_output)
        except PipelineError as exc:
            entry.update(state="failed", finished=_now(), duration_s=round(time.perf_counter() - start, 3))
            entry["error"] = {key: exc.to_dict()[key] for key in ("cell_index", "exec_count", "ename", "evalue")}
            self.echo(f"{prefix + ' ' if self.log_output else ''}FAILED after {entry['duration_s']:.1f} s")
            self.echo(f"Report (partial): {self.finish('failed', exc)}")
            raise
        except BaseException:  # KeyboardInterrupt and the like: record it, then let it propagate
            entry.update(state="interrupted", finished=_now())
            self.finish("interrupted")
            raise
        duration = time.perf_counter() - start
        entry.update(state="done", finished=_now(), duration_s=round(duration, 3))
        self.save_status()
        self.echo(f"{prefix + ' ' if self.log_output else ''}done in {duration:.1f} s")
        metrics = _read_json(self.run_dir / step.name / "metrics.json") or {}
        return StepResult(step.name, notebook, "done", duration, params, metrics, executed, html_written or html)

    def collect_metrics(self) -> dict[str, Any]:
        collected: dict[str, Any] = {}
        for step in self.steps:
            metrics = _read_json(self.run_dir / step.name / "metrics.json")
            if metrics is not None:
                collected[step.name] = _finite(metrics, f"{step.name}/metrics.json")
        return collected


def _is_fresh(entry: Mapping[str, Any] | None, params_hash: str, nb_hash: str, run_dir: Path, name: str) -> bool:
    """A step finished earlier with these parameters and this code, and its outputs are still there."""
    return (
        isinstance(entry, Mapping)
        and entry.get("state") == "done"
        and entry.get("params_hash") == params_hash
        and entry.get("notebook_hash") == nb_hash
        and (run_dir / name / "metrics.json").is_file()
        and (run_dir / f"{name}.ipynb").is_file()
    )


def _error_cell_index(executed: Path, exc: PapermillExecutionError) -> int:
    """Index of the failing cell in the saved executed notebook (papermill's index predates its marker cells)."""
    try:
        nb = nbformat.read(str(executed), as_version=4)
    except (OSError, ValueError):
        return int(exc.cell_index)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.get("execution_count") == exc.exec_count:
            if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
                return index
    return int(exc.cell_index)


def _execute_step(
    step: Step, notebook: Path, params: dict[str, Any], run_dir: Path, kernel_name: str, log_output: bool
) -> tuple[Path, Path | None]:
    """Run one notebook; raise PipelineError on a notebook error or a missing metrics.json."""
    step_dir = run_dir / step.name
    step_dir.mkdir(parents=True, exist_ok=True)
    (step_dir / "metrics.json").unlink(missing_ok=True)
    shutil.rmtree(step_dir / "figures", ignore_errors=True)
    executed = run_dir / f"{step.name}.ipynb"
    html_path = run_dir / f"{step.name}.html"
    html_path.unlink(missing_ok=True)  # a stale export must not pass for this run's
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name=kernel_name,
            progress_bar=False,
            log_output=log_output,
            cwd=str(notebook.parent),
        )
    except PapermillExecutionError as exc:
        html = _export_html(executed, html_path) if executed.is_file() else None
        cell_index = _error_cell_index(executed, exc)
        raise PipelineError(
            f"step {step.name!r} failed: notebook {notebook} raised {exc.ename}: {exc.evalue} in cell "
            f"In [{exc.exec_count}]; partial notebook: {executed} (cell {cell_index})",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed if executed.is_file() else None,
            html=html,
            cell_index=cell_index,
            exec_count=exc.exec_count,
            ename=exc.ename,
            evalue=exc.evalue,
        ) from exc
    except Exception as exc:  # dead kernel, timeout, unreadable notebook, ...
        html = _export_html(executed, html_path) if executed.is_file() else None
        raise PipelineError(
            f"step {step.name!r} failed: running {notebook} raised {type(exc).__name__}: {exc}",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed if executed.is_file() else None,
            html=html,
            ename=type(exc).__name__,
            evalue=str(exc),
        ) from exc
    html = _export_html(executed, html_path)
    if not (step_dir / "metrics.json").is_file():
        raise PipelineError(
            f"step {step.name!r}: notebook {notebook} finished without writing {step_dir / 'metrics.json'}; "
            "every notebook must write metrics.json into step_dir (see the idkl_lib.pipeline docstring)",
            step=step.name,
            notebook=notebook,
            executed_notebook=executed,
            html=html,
            ename="MissingMetrics",
            evalue=f"{step_dir / 'metrics.json'} not written",
        )
    return executed, html


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

    Returns:
        The report path, the per-step results and the run-level metrics.

    Raises:
        PipelineError: A notebook failed or wrote no ``metrics.json``.
        FileNotFoundError: A selected step's notebook does not exist.
        ValueError: Unknown preset, step name, kernel or ``-p`` name, or a notebook without the parameters the
            pipeline needs.
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

    if run_dir.is_dir() and any(run_dir.iterdir()) and verbose:
        how = "skipping steps finished with the same parameters" if resume else "re-running every selected step"
        print(f"Reusing existing run folder {run_dir}: {how}", flush=True)
    run_dir.mkdir(parents=True, exist_ok=True)
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
    atomic_write_json(run_dir / "params.json", run.params)
    atomic_write_json(run_dir / "environment.json", environment)
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m idkl_lib.pipeline",
        description="Run the idkl_lib notebooks in order with papermill and write a report folder.",
        epilog=f"Steps: {', '.join(step.name for step in DEFAULT_STEPS)}. Presets: {', '.join(PRESETS)}.",
    )
    parser.add_argument("--run-dir", required=True, type=Path, help="report folder, e.g. reports/demo")
    parser.add_argument("--preset", default="demo", choices=[*PRESETS, "none"], help="parameter preset (default demo)")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="notebook parameter (NAME or STEP.NAME); values parsed like papermill -p",
    )
    parser.add_argument("--notebooks-dir", type=Path, default=Path("notebooks"), help="folder with the notebooks")
    parser.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (by step name)")
    parser.add_argument("--resume", action="store_true", help="skip steps finished with the same parameters")
    parser.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    parser.add_argument("--log-output", action="store_true", help="stream the notebooks' output")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (0 ok, 1 a step failed, 2 bad arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(arg.split("=")[0] in ("--sweep", "--experiment") for arg in argv):  # a sweep: idkl_lib.sweep runs it
        from idkl_lib import sweep

        return sweep.main(argv)
    args = _parser().parse_args(argv)
    if args.log_output:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        params = {name: parse_param_value(value) for name, value in args.parameter}
        run_pipeline(
            args.run_dir,
            preset=None if args.preset == "none" else args.preset,
            params=params,
            notebooks_dir=args.notebooks_dir,
            resume=args.resume,
            kernel_name=args.kernel,
            only=args.only,
            log_output=args.log_output,
        )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
