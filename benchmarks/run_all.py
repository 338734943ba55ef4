"""Run every benchmark one after the other (each in its own process) and print their summary lines.

    python -m benchmarks.run_all                      # CPU sizes; bench_gpu_train only reports that it needs a GPU
    python -m benchmarks.run_all --device cuda        # GPU sizes, including bench_gpu_train
    python -m benchmarks.run_all --quick              # tiny sizes (what tests/test_benchmarks.py runs)

Results go to ``--results-dir`` (default ``benchmarks/results/``, git-ignored) as ``<name>.json``; the summary
lines are also collected in ``summary.json`` there. The exit status is non-zero if any benchmark failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks._common import RESULTS_DIR, machine_info
from idkl_lib.utils.io import atomic_write_json

BENCHMARKS = ("bench_train_step", "bench_losses", "bench_eval", "bench_features", "bench_gpu_train")
REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in every benchmark")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None, help="run only these")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    summaries: dict[str, object] = {}
    failed: list[str] = []
    for name in args.only or BENCHMARKS:
        cmd = [sys.executable, "-m", f"benchmarks.{name}", "--device", args.device]
        if args.quick:
            cmd.append("--quick")
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        if name == "bench_gpu_train" and args.device != "cuda" and args.quick:
            cmd.append("--dry-run")  # on a CPU the full benchmark only says that it needs a GPU
        out = args.results_dir / f"{name}.json"
        cmd += ["--out", str(out)]
        print(f"[run_all] {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=REPO, check=False)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            failed.append(name)
            summaries[name] = {"status": f"failed (exit {done.returncode})", "seconds": seconds}
            continue
        if not out.is_file() or out.stat().st_mtime < time.time() - seconds - 1:
            summaries[name] = {"status": "skipped (wrote no result)", "seconds": seconds}
            continue
        summaries[name] = {"status": "ok", "seconds": seconds, "summary": json.loads(out.read_text())["summary"]}
    atomic_write_json(
        args.results_dir / "summary.json",
        {"machine": machine_info("cuda" if torch.cuda.is_available() else "cpu"), "benchmarks": summaries},
    )
    print("\n[run_all] summaries:")
    for name, entry in summaries.items():
        print(f"  {name}: {entry.get('summary', entry['status'])}")  # type: ignore[union-attr]
    if failed:
        print(f"[run_all] FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
