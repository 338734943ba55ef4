"""Runs read for comparison: one run folder (or every finished cell of a sweep) as a :class:`Run` with its training
parameters, seed, the metrics of one protocol, CMC, loss history and training time, and the configuration labels that
group runs over seeds (the parameters that differ between them, the seed and bookkeeping excepted).
:mod:`idkl_lib.experiments.compare` computes the statistics on them."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idkl_lib.runs import (
    EVAL_STEP,
    METRICS_NAME,
    SWEEP_NAME,
    TRAIN_STEP,
    is_sweep,
    read_history,
    read_metrics,
    read_params,
    read_status,
    sweep_cells,
)

__all__ = ["IGNORED_PARAMS", "METRICS", "Run", "configs", "load_runs", "pick_protocol"]

METRICS: tuple[str, ...] = ("R1", "mAP", "mINP")
IGNORED_PARAMS = frozenset(
    {
        "seed",
        "run_dir",
        "step_dir",
        "data_root",
        "run_tag",
        "resume",
        "overwrite",
        "with_baseline",  # the extra baseline run of notebook 02, not this run's training
        "device",
        "num_workers",
        "cpu_threads",
        "log_every",
    }
)
"""Parameters that never make a configuration: bookkeeping, hardware, and what does not change the trained model."""


@dataclass
class Run:
    """One run folder: its training parameters, configuration label, retrieval metrics, CMC and loss history."""

    path: Path
    params: dict[str, Any]
    seed: Any
    metrics: dict[str, float]
    cmc: list[float]
    history: list[dict[str, float]] = field(default_factory=list)
    train_time_s: float | None = None
    config: str = ""


def _run_folders(run_dir: Path | None, runs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    if runs:
        return [Path(r).resolve() for r in runs]
    if run_dir is None:
        raise ValueError("give a sweep folder (run_dir) or a list of run folders (runs)")
    if is_sweep(run_dir):  # the cells that finished (failed ones are listed in sweep.json and results.csv)
        return sweep_cells(run_dir, state="done")
    return sweep_cells(run_dir) or [run_dir]


def pick_protocol(metrics: Mapping[str, Any], protocol: str, path: Path) -> tuple[str, dict[str, Any], list[float]]:
    """``(protocol name, its metrics row, its CMC)`` from a run's ``{step: metrics}``: the evaluation step's
    ``protocols`` (else the training step's ``eval``); ``protocol`` or, when empty, the single-shot all-search one."""
    evaluation = metrics.get(EVAL_STEP)
    if isinstance(evaluation, Mapping) and evaluation.get("protocols"):
        table, curves = evaluation["protocols"], evaluation.get("cmc", {})
    else:
        train = metrics.get(TRAIN_STEP)
        table = train.get("eval") if isinstance(train, Mapping) else None
        curves = {}
        if not table:
            raise ValueError(
                f"run folder {path} has no retrieval metrics (neither {EVAL_STEP}'s 'protocols' nor {TRAIN_STEP}'s "
                f"'eval'); run its {EVAL_STEP} step (or train with final_eval=True)"
            )
    assert isinstance(table, Mapping)
    name = protocol or min(table, key=lambda k: ("single-shot" not in k, "all-search" not in k, k))
    if name not in table:
        raise ValueError(f"run folder {path} has no protocol {name!r}; it has {sorted(table)}")
    return name, table[name], list(curves.get(name, []))


def load_runs(
    run_dir: str | os.PathLike[str] | None = None, runs: Sequence[str | os.PathLike[str]] = (), protocol: str = ""
) -> tuple[list[Run], str]:
    """Read the runs of a sweep folder (or the given run folders) and label their configurations.

    Returns:
        ``(runs, protocol)``: the runs in folder order and the protocol whose metrics they carry (``protocol`` or,
        by default, the single-shot all-search one when there is one).

    Raises:
        ValueError: no runs, or a run folder without ``metrics.json`` / retrieval metrics (named).
    """
    folders = _run_folders(None if run_dir is None else Path(run_dir).resolve(), runs)
    if not folders:
        raise ValueError(f"{run_dir}: no finished run folders ({SWEEP_NAME} lists no cell in state 'done')")
    loaded: list[Run] = []
    chosen = protocol
    for path in folders:
        metrics = read_metrics(path)
        if not metrics:
            raise ValueError(f"run folder {path} has no {METRICS_NAME}; run the pipeline into it first")
        chosen, row, cmc = pick_protocol(metrics, chosen, path)
        params = (read_params(path) or {}).get(TRAIN_STEP) or {}
        history = read_history(path) or []
        status = read_status(path) or {}
        train_time = ((status.get("steps") or {}).get(TRAIN_STEP) or {}).get("duration_s")
        values = {m: float(row[m]) for m in METRICS if m in row}
        loaded.append(Run(path, dict(params), params.get("seed"), values, cmc, history, train_time))
    _label(loaded)
    return loaded, chosen


def _labels(runs: Sequence[Run], ignore: frozenset[str] = IGNORED_PARAMS) -> list[str]:
    """Each run's label: the parameters that differ between the runs, the ``ignore`` names excepted."""
    names = sorted({n for r in runs for n in r.params} - ignore)
    varying = [n for n in names if len({json.dumps(r.params.get(n), sort_keys=True) for r in runs}) > 1]
    labels = []
    for run in runs:
        parts = [str(run.params.get(n)) if n == "loss_preset" else f"{n}={run.params.get(n)}" for n in varying]
        labels.append(" · ".join(parts) or "all runs")
    return labels


def _label(runs: list[Run]) -> None:
    """Label each run by the parameters that differ between the runs (seed and bookkeeping names excepted)."""
    for run, label in zip(runs, _labels(runs), strict=True):
        run.config = label


def configs(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Configuration label -> its runs, in first-seen order."""
    out: dict[str, list[Run]] = {}
    for run in runs:
        out.setdefault(run.config, []).append(run)
    return out
