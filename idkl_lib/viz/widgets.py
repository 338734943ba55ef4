"""ipywidgets browsers for JupyterLab: identities, rank lists and Grad-CAM rows.

Every function returns a ``widgets.VBox`` at once (nothing blocks); its children are ``(controls HBox, Output)``.
Changing a control redraws the figure in the ``Output`` area: the figure is stored as a plotly mime bundle
(``application/vnd.plotly.v1+json``, rendered by the jupyterlab-plotly extension that ships with plotly), so the
output content can be inspected (``box.children[-1].outputs``) and works the same inside and outside a kernel.
A figure that fails to build shows the error text in the output area instead of disappearing silently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from idkl_lib.data.records import INFRARED, VISIBLE, Sample, VIDataset
from idkl_lib.eval.views import QUERY_ORDERS, RankView
from idkl_lib.viz.gradcam import gradcam_grid
from idkl_lib.viz.plots import sample_grid
from idkl_lib.viz.ranklist import ranklist_figure

CamSource = Mapping[str, np.ndarray] | Callable[[int], Mapping[str, np.ndarray]]
"""Precomputed ``{column: (N, H, W)}`` maps, or ``index -> {column: (H, W)}`` computed on demand (and cached)."""
ImageSource = np.ndarray | Sequence[np.ndarray] | Callable[[int], np.ndarray]
"""``(N, H, W, 3)`` images / a sequence of ``(H, W, 3)`` images, or ``index -> (H, W, 3)``."""


def show_figure(output: widgets.Output, fig: go.Figure) -> None:
    """Replace the content of ``output`` with ``fig`` (a plotly mime bundle plus a plain-text title)."""
    title = re.sub(r"<[^>]+>", " ", str(fig.layout.title.text or "plotly figure"))
    bundle = {"application/vnd.plotly.v1+json": json.loads(fig.to_json()), "text/plain": f"<Figure: {title}>"}
    output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)


def _show_error(output: widgets.Output, exc: BaseException) -> None:
    output.outputs = ({"output_type": "stream", "name": "stderr", "text": f"{type(exc).__name__}: {exc}\n"},)


def _render(output: widgets.Output, build: Callable[[], go.Figure]) -> None:
    try:
        fig = build()
    except Exception as exc:  # a UI callback: show the error where the figure would be
        _show_error(output, exc)
        return
    show_figure(output, fig)


def _split_samples(dataset: VIDataset, split: str) -> tuple[Sample, ...]:
    if split == "test":
        return dataset.query + dataset.gallery
    if split not in ("train", "query", "gallery"):
        raise ValueError(f"split must be 'train', 'query', 'gallery' or 'test', got {split!r}")
    return getattr(dataset, split)


def identity_browser(
    dataset: VIDataset,
    split: str = "train",
    image_size: tuple[int, int] = (128, 64),
    max_per_camera: int = 6,
) -> widgets.VBox:
    """Pick an identity, see its images grouped by camera (visible cameras first, then infrared).

    Args:
        dataset: Parsed dataset.
        split: ``"train"``, ``"query"``, ``"gallery"`` or ``"test"`` (query + gallery).
        image_size: ``(height, width)`` of the displayed images.
        max_per_camera: Images shown per camera.

    Returns:
        ``VBox([HBox([Dropdown of identities]), Output])``.
    """
    samples = _split_samples(dataset, split)
    if not samples:
        raise ValueError(f"{dataset.name} split {split!r} has no records")
    by_pid: dict[int, list[Sample]] = {}
    for s in samples:
        by_pid.setdefault(s.pid, []).append(s)
    options = []
    for pid in sorted(by_pid):
        n_vis = sum(s.modality == VISIBLE for s in by_pid[pid])
        n_ir = sum(s.modality == INFRARED for s in by_pid[pid])
        options.append((f"pid {pid}  ({n_vis} visible / {n_ir} infrared)", pid))
    dropdown = widgets.Dropdown(options=options, value=options[0][1], description="identity")
    output = widgets.Output()

    def build() -> go.Figure:
        pid = dropdown.value
        by_cam: dict[tuple[int, int], list[Sample]] = {}
        for s in by_pid[pid]:
            by_cam.setdefault((s.modality, s.camid), []).append(s)
        keys = sorted(by_cam)
        rows = [by_cam[k] for k in keys]
        labels = [f"cam {cam} · {'IR' if mod == INFRARED else 'VIS'}" for mod, cam in keys]
        return sample_grid(rows, labels, f"{dataset.name} {split}: identity {pid}", image_size, max_per_camera)

    dropdown.observe(lambda _change: _render(output, build), names="value")
    _render(output, build)
    return widgets.VBox([widgets.HBox([dropdown]), output])


def query_picker(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    topk: int = 10,
    queries: Sequence[int] | None = None,
    image_size: tuple[int, int] = (128, 64),
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
    camera_filter: str = "all",
    order: str = "drawn",
) -> widgets.VBox:
    """Pick a query, see its rank list (:func:`idkl_lib.viz.ranklist.ranklist_figure`); the queries can be ordered by
    AP (:meth:`idkl_lib.eval.views.RankView.query_order`: worst first, best first, or as drawn), and the order shown
    is named beside its dropdown.

    Args:
        distmat: ``(Q, G)`` distances.
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        topk: Initial number of gallery images (a second slider changes it, 1..30).
        queries: Query rows to browse (e.g. rank-1 failures); default all.
        image_size: ``(height, width)`` of the displayed images.
        exclude_same_camera: Protocol's same-camera removal.
        camera_alias: Camera ids treated as another camera (SYSU-MM01: ``{3: 2}``).
        camera_filter: The protocol's camera rule (``RankView.camera_filter``).
        order: Initial order of the queries: ``"worst"`` / ``"best"`` AP first or ``"drawn"`` (a dropdown changes it).

    Returns:
        ``VBox([HBox([IntSlider position, IntSlider top-k, Label]), HBox([Dropdown order, Label]), Output])``; the
        first slider indexes ``queries`` in the chosen order.
    """
    chosen = list(range(len(query))) if queries is None else [int(q) for q in queries]
    if not chosen:
        raise ValueError("no queries to browse")
    view = RankView.from_records(distmat, query, gallery, exclude_same_camera, camera_alias, camera_filter)  # type: ignore[arg-type]
    view.query_order(order)  # an unknown order fails here, before any widget exists
    ranks, ap = view.first_match_ranks(), view.average_precision()
    position = widgets.IntSlider(value=0, min=0, max=len(chosen) - 1, description="query", continuous_update=False)
    k_slider = widgets.IntSlider(value=topk, min=1, max=max(30, topk), description="top-k", continuous_update=False)
    order_box = widgets.Dropdown(options=[(text, key) for key, text in QUERY_ORDERS.items()], value=order)
    order_box.description = "order"
    label, order_label = widgets.Label(), widgets.Label()

    def rows() -> list[int]:
        ordered, text = view.query_order(order_box.value)
        wanted = set(chosen)
        order_label.value = f"queries shown {text}"
        return [int(q) for q in ordered if q in wanted]

    def build() -> go.Figure:
        qi = rows()[position.value]
        r = int(ranks[qi])
        shown = f"AP {100 * ap[qi]:.1f}%, " if np.isfinite(ap[qi]) else ""
        label.value = f"query #{qi}: " + shown + (f"first true match at rank {r}" if r else "no true match")
        return ranklist_figure(
            distmat,
            query,
            gallery,
            qi,
            k_slider.value,
            image_size,
            exclude_same_camera,
            camera_alias,
            camera_filter=camera_filter,  # type: ignore[arg-type]
        )

    output = widgets.Output()
    for control in (position, k_slider, order_box):
        control.observe(lambda _change: _render(output, build), names="value")
    _render(output, build)
    return widgets.VBox([widgets.HBox([position, k_slider, label]), widgets.HBox([order_box, order_label]), output])


def gradcam_picker(
    images_rgb: ImageSource,
    cams: CamSource,
    num_items: int | None = None,
    labels: Sequence[str] | None = None,
    reference_rgb: ImageSource | None = None,
    title: str = "Grad-CAM",
    colormap: str = "viridis",
    cell_size: tuple[int, int] = (320, 160),
    slider_label: str = "query",
) -> widgets.VBox:
    """Pick a query, see its Grad-CAM row (:func:`idkl_lib.viz.gradcam.gradcam_grid`) with larger cells than the grid.

    Either pass everything precomputed (arrays), or callables computing one item on demand, e.g.
    ``cams=lambda i: {"shared": similarity_cam(model, x[i:i+1], ref[i:i+1])[0], ...}`` (results are cached).

    Args:
        images_rgb: ``(N, H, W, 3)`` images, a sequence of them, or ``index -> (H, W, 3)``.
        cams: ``{column: (N, H, W)}`` or ``index -> {column: (H, W)}``.
        num_items: ``N``; required when both ``images_rgb`` and ``cams`` are callables.
        labels: ``N`` row labels (default ``f"{slider_label} {i}"``).
        reference_rgb: The matched gallery images (same forms as ``images_rgb``), shown after the image.
        title: Figure title prefix.
        colormap: CAM colour map.
        cell_size: ``(height, width)`` of one image in pixels (the grid's default is 200 x 130).
        slider_label: What the slider picks (its description and the default row labels).

    Returns:
        ``VBox([HBox([IntSlider]), Output])``.
    """
    if num_items is None:
        if not callable(images_rgb):
            num_items = len(images_rgb)
        elif not callable(cams):
            num_items = len(next(iter(cams.values())))
        else:
            raise ValueError("num_items is required when images_rgb and cams are both callables")
    if num_items <= 0:
        raise ValueError("nothing to show: num_items is 0")
    cache: dict[int, Mapping[str, np.ndarray]] = {}

    def item_cams(i: int) -> Mapping[str, np.ndarray]:
        if not callable(cams):
            return {k: np.asarray(v[i]) for k, v in cams.items()}
        if i not in cache:
            cache[i] = {k: np.asarray(v) for k, v in cams(i).items()}
        return cache[i]

    def item(source: ImageSource, i: int) -> np.ndarray:
        return np.asarray(source(i) if callable(source) else source[i])

    slider = widgets.IntSlider(value=0, min=0, max=num_items - 1, description=slider_label, continuous_update=False)

    def build() -> go.Figure:
        i = slider.value
        row_cams = {k: v[None] for k, v in item_cams(i).items()}
        refs = None if reference_rgb is None else [item(reference_rgb, i)]
        label = labels[i] if labels is not None else f"{slider_label} {i}"
        return gradcam_grid(
            [item(images_rgb, i)],
            row_cams,
            [label],
            title=f"{title}: {label}",
            colormap=colormap,
            cell_size=cell_size,
            reference_rgb=refs,
        )

    output = widgets.Output()
    slider.observe(lambda _change: _render(output, build), names="value")
    _render(output, build)
    return widgets.VBox([widgets.HBox([slider]), output])


__all__ = ["gradcam_picker", "identity_browser", "query_picker", "show_figure"]
