"""Dataset overviews: images per identity and camera, image sizes, the dataset card and the split statistics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.data.records import INFRARED, VISIBLE, VIDataset
from idkl_lib.viz.tables import table_figure
from idkl_lib.viz.theme import (
    MODALITY_COLORS,
    modality_name,
    series_color,
    style_figure,
)

__all__ = [
    "dataset_bars",
    "dataset_card_figure",
    "dataset_stats",
    "image_size_histogram",
    "statistics_table",
]


def dataset_stats(dataset: VIDataset) -> dict[str, dict[int, dict[str, int]]]:
    """Images and identities per camera for each split.

    Returns:
        ``{split: {camid: {"modality": m, "images": n, "identities": k}}}`` for splits train / query / gallery.
    """
    out: dict[str, dict[int, dict[str, int]]] = {}
    for split in ("train", "query", "gallery"):
        per_cam: dict[int, dict[str, int]] = {}
        pids: dict[int, set[int]] = {}
        for s in getattr(dataset, split):
            entry = per_cam.setdefault(s.camid, {"modality": s.modality, "images": 0, "identities": 0})
            entry["images"] += 1
            pids.setdefault(s.camid, set()).add(s.pid)
        for cam, entry in per_cam.items():
            entry["identities"] = len(pids[cam])
        out[split] = dict(sorted(per_cam.items()))
    return out


def dataset_bars(stats: Mapping[str, Mapping[int, Mapping[str, int]]] | VIDataset, title: str = "") -> go.Figure:
    """Images per camera, coloured by modality, one panel per split.

    Args:
        stats: Output of :func:`dataset_stats`, or a :class:`VIDataset` (stats computed here).
        title: Figure title (default: ``"Images per camera (<dataset>)"``).
    """
    name = ""
    if isinstance(stats, VIDataset):
        name = stats.name
        stats = dataset_stats(stats)
    splits = list(stats)
    fig = make_subplots(rows=1, cols=len(splits), subplot_titles=splits, horizontal_spacing=0.08)
    shown: set[int] = set()
    for j, split in enumerate(splits):
        for mod in (VISIBLE, INFRARED):
            cams = [c for c, e in stats[split].items() if e["modality"] == mod]
            if not cams:
                continue
            fig.add_trace(
                go.Bar(
                    x=[str(c) for c in cams],
                    y=[stats[split][c]["images"] for c in cams],
                    customdata=[stats[split][c]["identities"] for c in cams],
                    name=modality_name(mod),
                    legendgroup=modality_name(mod),
                    showlegend=mod not in shown,
                    marker={"color": MODALITY_COLORS[mod]},
                    hovertemplate="camera %{x}: %{y} images, %{customdata} identities<extra>"
                    + modality_name(mod)
                    + "</extra>",
                ),
                row=1,
                col=j + 1,
            )
            shown.add(mod)
        fig.update_xaxes(title_text="camera", type="category", row=1, col=j + 1)
    fig.update_yaxes(title_text="images", row=1, col=1)
    return style_figure(
        fig,
        title or f"Images per camera{f' ({name})' if name else ''}",
        legend_title_text="modality",
        barmode="stack",
        height=460,
    )  # the two modalities' cameras are disjoint categories: "stack" never stacks, it only avoids group offsets


def image_size_histogram(
    sizes: np.ndarray,
    modality: np.ndarray | None = None,
    title: str = "Image sizes",
    nbins: int = 30,
) -> go.Figure:
    """Histograms of image height, width and aspect ratio.

    Args:
        sizes: ``(N, 2)`` ``(height, width)`` in pixels (note: PIL's ``Image.size`` is ``(width, height)``).
        modality: Optional ``(N,)`` modality labels; histograms are then split and coloured by modality.
        title: Figure title.
        nbins: Bins per histogram.
    """
    s = np.asarray(sizes, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"sizes must be (N, 2) (height, width), got shape {s.shape}")
    panels = (("height (px)", s[:, 0]), ("width (px)", s[:, 1]), ("aspect ratio (height / width)", s[:, 0] / s[:, 1]))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[0].split(" (")[0] for p in panels])
    groups = (
        [(None, np.ones(len(s), dtype=bool))]
        if modality is None
        else [(m, np.asarray(modality) == m) for m in (VISIBLE, INFRARED) if np.any(np.asarray(modality) == m)]
    )
    for j, (label, values) in enumerate(panels):
        for mod, mask in groups:
            name = "all images" if mod is None else modality_name(mod)
            color = series_color(0) if mod is None else MODALITY_COLORS[mod]
            fig.add_trace(
                go.Histogram(
                    x=values[mask],
                    nbinsx=nbins,
                    name=name,
                    legendgroup=name,
                    showlegend=j == 0,
                    opacity=0.6,
                    marker={"color": color},
                ),
                row=1,
                col=j + 1,
            )
        fig.update_xaxes(title_text=label, row=1, col=j + 1)
    fig.update_yaxes(title_text="images", row=1, col=1)
    return style_figure(fig, title, barmode="overlay", legend_title_text="modality")


def dataset_card_figure(card: Sequence[Mapping[str, Any]], title: str) -> go.Figure:
    """The dataset card as a table: quantity, found, expected and a check mark per row."""
    marks = ["✓" if row["ok"] else "✗ differs" for row in card]
    columns = [
        [str(row["quantity"]) for row in card],
        [f"{row['found']:,}" for row in card],
        [f"{row['expected']:,}" for row in card],
        marks,
    ]
    header = ["quantity", "found", "expected", "check"]
    return table_figure(header, columns, title, align=["left", "right", "right", "center"])


def statistics_table(statistics: Mapping[str, Any], title: str) -> go.Figure:
    """Identities, images and cameras per split and modality, from :func:`idkl_lib.data.dataset_statistics`."""
    rows: list[list[str]] = []
    for split in ("train", "query", "gallery"):
        for modality, entry in statistics[split]["per_modality"].items():
            if entry["images"]:
                cams = ", ".join(map(str, entry["cameras"]))
                rows.append([split, modality, f"{entry['ids']:,}", f"{entry['images']:,}", cams])
    header = ["split", "modality", "identities", "images", "cameras"]
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in header]
    return table_figure(header, columns, title, align=["left", "left", "right", "right", "left"])
