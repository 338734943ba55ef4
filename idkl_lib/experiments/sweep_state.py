"""The sweep folder's bookkeeping, done by the coordinator alone (:mod:`idkl_lib.experiments.sweep`): ``sweep.json``
(every cell's state, hash, process or job, log and error), one results row per finished cell (``results.csv`` and
``results.json``, rewritten atomically after every cell), and bringing a running or submitted cell up to date from
what its own process recorded (``<cell>/cell.json``, :mod:`idkl_lib.experiments.executors`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from idkl_lib.experiments.grid import Experiment, cell_hash
from idkl_lib.runs import (
    RESULTS_CSV,
    RESULTS_JSON,
    SWEEP_NAME,
    TRAIN_STEP,
    read_cell_state,
    read_metrics,
    read_status,
    read_sweep,
)
from idkl_lib.utils.io import atomic_write_json, atomic_write_text

__all__ = ["WAITING", "SweepBook", "cell_row", "collect_results", "settle"]

WAITING = ("running", "submitted")
"""Cell states whose process or job may still be at work."""
_SCHEMA = 1


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


def _same_cell(entry: Any, experiment: Experiment, params: Mapping[str, Any]) -> bool:
    """An earlier invocation's entry of this cell, run with the same parameters, steps and preset."""
    return isinstance(entry, dict) and entry.get("hash") == cell_hash(experiment, params)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def settle(run_dir: Path, name: str, entry: dict[str, Any], kind: str) -> None:
    """Bring a running or submitted cell's entry up to date from its ``cell.json`` (its own process's record),
    its process (this host) or its job: a cell that ended while no coordinator watched it is not lost. A submitit
    job's interrupted attempt is no end while the job lives on (it is requeued and resumes)."""
    if entry.get("state") not in WAITING:
        return
    record = read_cell_state(run_dir / name) or {}
    job = str(entry["job_id"]) if entry.get("job_id") else None
    own = record.get("hash") == entry.get("hash") and (job is None or job == str(record.get("job_id")))
    log = f" (log: {entry['log']})" if entry.get("log") else ""
    job_ended = None
    if job is not None:
        from idkl_lib.experiments.cluster import job_ended as ended

        job_ended = ended(run_dir, job, kind == "slurm")
    final = ("done", "failed") if job is not None and not job_ended else ("done", "failed", "interrupted")
    if own and record.get("state") in final:
        done = record["state"] == "done" and (read_status(run_dir / name, on_error="warn") or {}).get("state") == "done"
        entry.update(state="done" if done else record["state"], duration_s=record.get("duration_s"))
        if not done:
            entry["error"] = f"{record.get('error') or 'ended without finishing'}{log}"
    elif job is not None:
        if job_ended:
            entry.update(state="failed", error=f"job {job} ended {job_ended} without the cell finishing{log}")
    elif own and record.get("host") == socket.gethostname() and not _pid_alive(record.get("pid")):
        entry.update(state="interrupted", error=f"its process {record.get('pid')} ended without recording an end{log}")
    elif not own and entry.get("pid") is not None and not _pid_alive(entry["pid"]):
        entry.update(state="interrupted", error=f"its process {entry['pid']} ended before it started the cell{log}")


class SweepBook:
    """The sweep's state (``sweep.json``) and results, written by the coordinator alone."""

    def __init__(self, run_dir: Path, experiment: Experiment, cells: list[tuple[str, dict[str, Any]]], **extra: Any):
        self.run_dir, self.cells = run_dir, cells
        old = read_sweep(run_dir) or {}
        old_cells = old.get("cells") or {}
        self.state: dict[str, Any] = {
            "schema": _SCHEMA,
            "description": experiment.description,
            "preset": experiment.preset,
            "steps": list(experiment.steps),
            "params": experiment.params,
            "grid": experiment.grid,
            "compare": experiment.compare,
            "order": [name for name, _ in cells],  # the grid's order (JSON objects are written with sorted keys)
            **extra,
            # a cell finished by an earlier invocation stays listed (and in the results) until it runs again
            "cells": {
                name: dict(old_cells[name])
                if _same_cell(old_cells.get(name), experiment, params)
                else {"params": params}
                for name, params in cells
            },
        }
        for entry in self.state["cells"].values():
            entry.setdefault("state", "pending")

    def entry(self, name: str) -> dict[str, Any]:
        return self.state["cells"][name]  # type: ignore[no-any-return]

    def save_state(self) -> None:
        atomic_write_json(self.run_dir / SWEEP_NAME, self.state)

    def save(self) -> list[dict[str, Any]]:
        self.save_state()
        rows = [
            cell_row(self.run_dir / name, params, entry["state"], entry.get("error"))
            for name, params in self.cells
            if (entry := self.entry(name))["state"] in ("done", "failed")
        ]
        collect_results(self.run_dir, rows)
        return rows

    def waiting(self) -> list[str]:
        return [name for name, _ in self.cells if self.entry(name)["state"] in WAITING]
