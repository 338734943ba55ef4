"""IDKL vs baseline (notebook 03): the difference table against hand-built metrics, two checkpoints evaluated with one
protocol (the same checkpoint twice differs by exactly zero), the baseline's discovery and the figure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from idkl_lib.checkpoint import load_trained_model, save_checkpoint
from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.eval.comparison import EvalSettings, comparison_rows, metric_differences, signed
from idkl_lib.eval.features import extract_features
from idkl_lib.eval.protocols import evaluate_dataset
from idkl_lib.models import build_model
from idkl_lib.notebook.comparison import compare_checkpoints, evaluate_checkpoint, find_baseline_checkpoint
from idkl_lib.runs import BASELINE_STEP, CHECKPOINT_NAME
from idkl_lib.viz.baseline_table import AHEAD_FILL, BEHIND_FILL, baseline_table

SETTINGS = EvalSettings(num_trials=2)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny networks run fastest on one CPU thread (several spinning threads slow them down on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _checkpoint(path: Path, seed: int, dataset: str = "sysu") -> Path:
    cfg = TrainConfig(dataset=dataset, arch="resnet18", base_width=8, pretrained=False, height=64, width=32, p=2, k=2)
    torch.manual_seed(seed)
    model = build_model(cfg.model_config(12))
    return save_checkpoint(path, model_state=model.state_dict(), epoch=2, step=4, config=cfg.to_dict(),
                           extra={"num_classes": 12})  # fmt: skip


IDKL = {
    "sysu/all-search/single-shot": {"R1": 69.4, "R5": 95.0, "R10": 98.0, "mAP": 65.1, "mINP": 50.6, "num_queries": 384},
    "sysu/indoor-search/single-shot": {
        "R1": 57.2,
        "R5": 89.6,
        "R10": 96.4,
        "mAP": 66.2,
        "mINP": 61.5,
        "num_queries": 3,
    },
}
BASELINE = {
    "sysu/all-search/single-shot": {"R1": 73.3, "R5": 92.0, "R10": 96.2, "mAP": 63.9, "mINP": 48.3, "num_queries": 384},
    "sysu/indoor-search/single-shot": {
        "R1": 57.2,
        "R5": 90.0,
        "R10": 95.0,
        "mAP": 60.0,
        "mINP": 62.0,
        "num_queries": 3,
    },
}


def test_difference_table_against_hand_built_metrics() -> None:
    rows = comparison_rows(IDKL, BASELINE)
    assert len(rows) == 2 * 5 and rows[0] == {
        "setting": "sysu/all-search/single-shot", "metric": "R1", "idkl": 69.4, "baseline": 73.3,
        "difference": pytest.approx(-3.9),
    }  # fmt: skip
    diffs = metric_differences(IDKL, BASELINE)
    assert list(diffs) == list(IDKL) and all(list(d) == ["R1", "mAP", "mINP"] for d in diffs.values())
    assert diffs["sysu/all-search/single-shot"] == pytest.approx({"R1": -3.9, "mAP": 1.2, "mINP": 2.3})
    assert diffs["sysu/indoor-search/single-shot"] == pytest.approx({"R1": 0.0, "mAP": 6.2, "mINP": -0.5})
    with pytest.raises(ValueError, match="different protocol settings"):
        comparison_rows(IDKL, {"sysu/all-search/single-shot": BASELINE["sysu/all-search/single-shot"]})
    with pytest.raises(ValueError, match="'mINP' missing"):
        comparison_rows(IDKL, {name: {"R1": 1.0, "mAP": 1.0} for name in IDKL}, ("R1", "mINP"))


def test_signed_differences_show_their_sign() -> None:
    assert [signed(v) for v in (1.254, -3.9, 0.0, -0.001, 0.004)] == ["+1.25", "\u22123.90", "0.00", "0.00", "0.00"]
    assert signed(-0.06, 1) == "\u22120.1"


def test_the_same_checkpoint_twice_differs_by_zero(tmp_path: Path, sysu_dataset: VIDataset) -> None:
    path = _checkpoint(tmp_path / "a.pth", seed=0)
    comparison = compare_checkpoints(path, path, sysu_dataset, SETTINGS)
    assert comparison.idkl.protocols() == comparison.baseline.protocols()
    assert set(comparison.differences()) == {
        f"sysu/{mode}-search/{shot}" for mode in ("all", "indoor") for shot in ("single-shot", "multi-shot")
    }
    assert all(v == 0.0 for d in comparison.differences().values() for v in d.values())
    # the notebook's already extracted features give the same evaluation as extracting them here
    model, _, _ = load_trained_model(path)
    q = extract_features(model, sysu_dataset.query, 64, 32)
    g = extract_features(model, sysu_dataset.gallery, 64, 32)
    reused = compare_checkpoints(path, path, sysu_dataset, SETTINGS, features=(q, g))
    assert reused.idkl.protocols() == comparison.idkl.protocols()


def test_two_checkpoints_are_evaluated_with_one_protocol(tmp_path: Path, sysu_dataset: VIDataset) -> None:
    a, b = _checkpoint(tmp_path / "a.pth", seed=0), _checkpoint(tmp_path / "b.pth", seed=1)
    settings = EvalSettings(feature="concat", flip=True, num_trials=3)
    comparison = compare_checkpoints(a, b, sysu_dataset, settings)
    # each side equals its own evaluation with the same protocol options
    for side, path in ((comparison.idkl, a), (comparison.baseline, b)):
        model, _, _ = load_trained_model(path)
        q = extract_features(model, sysu_dataset.query, 64, 32, which="concat", flip=True)
        g = extract_features(model, sysu_dataset.gallery, 64, 32, which="concat", flip=True)
        expected = evaluate_dataset(sysu_dataset, q, g, num_trials=3)
        assert side.protocols() == {n: {**r.mean.as_dict(), "num_queries": r.mean.num_queries} for n, r in
                                    expected.items()}  # fmt: skip
        assert all(res.settings["gallery_sizes"] == expected[n].settings["gallery_sizes"]
                   for n, res in side.results.items())  # fmt: skip
    for setting, diff in comparison.differences().items():
        i, j = comparison.idkl.protocols()[setting], comparison.baseline.protocols()[setting]
        assert diff == {m: i[m] - j[m] for m in ("R1", "mAP", "mINP")}
    assert any(v != 0.0 for d in comparison.differences().values() for v in d.values()), "different weights"
    metrics = comparison.metrics()
    assert set(metrics) == {"baseline", "vs_baseline"}
    assert metrics["baseline"] == {"checkpoint": str(b), "protocols": comparison.baseline.protocols()}
    assert all(isinstance(r["num_queries"], int) for r in metrics["baseline"]["protocols"].values())


def test_a_baseline_of_another_dataset_is_refused(tmp_path: Path, sysu_dataset: VIDataset) -> None:
    a, b = _checkpoint(tmp_path / "a.pth", seed=0), _checkpoint(tmp_path / "b.pth", seed=0, dataset="regdb")
    with pytest.raises(ValueError, match=r"b\.pth was trained on 'regdb' but .*a\.pth on 'sysu'"):
        compare_checkpoints(a, b, sysu_dataset, SETTINGS)
    assert evaluate_checkpoint(a, sysu_dataset, SETTINGS).loss_preset == "sysu"


def test_the_baseline_checkpoint_is_found_or_the_comparison_skipped(tmp_path: Path) -> None:
    path, reason = find_baseline_checkpoint(tmp_path)
    assert path is None and "comparison is skipped" in reason and "loss_preset='baseline'" in reason
    assert str(tmp_path / BASELINE_STEP / CHECKPOINT_NAME) in reason and "\n" not in reason
    written = _checkpoint(tmp_path / BASELINE_STEP / CHECKPOINT_NAME, seed=0)
    assert find_baseline_checkpoint(tmp_path) == (written, "")
    assert find_baseline_checkpoint(tmp_path / "elsewhere", str(written)) == (written, "")
    with pytest.raises(FileNotFoundError, match="baseline_checkpoint='missing.pth'"):
        find_baseline_checkpoint(tmp_path, "missing.pth")


def test_baseline_table_one_table_per_setting() -> None:
    fig = baseline_table(IDKL, BASELINE, "IDKL vs baseline")
    tables = [t for t in fig.data if t.type == "table"]
    assert len(tables) == 2
    assert [a.text for a in fig.layout.annotations] == list(IDKL)
    first = tables[0]
    header = [h.replace("<b>", "").replace("</b>", "") for h in first.header.values]
    assert header == ["", "R1", "R5", "R10", "mAP", "mINP", "queries"]
    r1, queries = first.cells.values[1], first.cells.values[-1]
    assert list(r1) == ["69.40", "73.30", "<b>\u22123.90</b>"]
    assert list(queries) == ["384", "384", ""], "counts are integers, with no difference"
    fills = first.cells.fill.color
    assert fills[1][2] == BEHIND_FILL and fills[4][2] == AHEAD_FILL  # R1 behind, mAP ahead
    assert tables[1].cells.fill.color[1][2] == "white", "a zero difference is not coloured"
    assert tables[1].cells.values[4][2] == "<b>+6.20</b>"
