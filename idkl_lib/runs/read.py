"""The one reader of run folders and sweep folders (the writer's layout is :mod:`idkl_lib.runs.layout`).

Every command and notebook reads a run's files through these functions, so a missing or corrupt file gets the same
message whichever reads it. Each call chooses what a corrupt (unreadable, not JSON) file does:

* ``on_error="raise"``: a :class:`RunFileError` (a ``ValueError``: the commands print it as one line, exit 2);
* ``on_error="warn"``: the same message as a warning, and ``None``;
* ``on_error="ignore"``: ``None``.

A missing file is not an error: the readers return ``None`` (the caller knows whether the step ran).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Literal

from idkl_lib.runs.layout import (
    CELL_STATE_NAME,
    CONTEXT_NAME,
    HISTORY_NAME,
    METRICS_NAME,
    PARAMS_NAME,
    RESULTS_JSON,
    RUN_RECORD_NAME,
    STATUS_NAME,
    SWEEP_NAME,
    TRAIN_STEP,
    step_path,
)

__all__ = [
    "OnError",
    "RunFileError",
    "is_sweep",
    "read_cell_state",
    "read_context",
    "read_history",
    "read_json",
    "read_metrics",
    "read_params",
    "read_record",
    "read_results",
    "read_status",
    "read_sweep",
    "sweep_cells",
]

OnError = Literal["raise", "warn", "ignore"]
PathLike = str | os.PathLike[str]


class RunFileError(ValueError):
    """A run folder's file exists but cannot be read as what it should be (the message names it and what to do)."""


def _problem(path: Path, exc: Exception | None, expected: type) -> str:
    cause = f"{type(exc).__name__}: {exc}" if exc else f"it holds no JSON {'object' if expected is dict else 'list'}"
    return (
        f"{path} cannot be read ({cause}); it was cut off or edited by hand: rerun the step that writes it "
        "(the pipeline's --resume reruns unfinished steps) or delete the file"
    )


def read_json(path: PathLike, *, on_error: OnError = "raise", expected: type = object) -> Any:
    """The JSON content of ``path``, or None when the file does not exist.

    Args:
        path: A file of a run or sweep folder.
        on_error: What an unreadable file, invalid JSON or content that is not ``expected`` does (module docstring).
        expected: ``dict`` or ``list`` to check the top-level type; ``object`` accepts any.

    Raises:
        RunFileError: With ``on_error="raise"``, the file cannot be read (named, with what to do).
    """
    path = Path(path)
    problem = None
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problem = _problem(path, exc, expected)
    else:
        if isinstance(content, expected):
            return content
        problem = _problem(path, None, expected)
    if on_error == "raise":
        raise RunFileError(problem)
    if on_error == "warn":
        warnings.warn(problem, stacklevel=2)
    return None


def read_status(run_dir: PathLike, on_error: OnError = "raise") -> dict[str, Any] | None:
    """``<run_dir>/status.json``: the pipeline's run state, per-step states and times."""
    return read_json(Path(run_dir) / STATUS_NAME, on_error=on_error, expected=dict)


def read_params(run_dir: PathLike, on_error: OnError = "raise") -> dict[str, Any] | None:
    """``<run_dir>/params.json``: ``{step name: the parameters it ran with}``."""
    return read_json(Path(run_dir) / PARAMS_NAME, on_error=on_error, expected=dict)


def read_metrics(folder: PathLike, on_error: OnError = "raise") -> dict[str, Any] | None:
    """``<folder>/metrics.json``: a run folder's (``{step: metrics}``) or a step's or training folder's own."""
    return read_json(Path(folder) / METRICS_NAME, on_error=on_error, expected=dict)


def read_history(run_dir: PathLike, step: str = TRAIN_STEP, on_error: OnError = "raise") -> list[Any] | None:
    """``<run_dir>/<step>/history.json``: the per-epoch loss history of a training step."""
    return read_json(step_path(run_dir, step) / HISTORY_NAME, on_error=on_error, expected=list)


def read_context(run_dir: PathLike, on_error: OnError = "raise") -> dict[str, Any] | None:
    """``<run_dir>/context.json``: the run's data settings (written by notebook 01)."""
    return read_json(Path(run_dir) / CONTEXT_NAME, on_error=on_error, expected=dict)


def read_record(folder: PathLike, on_error: OnError = "ignore") -> dict[str, Any] | None:
    """``<folder>/run.json``: what made the folder (:mod:`idkl_lib.runs.guard`)."""
    return read_json(Path(folder) / RUN_RECORD_NAME, on_error=on_error, expected=dict)


def read_sweep(sweep_dir: PathLike, on_error: OnError = "raise") -> dict[str, Any] | None:
    """``<sweep_dir>/sweep.json``: the grid, each cell's parameters, state and hash, the cells' order."""
    return read_json(Path(sweep_dir) / SWEEP_NAME, on_error=on_error, expected=dict)


def read_results(sweep_dir: PathLike, on_error: OnError = "raise") -> list[Any] | None:
    """``<sweep_dir>/results.json``: one row per finished or failed cell."""
    return read_json(Path(sweep_dir) / RESULTS_JSON, on_error=on_error, expected=list)


def read_cell_state(cell_dir: PathLike, on_error: OnError = "warn") -> dict[str, Any] | None:
    """``<cell_dir>/cell.json``: what the process that ran a sweep cell recorded (state, hash, pid, host, job)."""
    return read_json(Path(cell_dir) / CELL_STATE_NAME, on_error=on_error, expected=dict)


def is_sweep(folder: PathLike) -> bool:
    """Whether ``folder`` is a sweep folder (it has ``sweep.json``)."""
    return (Path(folder) / SWEEP_NAME).is_file()


def sweep_cells(sweep_dir: PathLike, state: str | None = "done", on_error: OnError = "raise") -> list[Path]:
    """The cell folders of a sweep in the sweep's order: those in ``state`` (None: every cell).

    A folder without ``sweep.json`` (cells copied by hand) gives its sub-folders that hold ``params.json``.
    """
    sweep_dir = Path(sweep_dir)
    sweep = read_sweep(sweep_dir, on_error=on_error)
    if sweep is not None:
        cells: dict[str, Any] = sweep.get("cells") or {}
        order: list[str] = sweep.get("order") or list(cells)
        return [sweep_dir / name for name in order if state is None or (cells.get(name) or {}).get("state") == state]
    if not sweep_dir.is_dir():
        return []
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and (p / PARAMS_NAME).is_file())
