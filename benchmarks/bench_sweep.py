"""A 6-cell sweep of the ``ci`` preset (real notebooks 02 and 03; 2 loss presets x 3 seeds) three ways: one cell at a
time, ``--jobs N`` cells at a time, and through submitit's local executor (the Slurm path) with N at a time. Prints
the wall time of each, the ratio to the sequential one and cells per hour, checks that every way gave the same
metrics per cell, and writes ``benchmarks/results/bench_sweep.json``. The cells share one synthetic data folder,
written by the first cell of the sequential sweep.

    python -m benchmarks.bench_sweep [--jobs 2] [--modes sequential,parallel,submitit] [--work-dir DIR]

The machine is what limits ``--jobs``: on 2 cores two cells at a time can at best halve the time, and other load on
the machine (``uptime``, recorded) takes its share.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from idkl_lib.experiments.cluster import make_executor
from idkl_lib.experiments.executors import LocalExecutor
from idkl_lib.experiments.sweep import Experiment, run_sweep
from idkl_lib.utils.io import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bench_sweep.json"
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
METRIC = "03_evaluate.protocols.sysu/all-search/single-shot.R1"


def _machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in subprocess.run(["lscpu"], capture_output=True, text=True,
         check=False).stdout.splitlines() if line.startswith("Model name")), platform.processor())  # fmt: skip
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="cells at a time for the parallel and submitit runs")
    parser.add_argument("--modes", default="sequential,parallel,submitit")
    parser.add_argument("--work-dir", type=Path, help="where the sweeps go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    experiment = Experiment(
        grid={"loss_preset": ["baseline", "+ip"], "seed": [0, 1, 2]},
        preset="ci",
        params={"data_root": str(work / "data"), "untrained_reference": False, "final_eval": False},
        compare=False,
    )
    executors = {
        "sequential": lambda: LocalExecutor(jobs=1),
        "parallel": lambda: LocalExecutor(jobs=args.jobs),
        "submitit": lambda: make_executor("submitit-local", array_parallelism=args.jobs),
    }
    record: dict[str, Any] = {"machine": _machine(), "cells": 6, "jobs": args.jobs, "runs": {}}
    metrics: dict[str, dict[str, Any]] = {}
    for mode in args.modes.split(","):
        load_before = _load()
        start = time.perf_counter()
        result = run_sweep(work / mode, experiment, NOTEBOOKS, progress=False, executor=executors[mode]())
        wall = time.perf_counter() - start
        metrics[mode] = {row["cell"]: row.get(METRIC) for row in result.rows}
        record["runs"][mode] = {
            "wall_s": round(wall, 1),
            "cells_per_hour": round(3600 * len(result.rows) / wall, 1),
            "failed": result.failed,
            "load_before": load_before,
            "load_after": _load(),
        }
    first = record["runs"].get("sequential", next(iter(record["runs"].values())))
    for run in record["runs"].values():
        run["ratio_to_sequential"] = round(first["wall_s"] / run["wall_s"], 2)
    record["same_metrics"] = all(m == next(iter(metrics.values())) for m in metrics.values())
    print(f"{record['machine']['cpu']}, {record['machine']['cores']} cores, {record['machine']['date']}")
    for mode, run in record["runs"].items():
        print(f"{mode:>10}: {run['wall_s']:7.1f} s  x{run['ratio_to_sequential']:.2f}  "
              f"{run['cells_per_hour']:6.1f} cells/h  (before: {run['load_before']})")  # fmt: skip
    print(f"same metrics per cell in every mode: {record['same_metrics']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, record)
    return 0 if record["same_metrics"] and not any(run["failed"] for run in record["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
