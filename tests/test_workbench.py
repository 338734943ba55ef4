"""Tests for idkl_lib.workbench (the notebooks' glue) and idkl_lib.viz.method (the one-batch walkthrough)."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from idkl_lib import workbench as wb
from idkl_lib.checkpoint import save_checkpoint
from idkl_lib.config import LossWeights, ModelConfig, TrainConfig
from idkl_lib.data import INFRARED, VISIBLE, VIDataset, dataset_statistics
from idkl_lib.losses import check_batch_layout, compute_losses
from idkl_lib.models import build_model
from idkl_lib.viz import figure_to_png, method
from idkl_lib.viz.export import png_export_available

H, W = 64, 32  # model input size used with the tiny 32 x 16 fixture images


def tiny_model(num_classes: int = 12, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(ModelConfig(num_classes=num_classes, arch="resnet18", base_width=8))


# ---------------------------------------------------------------------------------------------- parameters


def test_check_params_accepts_good_values_and_returns_them() -> None:
    params = dict(dataset="synthetic", device="auto", seed=0, height=64, width=32, p=4, k=4, w_tgsa_inter=None)
    assert wb.check_params(**params) == params


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("dataset", "market", "must be one of"),
        ("height", 60, "multiple of 16"),
        ("k", 3, "even integer"),
        ("device", "gpu", "'auto', 'cpu'"),
        ("epochs", 0, ">= 1"),
        ("seed", True, "integer"),
        ("w_id", -1.0, ">= 0"),
        ("lr", float("nan"), "positive number"),
        ("loss_preset", "paper", "must be one of"),
    ],
)
def test_check_params_names_the_bad_parameter(name: str, value: object, fragment: str) -> None:
    with pytest.raises(wb.ParameterError, match=rf"{name}=.*{fragment}"):
        wb.check_params(**{name: value})


def test_check_params_reports_every_problem_and_unknown_names() -> None:
    with pytest.raises(wb.ParameterError) as info:
        wb.check_params(p=1, k=5, colour="red")
    text = str(info.value)
    assert "p=1" in text and "k=5" in text and "colour: no rule" in text


def test_check_params_real_dataset_needs_a_root() -> None:
    with pytest.raises(wb.ParameterError, match="data_root is empty"):
        wb.check_params(dataset="sysu", data_root="")


def test_loss_overrides_feed_train_config() -> None:
    text = wb.loss_overrides(tgsa_inter=0.3, csa1_inter=0, id=None)
    assert text == "tgsa_inter=0.3,csa1_inter=0.0"
    weights = TrainConfig(loss_overrides=text, loss_preset="sysu").loss_weights()
    assert weights.tgsa_inter == 0.3 and weights.csa1_inter == 0.0 and weights.id == LossWeights().id
    assert wb.loss_overrides(id=None) == ""
    with pytest.raises(wb.ParameterError, match="unknown loss term"):
        wb.loss_overrides(tgsa=1.0)


def test_resolve_resume(tmp_path: Path) -> None:
    assert wb.resolve_resume("", tmp_path) is False
    assert wb.resolve_resume("auto", tmp_path) is True
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(b"x")
    assert wb.resolve_resume(str(ckpt), tmp_path) == ckpt
    with pytest.raises(wb.ParameterError, match="resume="):
        wb.resolve_resume(str(tmp_path / "missing.pth"), tmp_path)


# ---------------------------------------------------------------------------------------------- paths, metrics


def test_checkpoint_path_conventions(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="02_train.ipynb first"):
        wb.checkpoint_path(tmp_path)
    with pytest.raises(FileNotFoundError, match="with_baseline=True"):
        wb.checkpoint_path(tmp_path, step="02_train_baseline")
    assert wb.optional_checkpoint(tmp_path) is None  # the baseline: not trained, nothing to load
    with pytest.raises(FileNotFoundError, match="parameter checkpoint="):
        wb.optional_checkpoint(tmp_path, str(tmp_path / "given.pth"))  # a given path must exist
    with pytest.raises(FileNotFoundError, match="parameter checkpoint="):
        wb.checkpoint_path(tmp_path, str(tmp_path / "nope.pth"))
    default = tmp_path / "02_train" / "checkpoint.pth"
    default.parent.mkdir()
    default.write_bytes(b"x")
    assert wb.checkpoint_path(tmp_path) == default
    (tmp_path / "02_train_baseline").mkdir()
    (tmp_path / "02_train_baseline" / "checkpoint.pth").write_bytes(b"x")
    assert wb.optional_checkpoint(tmp_path) == tmp_path / "02_train_baseline" / "checkpoint.pth"
    assert wb.step_path(tmp_path, "03_evaluate") == tmp_path / "03_evaluate"


def test_write_metrics_makes_plain_json(tmp_path: Path) -> None:
    metrics = {
        "a": np.float32(0.5),
        "b": torch.tensor([1, 2]),
        "c": float("nan"),
        "d": {"e": np.arange(2), "f": (1, np.int64(2))},
        "g": tmp_path,
    }
    path = wb.write_metrics(tmp_path / "step", metrics)
    assert path == tmp_path / "step" / "metrics.json"
    loaded = json.loads(path.read_text())
    assert loaded == {"a": 0.5, "b": [1, 2], "c": None, "d": {"e": [0, 1], "f": [1, 2]}, "g": str(tmp_path)}


# ---------------------------------------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize("layout", ["sysu", "regdb"])
def test_prepare_synthetic_dataset_matches_its_card(synthetic_root: Path, layout: str) -> None:
    ds = wb.prepare_dataset("synthetic", synthetic_root, synthetic_layout=layout, synthetic_ids=4, synthetic_images=2)
    assert ds.name == layout and ds.num_train_ids == 4
    assert ds.root == wb.synthetic_root(synthetic_root, layout, 4, 2).resolve()
    card = wb.dataset_card(dataset_statistics(ds), wb.expected_statistics("synthetic", layout, 4, 2))
    assert card and all(row["ok"] for row in card), card
    marker = (ds.root / ".synthetic.json").stat().st_mtime_ns
    again = wb.prepare_dataset(
        "synthetic", synthetic_root, synthetic_layout=layout, synthetic_ids=4, synthetic_images=2
    )
    assert again.train == ds.train and (ds.root / ".synthetic.json").stat().st_mtime_ns == marker


def test_prepare_dataset_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(wb.ParameterError, match="synthetic_layout="):
        wb.prepare_dataset("synthetic", tmp_path, synthetic_layout="market")
    with pytest.raises(FileNotFoundError, match="SYSU"):
        wb.prepare_dataset("sysu", tmp_path / "missing")


def test_dataset_card_flags_differences(sysu_dataset: VIDataset) -> None:
    stats = dataset_statistics(sysu_dataset)
    card = wb.dataset_card(stats, {"num_train_ids": 12, "query.images": 999})
    assert [row["ok"] for row in card] == [True, False]
    assert card[1]["found"] == len(sysu_dataset.query)
    assert set(wb.expected_statistics("sysu")) == set(wb.EXPECTED_STATISTICS["sysu"])
    fig = wb.dataset_card_figure(card, "card")
    assert isinstance(fig, go.Figure) and fig.layout.title.text == "card"
    assert "✗ differs" in fig.data[0].cells.values[3]
    table = wb.statistics_table(stats, "splits")
    assert table.data[0].cells.values[0] == ["train", "train", "query", "gallery"]


def test_image_sizes_and_identity_rows(sysu_dataset: VIDataset) -> None:
    sizes, modality = wb.image_sizes(sysu_dataset.train, max_images=10, seed=1)
    assert sizes.shape == (10, 2) and set(map(tuple, sizes)) == {(32, 16)}
    assert set(modality) <= {VISIBLE, INFRARED}
    rows, labels = wb.identity_camera_rows(sysu_dataset.train, 0, per_camera=2)
    assert labels[0].endswith("VIS") and labels[-1].endswith("IR") and len(labels) == 6
    assert all(len(r) == 2 and {s.pid for s in r} == {0} for r in rows)
    with pytest.raises(ValueError, match="identity 999"):
        wb.identity_camera_rows(sysu_dataset.train, 999)
    assert wb.subsample(sysu_dataset.train, 1000) == list(sysu_dataset.train)
    assert len(wb.subsample(sysu_dataset.train, 5, seed=3)) == 5


# ---------------------------------------------------------------------------------------------- models


def test_load_trained_model_rebuilds_from_the_stored_config(tmp_path: Path) -> None:
    model = tiny_model(num_classes=5)
    cfg = TrainConfig(arch="resnet18", base_width=8, pretrained=False, height=64, width=32, p=2, k=2)
    path = save_checkpoint(
        tmp_path / "checkpoint.pth", model_state=model.state_dict(), epoch=3, step=30, config=cfg.to_dict(),
        extra={"num_classes": 5},
    )  # fmt: skip
    loaded, loaded_cfg, state = wb.load_trained_model(path, "cpu")
    assert loaded_cfg == cfg and state["epoch"] == 3 and not loaded.training
    x = torch.randn(2, 3, 64, 32)
    model.eval()
    torch.testing.assert_close(loaded.embed(x), model.embed(x))


def test_feature_views_cover_the_papers_three_features() -> None:
    assert [v.name for v in wb.FEATURE_VIEWS] == ["shared", "specific", "enhanced"]
    assert {(v.model, v.which) for v in wb.FEATURE_VIEWS} == {
        ("baseline", "shared"),
        ("idkl", "specific"),
        ("idkl", "shared"),
    }
    with pytest.raises(KeyError, match="baseline"):
        wb.model_for_view(wb.FEATURE_VIEWS[0], {"idkl": tiny_model()})


# ---------------------------------------------------------------------------------------------- training glue


def test_set_cpu_threads() -> None:
    before = torch.get_num_threads()
    try:
        assert wb.set_cpu_threads(1) == 1
        assert wb.set_cpu_threads(0) == 1  # 0 leaves the current setting alone
    finally:
        torch.set_num_threads(before)
    with pytest.raises(wb.ParameterError, match="cpu_threads=-1"):
        wb.set_cpu_threads(-1)


def _plotly_values(values: object) -> list[float]:
    """A trace's values as plotly JSON holds them: a list, or a base64 typed array (plotly >= 6)."""
    if isinstance(values, dict):
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)  # type: ignore[call-overload]


def _drawn_traces(plot: wb.LiveLossPlot) -> dict[str, tuple[list[float], list[float]]]:
    """``{trace name: (x, y)}`` of the figure the live plot's Output widget holds now (exactly one output)."""
    (out,) = plot.output.outputs
    assert out["output_type"] == "display_data"
    json.dumps(out)  # widget state must be plain JSON (no numpy arrays)
    data = out["data"]["application/vnd.plotly.v1+json"]["data"]
    return {t["name"]: (_plotly_values(t["x"]), _plotly_values(t["y"])) for t in data}


def test_live_loss_plot_redraws_into_one_output_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    import ipywidgets

    shown: list[object] = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    plot = wb.LiveLossPlot("losses", every=2, smoothing=0.0, min_interval=0.0)
    drawn: list[list[float]] = []  # the "total" trace of every figure the widget received
    for step in range(1, 6):
        plot({"step": step, "epoch": 1, "lr": 0.1, "total": 3.0 / step, "id": 2.0 / step})
        if plot.output is not None:
            traces = _drawn_traces(plot)
            assert list(traces) == ["total", "id"]  # the total's panel, then the identity panel
            drawn.append(traces["total"][1])
    # one Output widget displayed once, its content replaced at rows 2 and 4 with the values logged so far
    assert len(shown) == 1 and isinstance(shown[0], ipywidgets.Output) and shown[0] is plot.output
    assert drawn[0] == [3.0, 1.5] and drawn[1] == drawn[0] and drawn[2] == pytest.approx([3.0, 1.5, 1.0, 0.75])
    plot.redraw()
    final = _drawn_traces(plot)
    assert final["total"] == ([1.0, 2.0, 3.0, 4.0, 5.0], pytest.approx([3.0 / n for n in range(1, 6)]))
    assert final["id"][1] == pytest.approx([2.0 / n for n in range(1, 6)]) and len(shown) == 1
    # after training the live drawing gives way to the final figure, shown once by the notebook
    earlier = [{"step": 0, "epoch": 1, "lr": 0.1, "total": 4.0, "id": 3.0}]  # a resumed run's earlier rows
    figure = plot.finish(earlier + plot.history)
    assert plot.output.outputs == () and len(shown) == 1
    assert list(next(t for t in figure.data if t.name == "total").y) == [4.0] + [3.0 / n for n in range(1, 6)]
    throttled = wb.LiveLossPlot("losses", min_interval=3600.0)
    for step in range(1, 6):
        throttled({"step": step, "total": 1.0})
    # the first row draws, the rest wait for the interval
    assert len(shown) == 2 and _drawn_traces(throttled)["total"] == ([1.0], [1.0])


def test_loss_figure_has_a_panel_per_term_group_that_holds_its_curves() -> None:
    from idkl_lib.config.ablation import TERM_GROUPS
    from idkl_lib.viz.theme import OKABE_ITO

    terms = [t for group in ("identity", "triplet", "ip", "tgsa", "csa", "mod") for t in TERM_GROUPS[group]]
    history = [
        {"step": s, "epoch": 1, "lr": 0.1, **{t: 1.0 / s for t in terms}, "ip_entropy": 1e-7 / s, "tri_sh": 0.0,
         "total": 20.0 / s}
        for s in range(1, 5)
    ]  # fmt: skip
    fig = wb.loss_figure(history, "losses", smoothing=0.0)
    by_axis: dict[str, list] = {}
    for trace in fig.data:
        by_axis.setdefault(trace.yaxis, []).append(trace)
    panels = [[t.legendgroup for t in traces] for traces in by_axis.values()]
    assert panels == [["total"], ["id", "id_sp"], ["tri_sh", "tri_sp"], ["ip_entropy", "ip_centroid"],
                      ["tgsa_inter", "tgsa_intra", "tgsa_intra_cross"], ["csa1_inter", "csa1_intra"],
                      ["csa2_inter", "csa2_intra"], ["disc", "confuser"]]  # fmt: skip
    # legends name the curves within their group; a term that is 0 throughout says so (a log axis cannot draw it)
    tgsa = next(t.yaxis for t in fig.data if t.legendgroup == "tgsa_inter")
    assert [t.name for t in by_axis[tgsa]] == ["inter", "intra", "intra_cross"]
    assert [t.name for t in fig.data if t.legendgroup == "tri_sh"] == ["tri_sh = 0"]
    assert all(t.hovertemplate.startswith(f"{t.legendgroup}: ") for t in fig.data)
    for axis, traces in by_axis.items():
        layout_axis = fig.layout["yaxis" + axis[1:]]
        low, high = layout_axis.range
        values = [v for t in traces for v in t.y if v > 0]
        assert layout_axis.type == "log" and low <= math.log10(min(values)) and math.log10(max(values)) <= high
        colors = [t.line.color for t in traces]
        assert len(set(colors)) == len(colors), f"one colour per curve of a panel: {colors}"
        assert ("#000000" in colors) == (traces[0].name == "total"), "black is the total's alone"
        assert {t.legend for t in traces} == {traces[0].legend}, "each panel has its own legend"
    assert len({t.legend for t in fig.data}) == 8 and set(OKABE_ITO) >= {t.line.color for t in fig.data}
    assert fig.layout.height >= 200 * 4 and fig.layout.title.text == "losses"
    baseline = wb.loss_figure([{k: v for k, v in row.items() if k in ("step", "total", "id", "tri_sp")}
                               for row in history], "baseline", smoothing=0.5)  # fmt: skip
    assert [t.name for t in baseline.data if t.showlegend is not False] == ["total", "id", "tri_sp"]
    assert "EMA smoothing 0.5" in baseline.layout.title.text and baseline.layout.height < fig.layout.height
    silent = wb.loss_figure([{"step": 1, "tgsa_inter": 0.0, "total": 1.0}], "p=2 x k=2", smoothing=0.0)
    assert [a.text for a in silent.layout.annotations] == ["0 throughout"]  # a panel with nothing to draw
    with pytest.raises(ValueError, match="no loss terms"):
        wb.loss_figure([{"step": 1, "epoch": 1, "lr": 0.1}], "nothing")


def test_final_losses_average_the_last_epoch() -> None:
    history = [
        {"step": 1, "epoch": 1, "lr": 0.1, "total": 9.0},
        {"step": 2, "epoch": 2, "lr": 0.1, "total": 4.0},
        {"step": 3, "epoch": 2, "lr": 0.1, "total": 2.0},
    ]
    assert wb.final_losses(history) == {"total": 3.0}
    assert wb.final_losses([]) == {}


# ---------------------------------------------------------------------------------------------- evaluation glue


def test_rank_view_sysu_uses_one_protocol_trial(sysu_dataset: VIDataset) -> None:
    q = torch.randn(len(sysu_dataset.query), 8)
    g = torch.randn(len(sysu_dataset.gallery), 8)
    view = wb.rank_view(sysu_dataset, q, g)
    gallery = view["gallery"]
    assert view["camera_alias"] == {3: 2} and view["name"].startswith("sysu/all-search/single-shot")
    assert view["distmat"].shape == (len(sysu_dataset.query), len(gallery))
    # single shot: one image per (identity, camera) among cameras 1, 2, 4, 5
    keys = [(s.pid, s.camid) for s in gallery]
    assert len(keys) == len(set(keys)) and {s.camid for s in gallery} <= {1, 2, 4, 5}
    assert np.all(view["distmat"] >= 0) and np.all(view["distmat"] <= 2.0 + 1e-6)  # unit vectors


def test_rank_view_regdb_uses_the_whole_gallery(regdb_dataset: VIDataset) -> None:
    q = torch.randn(len(regdb_dataset.query), 8)
    view = wb.rank_view(regdb_dataset, q, torch.randn(len(regdb_dataset.gallery), 8))
    assert view["gallery"] == list(regdb_dataset.gallery) and view["camera_alias"] == {}


# ---------------------------------------------------------------------------------------------- Grad-CAM glue


def test_gradcam_pairs_cross_modality_same_identity(sysu_dataset: VIDataset) -> None:
    pairs = wb.gradcam_pairs(sysu_dataset, num_per_modality=2, seed=0)
    assert [q.modality for q, _ in pairs] == [INFRARED, INFRARED, VISIBLE, VISIBLE]
    assert all(q.pid == m.pid and q.modality != m.modality for q, m in pairs)
    assert len({q.pid for q, _ in pairs}) == 4
    assert pairs == wb.gradcam_pairs(sysu_dataset, num_per_modality=2, seed=0)


def test_cam_statistics_reference_values() -> None:
    uniform = np.ones((2, 10, 10))
    stats = wb.cam_statistics(uniform)
    assert stats["box_mass"] == pytest.approx(stats["box_area"]) == pytest.approx(0.6)
    assert stats["top10_mass"] == pytest.approx(0.1) and stats["mean_cam"] == 1.0
    peaked = np.zeros((1, 10, 10))
    peaked[0, 5, 5] = 1.0
    assert wb.cam_statistics(peaked)["box_mass"] == 1.0 and wb.cam_statistics(peaked)["top10_mass"] == 1.0
    assert wb.cam_statistics(np.zeros((1, 4, 4)))["box_mass"] == 0.0


def test_view_cams_one_map_per_view_and_query() -> None:
    models = {"idkl": tiny_model(seed=0), "baseline": tiny_model(seed=1)}
    queries, matched = torch.randn(2, 3, H, W), torch.randn(2, 3, H, W)
    before = {k: v.clone() for k, v in models["idkl"].state_dict().items()}
    cams, sims = wb.view_cams(models, queries, matched)
    assert list(cams) == [v.label for v in wb.FEATURE_VIEWS] == list(sims)
    assert all(c.shape == (2, H, W) and c.min() >= 0 and c.max() <= 1 for c in cams.values())
    assert all(s.shape == (2,) and np.all(np.abs(s) <= 1 + 1e-6) for s in sims.values())
    for key, value in models["idkl"].state_dict().items():
        torch.testing.assert_close(value, before[key])


def test_modality_gap_figure() -> None:
    stats = {
        name: {"cross_same_id": 0.2, "cross_diff_id": 0.5, "silhouette_modality": 0.1, "silhouette_identity": 0.3}
        for name in ("a", "b")
    }
    fig = wb.modality_gap_figure(stats, "gap")
    assert len(fig.data) == 4 and fig.layout.title.text == "gap"
    assert fig.layout.xaxis.title.text == "feature" and fig.layout.yaxis2.title.text == "silhouette score"


def test_setup_notebook_renderer_survives_html_export() -> None:
    import plotly.io as pio

    old = pio.renderers.default
    try:
        wb.setup_notebook()
        fig = go.Figure(go.Scatter(x=[1], y=[2]))
        assert {"application/vnd.plotly.v1+json", "text/html"} <= set(fig._repr_mimebundle_())
        bundle = wb._mime_bundle(fig)  # what LiveLossPlot displays: both parts, without another copy of plotly.js
        assert set(bundle) == {"application/vnd.plotly.v1+json", "text/html"}
        assert "PlotlyConfig" not in bundle["text/html"] and len(bundle["text/html"]) < 100_000
    finally:
        pio.renderers.default = old


# ---------------------------------------------------------------------------------------------- walkthrough


@pytest.fixture(scope="module")
def walk(sysu_dataset: VIDataset) -> method.BatchWalkthrough:
    batch = method.sample_batch(sysu_dataset.train, p=4, k=4, height=H, width=W, seed=0)
    return method.walk_batch(tiny_model(sysu_dataset.num_train_ids), batch)


def test_sample_batch_follows_the_sampler_layout(sysu_dataset: VIDataset) -> None:
    batch = method.sample_batch(sysu_dataset.train, p=3, k=4, height=H, width=W, seed=1)
    assert batch.images.shape == (12, 3, H, W)
    assert check_batch_layout(batch.pids, batch.modality) == (3, 4)
    assert [s.pid for s in batch.samples] == batch.pids.tolist()
    assert [s.modality for s in batch.samples] == batch.modality.tolist()
    with pytest.raises(ValueError, match="lower p"):
        method.sample_batch(sysu_dataset.train, p=40, k=4, height=H, width=W)


def test_walk_batch_leaves_the_model_untouched(sysu_dataset: VIDataset) -> None:
    model = tiny_model(sysu_dataset.num_train_ids).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = method.sample_batch(sysu_dataset.train, p=4, k=4, height=H, width=W)
    method.walk_batch(model, batch)
    assert not model.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, state[key])  # BatchNorm running statistics included


def test_walk_batch_diagnostics(walk: method.BatchWalkthrough) -> None:
    b, n = 16, 8
    assert walk.gate_in.shape == walk.gate_raw.shape == (b, H // 16, W // 16)
    assert ((walk.gate_in > 0) & (walk.gate_in < 1)).all()
    assert walk.gate_values["m_IN"].shape[0] == b
    assert set(walk.affinity) == {"shared · visible", "shared · infrared", "specific · visible", "specific · infrared"}
    for matrix in walk.affinity.values():
        assert matrix.shape == (n, n) and np.isnan(np.diag(matrix)).all()
        np.testing.assert_allclose(np.nansum(matrix, axis=1), 1.0, rtol=1e-5)
    for probs in walk.set_probs.values():
        assert probs.shape[0] == 2
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    for probs in walk.class_probs.values():
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert all(math.isfinite(v) and v >= 0 for v in (*walk.affinity_kl.values(), *walk.logit_kl.values()))
    assert list(walk.losses) == list(LossWeights().active())
    assert set(walk.mean_distance) == {"shared", "specific"} and all(v > 0 for v in walk.mean_distance.values())
    # the CSA1 intra KL is the weighted loss term (weight 1), computed by the same loss function
    assert walk.logit_kl["CSA1 intra · shared (visible ↔ infrared)"] == pytest.approx(walk.losses["csa1_intra"])
    recomputed = compute_losses(walk.output, walk.batch.pids, walk.batch.modality, LossWeights())
    assert walk.losses["tgsa_inter"] == pytest.approx(float(recomputed["tgsa_inter"]))


def test_walkthrough_figures(walk: method.BatchWalkthrough) -> None:
    figures = {
        "images": method.batch_images_figure(walk.batch),
        "gates": method.purifier_mask_figure(walk, num_images=3),
        "gate_hist": method.gate_histogram_figure(walk),
        "tgsa": method.tgsa_figure(walk),
        "csa": method.csa_figure(walk),
        "csa_pair": method.csa_sample_figure(walk),
        "csa_set": method.csa_set_figure(walk),
        "losses": method.loss_terms_figure({"untrained": walk.losses, "trained": walk.losses}),
    }
    for name, fig in figures.items():
        assert isinstance(fig, go.Figure) and fig.layout.title.text, name
        if png_export_available():
            assert figure_to_png(fig, scale=0.5).startswith(b"\x89PNG"), name  # the report's PNGs
    assert len(figures["tgsa"].data) == 4 and "symmetric KL" in figures["tgsa"].layout.title.text
    assert len(figures["gate_hist"].data) == 4
    assert [t.name for t in figures["losses"].data] == ["untrained", "trained"]
    assert figures["losses"].data[0].y[-1].startswith("id (")  # first term drawn at the top
    assert len(figures["gates"].data) == 9  # 3 images x (image, m_IN, m_F)
    mass = method.set_block_mass(walk)
    assert all(m.shape == (4, 4) and np.all(m >= 0) and m.sum() <= 1 + 1e-5 for m in mass.values())


def test_loss_term_labels_use_the_method_texts_symbols() -> None:
    import re

    table = (Path(__file__).resolve().parents[1] / "docs" / "method.md").read_text(encoding="utf-8")
    documented = {  # term -> symbol from the "equation" column of the weight-preset table, LaTeX stripped
        m.group(1): re.sub(r"[{}\\]", "", m.group(2)) for m in re.finditer(r"^\| `(\w+)` \| \$([^$]+)\$", table, re.M)
    }
    assert documented["ip_entropy"] == "L_F" and documented["ip_centroid"] == "L_mIN"
    assert set(method.TERM_SYMBOLS) == set(LossWeights.names())
    assert {t: method.TERM_SYMBOLS[t] for t in documented} == documented
    fig = method.loss_terms_figure({"untrained": {"ip_entropy": 0.5, "ip_centroid": 0.25, "id": 2.0}})
    assert list(fig.data[0].y) == ["ip_centroid (purifier L_mIN)", "ip_entropy (purifier L_F)", "id (identity L_id)"]
    assert list(fig.data[0].x) == [0.25, 0.5, 2.0]
