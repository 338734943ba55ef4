"""Plotly figures, image helpers, rank lists and saving (HTML + PNG)."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from idkl_lib.data.records import Sample, VIDataset
from idkl_lib.viz import export, plots
from idkl_lib.viz.images import add_border, decode_data_uri, denormalize, load_image, png_data_uri, to_uint8
from idkl_lib.viz.ranklist import first_match_ranks, ranked_gallery, ranklist_figure, save_ranklist_png


def _write_images(folder: Path, specs: list[tuple[int, int, int]], size: tuple[int, int] = (40, 20)) -> list[Sample]:
    """One PNG per (pid, camid, modality); infrared images are written single-channel ('L') like real IR files."""
    rng = np.random.default_rng(0)
    out = []
    for k, (pid, cam, mod) in enumerate(specs):
        path = folder / f"p{pid}_c{cam}_{k}.png"
        arr = (rng.random((*size, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).convert("L" if mod == 1 else "RGB").save(path)
        out.append(Sample(str(path), pid, cam, mod))
    return out


@pytest.fixture
def needs_chrome() -> None:
    if not export.png_export_available():
        pytest.skip("PNG export needs Chrome/Chromium for kaleido (apt-get install chromium, or plotly_get_chrome)")


def _png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


# -- images -------------------------------------------------------------------------------------------------------


def test_load_image_resizes_and_converts_infrared_to_rgb(tmp_path: Path) -> None:
    (sample,) = _write_images(tmp_path, [(0, 3, 1)])
    img = load_image(sample.path, (64, 32))
    assert img.shape == (64, 32, 3) and img.dtype == np.uint8
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])
    assert load_image(sample.path).shape == (40, 20, 3)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")


def test_denormalize_inverts_imagenet_normalisation() -> None:
    rgb = torch.rand(2, 3, 8, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    normed = (rgb - mean) / std
    before = normed.clone()
    out = denormalize(normed)
    assert out.shape == (2, 8, 4, 3) and out.dtype == np.float32
    assert np.allclose(out, rgb.permute(0, 2, 3, 1).numpy(), atol=1e-6)
    assert denormalize(normed[0]).shape == (8, 4, 3)
    assert torch.equal(normed, before)


def test_border_and_data_uri_round_trip() -> None:
    img = np.zeros((10, 6, 3), dtype=np.uint8)
    framed = add_border(img, "#0072B2", 2)
    assert img.sum() == 0  # input untouched
    assert tuple(framed[0, 0]) == (0x00, 0x72, 0xB2) and tuple(framed[5, 3]) == (0, 0, 0)
    assert np.array_equal(decode_data_uri(png_data_uri(framed)), framed)
    assert np.array_equal(to_uint8(np.ones((2, 2))), np.full((2, 2, 3), 255, dtype=np.uint8))


# -- curves and tables ----------------------------------------------------------------------------------------------


def test_loss_curves_from_both_history_forms() -> None:
    rows = [{"step": 10 * i, "id": 3.0 - i, "tri": 1.0, "lr": 0.1} for i in range(3)]
    rows[1].pop("tri")
    fig = plots.loss_curves(rows)
    names = [t.name for t in fig.data]
    assert names == ["id", "tri", "total (sum)"]
    total = fig.data[2]
    assert list(fig.data[0].x) == [0, 10, 20]
    assert np.allclose(total.y, [4.0, 2.0, 2.0])  # the total skips the missing term
    assert np.isnan(fig.data[1].y[1])
    cols = plots.loss_curves({"id": [3.0, 2.0], "tri": [1.0, 1.0], "total": [9.0, 9.0]})
    assert [t.name for t in cols.data] == ["id", "tri", "total"] and list(cols.data[2].y) == [9.0, 9.0]
    smooth = plots.loss_curves(rows, smoothing=0.5)
    assert len(smooth.data) == 6 and "EMA" in smooth.layout.title.text
    assert smooth.layout.xaxis.title.text == "step" and smooth.layout.yaxis.title.text == "loss"
    with pytest.raises(ValueError, match="different lengths"):
        plots.loss_curves({"id": [1.0], "tri": [1.0, 2.0]})


def test_ema_is_debiased() -> None:
    assert np.allclose(plots.ema(np.full(5, 2.0), 0.9), 2.0)
    out = plots.ema(np.array([1.0, np.nan, 3.0]), 0.5)
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == pytest.approx((0.25 * 1 + 0.5 * 3) / 0.75)


def test_cmc_curves_in_percent() -> None:
    fig = plots.cmc_curves({"IDKL": np.array([0.8, 0.9, 0.95]), "pct": [50.0, 60.0, 70.0]})
    assert list(fig.data[0].x) == [1, 2, 3]
    assert np.allclose(fig.data[0].y, [80.0, 90.0, 95.0]) and np.allclose(fig.data[1].y, [50.0, 60.0, 70.0])
    assert fig.data[0].name == "IDKL (R1 80.0)" and fig.data[0].line.color != fig.data[1].line.color
    assert fig.layout.yaxis.title.text == "matching rate (%)"


def test_results_table_columns_and_best_values() -> None:
    fig = plots.results_table({"IDKL": {"mAP": 79.85, "R1": 81.42}, "AGW": {"R1": 47.5, "mAP": 47.65, "x": 1.0}})
    header = list(fig.data[0].header.values)
    cells = [list(c) for c in fig.data[0].cells.values]
    assert header == ["<b>method</b>", "<b>R1</b>", "<b>mAP</b>", "<b>x</b>"]
    assert cells[0] == ["IDKL", "AGW"]
    assert cells[1] == ["<b>81.42</b>", "47.50"] and cells[3] == ["–", "<b>1.00</b>"]


def test_results_table_prints_counts_as_integers_without_highlight() -> None:
    rows = {
        "IDKL": {"R1": 81.4, "num_queries": 384.0, "trials": 10},
        "AGW": {"R1": 47.5, "num_queries": 380.0, "trials": 9},
    }
    cells = [list(c) for c in plots.results_table(rows).data[0].cells.values]
    # num_* by name (even as floats, e.g. read back from JSON), trials because its values are integers
    assert cells[1] == ["<b>81.40</b>", "47.50"] and cells[2] == ["384", "380"] and cells[3] == ["10", "9"]
    explicit = [list(c) for c in plots.results_table(rows, counts=[]).data[0].cells.values]
    assert explicit[2] == ["<b>384.00</b>", "380.00"]  # counts=[]: every column is a metric


# -- TGSA / CSA diagnostics -------------------------------------------------------------------------------------------


def test_heatmaps() -> None:
    m = np.arange(6.0).reshape(2, 3)
    fig = plots.heatmap(m, "A", "j", "i", x_ticks=["a", "b", "c"])
    assert np.array_equal(np.asarray(fig.data[0].z), m) and fig.layout.yaxis.autorange == "reversed"
    assert fig.layout.xaxis.title.text == "j" and list(fig.data[0].x) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="2-D"):
        plots.heatmap(np.arange(3.0), "A", "j", "i")
    grid = plots.heatmap_grid({"shared": m, "specific": m + 10, "c": -m}, "TGSA", ncols=2)
    assert len(grid.data) == 3 and {t.zmin for t in grid.data} == {-5.0} and {t.zmax for t in grid.data} == {15.0}
    assert [t.showscale for t in grid.data] == [True, False, False]
    assert [a.text for a in grid.layout.annotations] == ["shared", "specific", "c"]


def test_logit_distributions() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    fig = plots.logit_distributions({"shared": probs, "specific": np.full((2, 3), 1 / 3)}, "CSA")
    assert np.allclose(fig.data[0].y, [0.65, 0.25, 0.1]) and np.allclose(fig.data[1].y, 1 / 3)
    hist = plots.logit_distributions({"shared": probs}, "CSA", kind="hist")
    assert hist.data[0].type == "histogram" and len(hist.data[0].x) == 6
    with pytest.raises(ValueError, match="kind"):
        plots.logit_distributions({"a": probs}, "CSA", kind="box")


# -- dataset overviews ------------------------------------------------------------------------------------------------


def test_dataset_stats_and_bars(tmp_path: Path) -> None:
    train = [Sample("a", p, c, int(c in (3, 6))) for p, c in [(0, 1), (0, 1), (0, 3), (1, 3), (1, 2)]]
    query = [Sample("b", 5, 3, 1)]
    gallery = [Sample("c", 5, 1, 0), Sample("d", 6, 1, 0)]
    ds = VIDataset("toy", tmp_path, tuple(train), tuple(query), tuple(gallery), 2)
    stats = plots.dataset_stats(ds)
    assert stats["train"] == {
        1: {"modality": 0, "images": 2, "identities": 1},
        2: {"modality": 0, "images": 1, "identities": 1},
        3: {"modality": 1, "images": 2, "identities": 2},
    }
    assert stats["gallery"][1]["identities"] == 2
    fig = plots.dataset_bars(ds)
    train_bars = [t for t in fig.data if t.xaxis == "x"]
    assert [(t.name, list(t.x), list(t.y)) for t in train_bars] == [
        ("visible", ["1", "2"], [2, 1]),
        ("infrared", ["3"], [2]),
    ]
    assert [t.marker.color for t in train_bars] == [plots.MODALITY_COLORS[0], plots.MODALITY_COLORS[1]]
    assert sum(t.showlegend is not False for t in fig.data) == 2 and "toy" in fig.layout.title.text


def test_image_size_histogram() -> None:
    sizes = np.array([[100, 50], [120, 60], [90, 30]])
    fig = plots.image_size_histogram(sizes, modality=np.array([0, 1, 1]))
    assert len(fig.data) == 6
    aspect_ir = [t for t in fig.data if t.xaxis == "x3" and t.name == "infrared"][0]
    assert np.allclose(sorted(aspect_ir.x), [2.0, 3.0])
    with pytest.raises(ValueError, match="height, width"):
        plots.image_size_histogram(np.zeros((3, 3)))


def test_sample_grid_frames_images_in_modality_colour(tmp_path: Path) -> None:
    samples = _write_images(tmp_path, [(0, 1, 0), (0, 1, 0), (0, 3, 1)])
    fig = plots.sample_grid([samples[:2], samples[2:]], ["cam 1", "cam 3"], "pid 0", image_size=(64, 32))
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 3
    corners = [tuple(decode_data_uri(t.source)[0, 0]) for t in images]
    hexes = ["#{:02X}{:02X}{:02X}".format(*c) for c in corners]
    assert hexes == [plots.MODALITY_COLORS[0]] * 2 + [plots.MODALITY_COLORS[1]]
    assert fig.layout.yaxis.title.text == "cam 1" and "pid 0" in fig.layout.title.text


def test_batch_layout_figure_flags_violations() -> None:
    pids = np.repeat([4, 9], 4)
    mod = np.tile([1, 0, 1, 0], 2)
    good = plots.batch_layout_figure(pids, mod, p=2, k=4)
    assert np.array_equal(np.asarray(good.data[0].z), mod.reshape(2, 4)) and "as expected" in good.layout.title.text
    assert np.asarray(good.data[0].text)[1, 0] == "9"
    mod_bad = mod.copy()
    mod_bad[1] = 1
    bad = plots.batch_layout_figure(pids, mod_bad, p=2, k=4)
    assert "1 cell(s)" in bad.layout.title.text and np.asarray(bad.data[0].text)[0, 1] == "4 !"
    with pytest.raises(ValueError, match="p\\*k"):
        plots.batch_layout_figure(pids, mod, p=3, k=4)


# -- rank lists -------------------------------------------------------------------------------------------------------


def test_ranked_gallery_drops_same_camera_and_sorts() -> None:
    query = [Sample("q", 1, 3, 1)]
    gallery = [Sample("g0", 1, 3, 1), Sample("g1", 2, 1, 0), Sample("g2", 1, 2, 0), Sample("g3", 1, 1, 0)]
    dist = np.array([[0.0, 0.5, 0.2, 0.7]])
    assert list(ranked_gallery(dist, query, gallery, 0)) == [2, 1, 3]
    assert list(ranked_gallery(dist, query, gallery, 0, camera_alias={3: 2})) == [1, 3]
    assert list(ranked_gallery(dist, query, gallery, 0, exclude_same_camera=False)) == [0, 2, 1, 3]
    assert list(first_match_ranks(dist, query, gallery)) == [1]
    assert list(first_match_ranks(dist, query, gallery, camera_alias={3: 2})) == [2]


def test_first_match_ranks_matches_a_loop() -> None:
    rng = np.random.default_rng(0)
    query = [Sample("q", int(rng.integers(0, 4)), int(rng.integers(1, 4)), 1) for _ in range(15)]
    gallery = [Sample("g", int(rng.integers(0, 4)), int(rng.integers(1, 4)), 0) for _ in range(25)]
    dist = rng.random((15, 25))
    dist_before = dist.copy()
    ranks = first_match_ranks(dist, query, gallery)
    for qi in range(15):
        order = ranked_gallery(dist, query, gallery, qi)
        hits = [r for r, g in enumerate(order, start=1) if gallery[g].pid == query[qi].pid]
        assert ranks[qi] == (hits[0] if hits else 0)
    assert np.array_equal(dist, dist_before)


def test_ranklist_figure_marks_true_and_false_matches(tmp_path: Path) -> None:
    specs = [(1, 3, 1), (1, 1, 0), (2, 1, 0), (1, 2, 0), (3, 2, 0), (1, 3, 1)]
    samples = _write_images(tmp_path, specs)
    query, gallery = samples[:1], samples[1:]
    dist = torch.tensor([[0.3, 0.1, 0.2, 0.4, 0.0]])  # the same-camera item (last) is closest but excluded
    fig = ranklist_figure(dist, query, gallery, 0, topk=3, image_size=(64, 32))
    images = [t for t in fig.data if t.type == "image"]
    assert len(images) == 4
    captions = [a.text for a in fig.layout.annotations]
    assert captions[0].startswith("query #0") and "cam 3 · IR" in captions[0]
    assert [c.split(" ")[0] for c in captions[1:]] == ["✗", "✓", "✓"]
    assert "rank 1" in captions[1] and "pid 2" in captions[1]
    corners = ["#{:02X}{:02X}{:02X}".format(*decode_data_uri(t.source)[0, 0]) for t in images[1:]]
    assert corners == [plots.MISMATCH_COLOR, plots.MATCH_COLOR, plots.MATCH_COLOR]
    assert "first true match at rank 2" in fig.layout.title.text
    multi = ranklist_figure(dist.repeat(2, 1).view(2, 5), query * 2, gallery, [0, 1], topk=2, image_size=(64, 32))
    assert sum(t.type == "image" for t in multi.data) == 6 and "2 queries" in multi.layout.title.text
    if export.png_export_available():
        png = save_ranklist_png(dist, query, gallery, 0, tmp_path / "out" / "rank.png", topk=3)
        assert _png(png.read_bytes()).std() > 10


# -- PNG export of every trace type (saving itself: test_viz_export.py) ------------------------------------------------


_BUILDERS = {
    "loss": lambda: plots.loss_curves({"id": [3.0, 2.0, 1.0], "tri": [1.0, 0.5, 0.4]}, smoothing=0.3),
    "table": lambda: plots.results_table({"a": {"R1": 1.0, "mAP": 2.0}}),
    "heat_grid": lambda: plots.heatmap_grid({"a": np.eye(3), "b": np.ones((3, 3))}, "T", shared_scale=False),
    "hist": lambda: plots.logit_distributions({"a": np.random.default_rng(0).random((4, 5))}, "T", kind="hist"),
    "bars": lambda: plots.dataset_bars({"train": {1: {"modality": 0, "images": 3, "identities": 1}}}),
    "batch": lambda: plots.batch_layout_figure(np.repeat([0, 1], 2), np.tile([1, 0], 2), 2, 2),
}


@pytest.mark.usefixtures("needs_chrome")
@pytest.mark.parametrize("name", sorted(_BUILDERS))
def test_png_export_of_every_trace_type(name: str) -> None:
    fig = _BUILDERS[name]()
    arr = _png(plots.figure_to_png(fig, scale=1.0))
    width = fig.layout.width or 700
    height = fig.layout.height or 500
    assert arr.shape[:2] == (height, width)
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 10


def test_figures_have_titles_and_axis_labels() -> None:
    for name, build in _BUILDERS.items():
        fig = build()
        assert fig.layout.title.text, name
        if name != "table":
            assert fig.layout.xaxis.title.text and (fig.layout.yaxis.title.text or name == "heat_grid"), name
    assert list(itertools.islice(plots.OKABE_ITO, 2)) == ["#0072B2", "#E69F00"]


def test_rank_lists_follow_the_protocols_camera_rule() -> None:
    query = [Sample("q.png", 1, 3, 1)]
    gallery = [Sample("a.png", 1, 1, 0), Sample("b.png", 2, 3, 0), Sample("c.png", 1, 3, 0)]
    dist = np.array([[0.3, 0.1, 0.0]])
    # SYSU/RegDB rule: every image of the query's camera goes; LLCM rule: only those of the query's identity
    assert list(ranked_gallery(dist, query, gallery, 0)) == [0]
    assert list(ranked_gallery(dist, query, gallery, 0, camera_filter="same_identity")) == [1, 0]
    assert list(first_match_ranks(dist, query, gallery, camera_filter="same_identity")) == [2]
    # the same masks the rank core uses: image-level first-match rank = CMC rank when ids are distinct here
    from idkl_lib.eval import evaluate_rank

    result = evaluate_rank(dist, np.array([1]), np.array([1, 2, 1]), np.array([3]), np.array([1, 3, 3]), max_rank=3,
                           camera_filter="same_identity", cmc_mode="first_match")  # fmt: skip
    assert list(result.cmc) == [0.0, 1.0, 1.0]
