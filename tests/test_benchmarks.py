"""Smoke test of benchmarks/: each script runs at its ``--quick`` sizes in a subprocess and writes a valid JSON result.

No timing is asserted (speed targets are read from the benchmarks' printed ratios, never from tests).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_benchmark(name: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", f"benchmarks.{name}", "--quick", "--threads", "1", "--out", str(out), *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def check_result(done: subprocess.CompletedProcess[str], out: Path, name: str) -> dict[str, object]:
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert out.is_file(), f"{name} wrote no result file:\n{done.stdout[-2000:]}"
    result = json.loads(out.read_text())
    assert result["benchmark"] == name and result["quick"] is True
    assert {"machine", "settings", "results", "summary"} <= set(result)
    assert result["machine"]["cpu_model"] and result["machine"]["torch"]
    assert f"[{name}] " in done.stdout  # the printed summary line
    assert not list(out.parent.glob(f".{out.name}.*.tmp")), "atomic write left a temporary file"
    return result


def test_bench_train_step_quick(tmp_path: Path) -> None:
    out = tmp_path / "train_step.json"
    result = check_result(run_benchmark("bench_train_step", out), out, "bench_train_step")
    res = result["results"]
    assert res["images_per_s"]["idkl"] > 0 and res["images_per_s"]["bare"] > 0  # type: ignore[index]
    assert 0 < res["loss_block"]["share_of_step_direct"]  # type: ignore[index]
    assert res["flops"]["counted_flop_ratio"] > 1  # type: ignore[index]


def test_bench_losses_quick(tmp_path: Path) -> None:
    out = tmp_path / "losses.json"
    result = check_result(run_benchmark("bench_losses", out), out, "bench_losses")
    res = result["results"]
    assert res["agreement"]["float64_total_rel_diff"] < 1e-10  # type: ignore[index]
    assert set(res["per_term_fwd_bwd"]) >= {"id", "tri_sh", "tgsa_inter", "csa2_intra"}  # type: ignore[arg-type]


@pytest.mark.slow
def test_bench_eval_quick(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = check_result(run_benchmark("bench_eval", out), out, "bench_eval")
    sysu = result["results"]["sysu_all_search"]  # type: ignore[index]
    for shots in ("single_shot", "multi_shot"):
        assert sysu[shots]["max_abs_diff_float64"] <= 1e-9
    assert len(result["results"]["evaluate_rank_scaling"]) == 2  # type: ignore[index]


@pytest.mark.slow
def test_bench_features_quick(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    result = check_result(run_benchmark("bench_features", out), out, "bench_features")
    assert result["results"]["images_per_s"]["loader"] > 0  # type: ignore[index]


def test_bench_gpu_train_dry_run_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_train.json"
    result = check_result(run_benchmark("bench_gpu_train", out, "--device", "cpu", "--dry-run"), out, "bench_gpu_train")
    assert result["settings"]["dry_run"] is True  # type: ignore[index]
    assert result["results"]["train_images_per_s"] > 0  # type: ignore[index]


def test_bench_gpu_train_without_gpu_explains_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gpu_train.json"
    cmd = [sys.executable, "-m", "benchmarks.bench_gpu_train", "--device", "cpu", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and "needs --device cuda" in done.stdout
    assert not out.exists()


def test_bench_real_size_quick(tmp_path: Path) -> None:
    out = tmp_path / "real_size.json"
    result = check_result(run_benchmark("bench_real_size", out), out, "bench_real_size")
    (proc,) = result["results"]["per_process"]  # type: ignore[index]
    assert result["results"]["all_finite"] is True  # type: ignore[index]
    assert proc["maxrss_mib_end"] > 0 and proc["step_seconds"] > 0 and set(proc["loss_terms"]) >= {"id", "tgsa_inter"}


@pytest.mark.slow
def test_bench_real_size_quick_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "real_size2.json"
    result = check_result(run_benchmark("bench_real_size", out, "--processes", "2"), out, "bench_real_size")
    procs = result["results"]["per_process"]  # type: ignore[index]
    assert [p["rank"] for p in procs] == [0, 1] and all(p["local_ids"] == 2 for p in procs)


def test_bench_loader_quick(tmp_path: Path) -> None:
    out = tmp_path / "loader.json"
    result = check_result(run_benchmark("bench_loader", out, "--decoded-cache"), out, "bench_loader")
    res = result["results"]
    assert res["per_worker_images_per_cpu_s"] > 0 and res["loader_images_per_s"] > 0  # type: ignore[index]
    assert res["decoded_cache"]["read_only_images_per_s"] > 0  # type: ignore[index]


@pytest.mark.slow
def test_bench_png_export_quick(tmp_path: Path) -> None:
    if shutil.which("chromium") is None and shutil.which("google-chrome") is None:
        pytest.skip("PNG export needs Chrome/Chromium")
    out = tmp_path / "png_export.json"
    result = check_result(run_benchmark("bench_png_export", out), out, "bench_png_export")
    res = result["results"]
    assert res["reused_browser"]["n"] == res["one_browser_per_figure"]["n"] == 4  # type: ignore[index]
    assert res["reused_browser"]["failures"] == []  # type: ignore[index]
    assert res["median_ratio_per_figure_over_reused"] > 0  # type: ignore[index]


def test_bench_search_quick(tmp_path: Path) -> None:
    out = tmp_path / "search.json"
    result = check_result(run_benchmark("bench_search", out), out, "bench_search")
    assert result["results"]["search_ms_per_query"] > 0  # type: ignore[index]


def test_bench_export_quick(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    out = tmp_path / "export.json"
    result = check_result(run_benchmark("bench_export", out), out, "bench_export")
    demo = result["results"]["demo"]  # type: ignore[index]
    assert demo["max_abs_diff"] <= 1e-4 and demo["same_top10"] and demo["size_mib"] > 0
