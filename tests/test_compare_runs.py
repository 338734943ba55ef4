"""Notebook 06's runs (:mod:`idkl_lib.experiments.compare_runs`) from hand-built folders: a JupyterLab run folder with
IDKL and its baseline is compared side by side; an empty, half-finished or missing folder gives a message that names
what is missing and how to get runs (an error in the pipeline); a sweep folder gives its finished cells."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from idkl_lib.experiments.compare_runs import HOW_TO_GET_RUNS, NothingToCompareError, compare_runs
from idkl_lib.runs import BASELINE_STEP, CHECKPOINT_NAME, EVAL_STEP, TRAIN_STEP

MAIN = "sysu/all-search/single-shot"
IDKL = {
    MAIN: {"R1": 60.0, "mAP": 55.0, "mINP": 40.0},
    "sysu/indoor-search/single-shot": {"R1": 50.0, "mAP": 52.0, "mINP": 45.0},
}
BASELINE = {
    MAIN: {"R1": 64.0, "mAP": 57.5, "mINP": 41.0},
    "sysu/indoor-search/single-shot": {"R1": 49.0, "mAP": 50.0, "mINP": 44.0},
}
CONFIG = {"dataset": "sysu", "loss_preset": "sysu", "seed": 0, "epochs": 20, "out_dir": "x/02_train"}


def _write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _interactive_run(run: Path, *, evaluated: bool = True) -> Path:
    """What notebooks 02 and 03 leave in a JupyterLab run folder (02 trains the baseline beside IDKL)."""
    for step in (TRAIN_STEP, BASELINE_STEP):
        _write(run / step / CHECKPOINT_NAME, "weights")
        history = [{"step": s, "epoch": 1, "lr": 0.01, "total": 9.0 / s, "id": 4.0 / s} for s in (1, 2, 3)]
        _write(run / step / "history.json", history)
    _write(run / TRAIN_STEP / "metrics.json", {"train_config": CONFIG, "eval": IDKL, "baseline": {"eval": BASELINE}})
    _write(run / BASELINE_STEP / "metrics.json", {"final": {}, "during_training": []})  # the trainer's own file
    if evaluated:
        protocols = {"protocols": IDKL, "cmc": {MAIN: [60.0, 80.0, 90.0]}, "baseline": {"protocols": BASELINE}}
        _write(run / EVAL_STEP / "metrics.json", protocols)
    return run


def test_a_jupyterlab_run_compares_idkl_with_its_baseline(tmp_path: Path) -> None:
    comparison = compare_runs(_interactive_run(tmp_path / "dev"))
    assert [r.config for r in comparison.runs] == ["IDKL (sysu)", "baseline"] and comparison.baseline == "baseline"
    assert comparison.protocol == MAIN and "side by side by notebook 03" in comparison.message
    assert "One seed each" in comparison.message
    (row_r1, row_map, row_minp) = comparison.paired
    assert row_r1["mean_diff"] == pytest.approx(-4.0) and row_map["mean_diff"] == pytest.approx(-2.5)
    assert row_r1["pairs"] == 1 and row_r1["inside_noise"] is None and row_r1["ci95"] is None  # one seed: no interval
    assert [s["n"] for s in comparison.summary] == [1, 1]
    assert set(comparison.figures("summary", "paired", "cmc", "loss_curves", "loss_terms")) == {
        "summary", "paired", "cmc", "loss_curves", "loss_terms",
    }  # fmt: skip
    metrics = comparison.metrics()
    assert metrics["num_runs"] == 2 and metrics["loss_terms"]["baseline"]["id"] == pytest.approx(4.0 / 3 * 11 / 6)
    # without 03 the numbers are each training's final evaluation, and the message says so
    alone = compare_runs(
        _interactive_run(tmp_path / "no-03", evaluated=False), protocol="sysu/indoor-search/single-shot"
    )
    assert "each training's final evaluation" in alone.message and alone.protocol == "sysu/indoor-search/single-shot"
    assert alone.paired[0]["mean_diff"] == pytest.approx(1.0) and "cmc" not in alone.figures("cmc")


def test_an_empty_or_half_finished_folder_says_what_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "dev"
    empty.mkdir()
    comparison = compare_runs(empty)
    assert comparison.runs == [] and comparison.figures("summary", "paired") == {}
    message = comparison.message
    assert message.startswith(f"Nothing to compare in {empty}") and message.endswith(HOW_TO_GET_RUNS)
    assert "no IDKL model (02_train/checkpoint.pth: run notebook 02)" in message and "no baseline" in message
    assert "python -m idkl_lib.experiments.sweep --run-dir reports/seeds" in message and "runs=[" in message
    assert comparison.metrics()["message"] == message and comparison.metrics()["num_runs"] == 0
    # 02 stopped after its first epoch: a checkpoint, no metrics.json, no baseline yet
    _write(empty / TRAIN_STEP / CHECKPOINT_NAME, "weights")
    half = compare_runs(empty).message
    assert "02_train has a checkpoint but no metrics.json" in half and "resume='auto'" in half
    assert "no IDKL model" not in half and "no baseline (02_train_baseline" in half
    assert "does not exist" in compare_runs(tmp_path / "missing").message
    with pytest.raises(NothingToCompareError, match="Nothing to compare in .*no baseline"):
        compare_runs(empty, strict=True)  # the pipeline: an error, so a sweep sees it


def test_a_sweep_folder_and_picked_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    cells = {}
    for preset, seed, r1 in (("baseline", 0, 50.0), ("sysu", 0, 53.0), ("baseline", 1, 51.0), ("sysu", 1, 55.0)):
        cell = sweep / f"loss_preset-{preset}__seed-{seed}"
        _write(cell / "params.json", {TRAIN_STEP: {"loss_preset": preset, "seed": seed}})
        _write(cell / "metrics.json", {EVAL_STEP: {"protocols": {MAIN: {"R1": r1, "mAP": r1, "mINP": r1}}}})
        cells[cell.name] = {"state": "done"}
    _write(sweep / "sweep.json", {"cells": cells, "order": list(cells)})
    comparison = compare_runs(sweep)
    assert comparison.message.startswith("Comparing 4 runs, the finished cells of the sweep")
    assert [s["config"] for s in comparison.summary] == ["baseline", "sysu"]
    assert comparison.paired[0]["mean_diff"] == pytest.approx(3.5) and comparison.paired[0]["pairs"] == 2
    picked = compare_runs(tmp_path / "ignored", runs=[sweep / "loss_preset-baseline__seed-0", sweep / "nothing"])
    assert picked.runs == [] and "has no metrics.json" in picked.message
    for name in cells:
        cells[name]["state"] = "running"
    _write(sweep / "sweep.json", {"cells": cells, "order": list(cells)})
    assert "no finished run folders" in compare_runs(sweep).message  # a sweep still running
