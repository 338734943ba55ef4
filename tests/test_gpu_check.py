"""The GPU check's CPU dry run: every code path at tiny sizes, README sections written between markers (in copies)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--dry-run", "--work-dir", str(tmp_path), "--out", str(out)]
    done = subprocess.run([*cmd, *extra], cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def _check_readmes(result: dict) -> None:
    (bench,) = (Path(p).read_text() for p in result["readmes"])  # one home: benchmarks/README.md (a copy here)
    assert bench.count("<!-- gpu_check:begin -->") == 1 and bench.count("<!-- gpu_check:end -->") == 1
    assert "DRY RUN" in bench
    assert "| GPU | time per epoch (1 GPU) | images/s | memory per GPU |" in bench
    assert "step float32, eager" in bench and "loader alone" in bench
    assert Path(result["readmes"][0]).parent != REPO  # the repository's README is left alone


def test_gpu_check_dry_run_without_the_notebook(tmp_path: Path) -> None:
    result = _dry_run(tmp_path, "--skip", "pipeline")
    steps = result["steps"]
    for name in ("bf16_eager", "fp32_eager", "bf16_compiled"):
        assert steps[name]["images_per_s"] > 0 and steps[name]["memory"]["peak_mib"] > 0
    assert steps["flops_per_image_counted_g"] > 0
    assert result["loader"]["images_per_s"] > 0 and result["loader"]["images_per_epoch"] > 0
    assert result["torchrun"]["returncode"] == 0 and result["torchrun"]["images_per_s"] > 0
    assert "pipeline" not in result
    _check_readmes(result)


def test_readme_sections_are_rewritten_between_the_markers(tmp_path: Path) -> None:
    from benchmarks.gpu_check import _replace_between_markers

    path = tmp_path / "README.md"
    path.write_text("# Title\n\ntext about `<!-- gpu_check:begin -->` in prose\n")
    _replace_between_markers(path, "first table", "## GPU")
    _replace_between_markers(path, "second table", "## GPU")
    text = path.read_text()
    assert text.startswith("# Title\n\ntext about `<!-- gpu_check:begin -->` in prose\n") and text.count("## GPU") == 1
    assert "second table" in text and "first table" not in text


@pytest.mark.slow
def test_gpu_check_dry_run_through_the_pipeline(tmp_path: Path) -> None:
    result = _dry_run(tmp_path, "--skip", "compile,torchrun")
    assert result["pipeline"]["images_per_s"] > 0 and result["pipeline"]["steps"] > 0
    _check_readmes(result)
