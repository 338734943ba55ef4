"""Widgets: changing a control redraws the figure in the output area."""

from __future__ import annotations

from pathlib import Path

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from idkl_lib.data.records import Sample, VIDataset
from idkl_lib.viz.gradcam import gradcam_grid
from idkl_lib.viz.widgets import gradcam_picker, identity_browser, query_picker, show_figure

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _write_images(folder: Path, specs: list[tuple[int, int, int]]) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for k, (pid, cam, mod) in enumerate(specs):
        path = folder / f"p{pid}_c{cam}_{k}.png"
        Image.fromarray((rng.random((32, 16, 3)) * 255).astype(np.uint8)).save(path)
        out.append(Sample(str(path), pid, cam, mod))
    return out


def _figure(box: widgets.VBox) -> dict:
    output = box.children[-1]
    assert isinstance(output, widgets.Output) and len(output.outputs) == 1
    return output.outputs[0]["data"][PLOTLY_MIME]


def _n_images(fig: dict) -> int:
    return sum(t["type"] == "image" for t in fig["data"])


def test_show_figure_replaces_output() -> None:
    out = widgets.Output()
    show_figure(out, go.Figure(layout={"title": {"text": "one"}}))
    show_figure(out, go.Figure(layout={"title": {"text": "<b>two</b>"}}))
    assert len(out.outputs) == 1
    assert out.outputs[0]["data"][PLOTLY_MIME]["layout"]["title"]["text"] == "<b>two</b>"
    assert "two" in out.outputs[0]["data"]["text/plain"]


def test_identity_browser_follows_the_dropdown(tmp_path: Path) -> None:
    train = _write_images(tmp_path, [(0, 1, 0), (0, 3, 1), (1, 1, 0), (1, 2, 0), (1, 2, 0), (1, 6, 1)])
    ds = VIDataset("toy", tmp_path, tuple(train), (), (), 2)
    box = identity_browser(ds, "train", image_size=(32, 16))
    dropdown = box.children[0].children[0]
    assert [v for _, v in dropdown.options] == [0, 1] and "1 visible / 1 infrared" in dropdown.options[0][0]
    first = _figure(box)
    assert "identity 0" in first["layout"]["title"]["text"] and _n_images(first) == 2
    dropdown.value = 1
    second = _figure(box)
    assert "identity 1" in second["layout"]["title"]["text"] and _n_images(second) == 4
    row_titles = [second["layout"][k]["title"]["text"] for k in ("yaxis", "yaxis3", "yaxis5")]
    assert row_titles == ["cam 1 · VIS", "cam 2 · VIS", "cam 6 · IR"]  # visible cameras first
    with pytest.raises(ValueError, match="split"):
        identity_browser(ds, "val")


def test_query_picker_follows_both_sliders(tmp_path: Path) -> None:
    samples = _write_images(tmp_path, [(1, 3, 1), (2, 6, 1), (1, 1, 0), (2, 1, 0), (2, 2, 0), (1, 2, 0)])
    query, gallery = samples[:2], samples[2:]
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    box = query_picker(dist, query, gallery, topk=2)
    position, k_slider, label = box.children[0].children
    first = _figure(box)
    assert "query #0" in first["layout"]["title"]["text"] and _n_images(first) == 3
    assert label.value == "query #0: AP 75.0%, first true match at rank 1"
    position.value = 1
    second = _figure(box)
    assert "query #1" in second["layout"]["title"]["text"] and label.value.endswith("rank 2")
    k_slider.value = 4
    assert _n_images(_figure(box)) == 5
    subset = query_picker(dist, query, gallery, queries=[1])
    assert subset.children[0].children[0].max == 0 and "query #1" in _figure(subset)["layout"]["title"]["text"]


def test_query_picker_orders_queries_by_ap_and_says_which_order(tmp_path: Path) -> None:
    samples = _write_images(tmp_path, [(1, 3, 1), (2, 6, 1), (1, 1, 0), (2, 1, 0), (2, 2, 0), (1, 2, 0)])
    query, gallery = samples[:2], samples[2:]
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])  # AP: query 0 (1 + 2/4) / 2, query 1 (1/2 + 2/3) / 2
    box = query_picker(dist, query, gallery, topk=2, order="worst")
    (order, order_label), label = box.children[1].children, box.children[0].children[2]
    assert order_label.value == "queries shown worst AP first"
    assert "query #1" in _figure(box)["layout"]["title"]["text"] and "AP 58.3%" in label.value  # (1/2 + 2/3) / 2
    order.value = "best"
    assert order_label.value == "queries shown best AP first" and "query #0" in label.value
    order.value = "drawn"
    assert order_label.value.startswith("queries shown as drawn") and "query #0" in label.value
    with pytest.raises(ValueError, match="unknown query order"):
        query_picker(dist, query, gallery, order="random")


def test_gradcam_picker_with_arrays_and_callables() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 16, 8, 3)).astype(np.float32)
    cams = {"shared": rng.random((3, 16, 8)), "specific": rng.random((3, 16, 8))}
    box = gradcam_picker(imgs, cams, labels=["q0", "q1", "q2"], reference_rgb=imgs[::-1])
    slider = box.children[0].children[0]
    assert slider.max == 2
    first = _figure(box)
    assert first["layout"]["title"]["text"].startswith("Grad-CAM: q0") and _n_images(first) == 4
    assert slider.description == "query"
    grid = gradcam_grid(imgs[:1], {k: v[:1] for k, v in cams.items()}, ["q0"], reference_rgb=imgs[:1])
    # each of the 4 images (query, match, 2 CAMs) is 320 x 160 pixels instead of the grid's 200 x 130
    assert (first["layout"]["height"] - grid.layout.height, first["layout"]["width"] - grid.layout.width) == (120, 120)
    slider.value = 2
    second = _figure(box)
    assert second["layout"]["title"]["text"].startswith("Grad-CAM: q2")
    assert [t["source"] for t in first["data"]] != [t["source"] for t in second["data"]]

    calls: list[int] = []

    def compute(i: int) -> dict[str, np.ndarray]:
        calls.append(i)
        return {"shared": cams["shared"][i]}

    lazy = gradcam_picker(lambda i: imgs[i], compute, num_items=3)
    lazy_slider = lazy.children[0].children[0]
    lazy_slider.value = 1
    lazy_slider.value = 0
    assert calls == [0, 1] and _n_images(_figure(lazy)) == 2  # cached: index 0 computed once
    pairs = gradcam_picker(imgs, cams, slider_label="pair")
    assert pairs.children[0].children[0].description == "pair" and "pair 0" in _figure(pairs)["layout"]["title"]["text"]
    with pytest.raises(ValueError, match="num_items is required"):
        gradcam_picker(lambda i: imgs[i], compute)


def test_widget_shows_errors_in_the_output_area() -> None:
    imgs = np.zeros((2, 16, 8, 3), dtype=np.float32)

    def broken(i: int) -> dict[str, np.ndarray]:
        if i == 1:
            raise RuntimeError("model not loaded")
        return {"shared": np.zeros((16, 8))}

    box = gradcam_picker(imgs, broken)
    box.children[0].children[0].value = 1
    (entry,) = box.children[-1].outputs
    assert entry["output_type"] == "stream" and "model not loaded" in entry["text"]
