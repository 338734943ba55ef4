"""Plotly figures for the notebooks: training curves, retrieval results, TGSA/CSA diagnostics, dataset overviews.

Conventions shared by every figure in :mod:`idkl_lib.viz`:

* one template (``plotly_white``), a title on every figure, labelled axes, a legend whenever there are several series;
* colour-blind-safe colours (Okabe-Ito for categories, Viridis/Cividis for continuous values);
* the same modality colours everywhere: :data:`MODALITY_COLORS` (visible = blue, infrared = orange) and marker
  symbols :data:`MODALITY_SYMBOLS`;
* images are embedded as compact PNG data URIs (:func:`idkl_lib.viz.images.png_data_uri`).

Saving (HTML + PNG, atomic, offline) is at the end of this module: :func:`save_figure`, :func:`figure_to_png`.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.data.records import INFRARED, MODALITY_NAMES, VISIBLE, Sample, VIDataset
from idkl_lib.utils.io import atomic_write_bytes, atomic_write_text
from idkl_lib.viz.images import add_border, decode_data_uri, load_image, png_data_uri

TEMPLATE = "plotly_white"
OKABE_ITO: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
"""Okabe-Ito qualitative palette (colour-blind safe) for series (cycled, with dash styles beyond 8 series)."""
MODALITY_COLORS: dict[int, str] = {VISIBLE: "#0072B2", INFRARED: "#E69F00"}
MODALITY_SYMBOLS: dict[int, str] = {VISIBLE: "circle", INFRARED: "diamond"}
MATCH_COLOR = "#009E73"  # Okabe-Ito bluish green: true match
MISMATCH_COLOR = "#D55E00"  # Okabe-Ito vermillion: false match
DASHES: tuple[str, ...] = ("solid", "dash", "dot", "dashdot")
CONTINUOUS_SCALE = "Viridis"
DEFAULT_COLUMNS: tuple[str, ...] = ("R1", "R5", "R10", "R20", "mAP", "mINP")


def modality_name(modality: int) -> str:
    """``0 -> "visible"``, ``1 -> "infrared"``."""
    return MODALITY_NAMES.get(int(modality), f"modality {int(modality)}")


def series_color(i: int) -> str:
    """The ``i``-th colour of :data:`OKABE_ITO`, cycled."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def style_figure(fig: go.Figure, title: str, **kw: object) -> go.Figure:
    """Apply the shared look (template, centred title, extra ``layout`` keywords) in place; returns ``fig``."""
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"}, template=TEMPLATE, **kw)
    return fig


# ----------------------------------------------------------------------------------------------------------------
# training curves and retrieval results
# ----------------------------------------------------------------------------------------------------------------


def _history_to_series(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]], x_key: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if isinstance(history, Mapping):
        lengths = {k: len(v) for k, v in history.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"loss history lists have different lengths: {lengths}")
        cols = {k: np.asarray(v, dtype=np.float64) for k, v in history.items()}
    else:
        keys: list[str] = []
        for row in history:
            keys.extend(k for k in row if k not in keys)
        cols = {k: np.array([float(row.get(k, np.nan)) for row in history], dtype=np.float64) for k in keys}
    n = len(next(iter(cols.values()))) if cols else 0
    x = cols.pop(x_key, np.arange(n, dtype=np.float64))
    return x, cols


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Debiased exponential moving average (TensorBoard style), skipping NaNs.

    Args:
        values: ``(T,)`` series.
        smoothing: Weight of the past in ``[0, 1)``; ``0`` returns a copy.

    Returns:
        ``(T,)`` smoothed series (NaN where the input is NaN).
    """
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
    v = np.asarray(values, dtype=np.float64)
    out = np.full_like(v, np.nan)
    acc, weight = 0.0, 0.0
    for t, val in enumerate(v):
        if np.isnan(val):
            continue
        acc = smoothing * acc + (1.0 - smoothing) * val
        weight = smoothing * weight + (1.0 - smoothing)
        out[t] = acc / weight
    return out


def loss_curves(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]],
    smoothing: float = 0.0,
    title: str = "Training losses",
    x_key: str = "step",
    total_key: str = "total",
    exclude: Sequence[str] = ("epoch", "lr", "time", "iteration"),
    log_y: bool = False,
) -> go.Figure:
    """One line per loss term plus the total.

    Args:
        history: Either one dict per logged step (``[{"step": 0, "id": 5.9, "tri": 0.3, ...}, ...]``; missing terms
            are gaps) or one list per term (``{"id": [...], "tri": [...]}``).
        smoothing: EMA weight in ``[0, 1)``; when > 0 the raw curves are drawn faintly behind the smoothed ones.
        title: Figure title.
        x_key: Key holding the x value (step); the row index is used when absent.
        total_key: Key of the total loss; when absent the total is the sum of the terms, labelled ``"total (sum)"``.
        exclude: Keys that are not loss terms.
        log_y: Logarithmic y axis.

    Returns:
        Figure with x = step, y = loss.
    """
    x, cols = _history_to_series(history, x_key)
    terms = {k: v for k, v in cols.items() if k not in exclude and k != total_key}
    if not terms and total_key not in cols:
        raise ValueError("loss history holds no loss terms")
    if total_key in cols:
        total, total_name = cols[total_key], total_key
    else:
        stacked = np.stack(list(terms.values()))
        total = np.where(np.isnan(stacked).all(0), np.nan, np.nansum(stacked, axis=0))
        total_name = "total (sum)"
    fig = go.Figure()
    series = [
        (name, values, series_color(i), DASHES[(i // len(OKABE_ITO)) % len(DASHES)], 1.8)
        for i, (name, values) in enumerate(terms.items())
    ]
    series.append((total_name, total, "#000000", "solid", 3.0))
    for name, values, color, dash, width in series:
        if smoothing > 0:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=values,
                    mode="lines",
                    name=name,
                    legendgroup=name,
                    showlegend=False,
                    opacity=0.25,
                    line={"color": color, "dash": dash, "width": 1},
                    hoverinfo="skip",
                )
            )
            values = ema(values, smoothing)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=values,
                mode="lines",
                name=name,
                legendgroup=name,
                line={"color": color, "dash": dash, "width": width},
            )
        )
    suffix = f" (EMA smoothing {smoothing:g})" if smoothing > 0 else ""
    fig.update_xaxes(title_text=x_key)
    fig.update_yaxes(title_text="loss", type="log" if log_y else "linear")
    return style_figure(fig, title + suffix, legend_title_text="term")


def _auto_percent(values: Sequence[float] | np.ndarray, percent: bool | None) -> float:
    if percent is None:
        arr = np.asarray(values, dtype=np.float64)
        percent = bool(np.all(arr[np.isfinite(arr)] <= 1.0))
    return 100.0 if percent else 1.0


def cmc_curves(
    results: Mapping[str, np.ndarray | Sequence[float]],
    title: str = "CMC curve",
    percent: bool | None = None,
) -> go.Figure:
    """Cumulative matching characteristic curves, one line per method.

    Args:
        results: ``{label: cmc (R,)}``; ``cmc[r]`` is the rank-``r+1`` matching rate.
        title: Figure title.
        percent: ``True`` if the values are fractions to be shown in percent, ``False`` if already percent; ``None``
            decides per curve (fractions when every value is <= 1).

    Returns:
        Figure with x = rank 1..R, y = matching rate in percent; legend labels carry the rank-1 value.
    """
    fig = go.Figure()
    for i, (name, cmc) in enumerate(results.items()):
        y = np.asarray(cmc, dtype=np.float64) * _auto_percent(cmc, percent)
        fig.add_trace(
            go.Scatter(
                x=np.arange(1, len(y) + 1),
                y=y,
                mode="lines+markers",
                name=f"{name} (R1 {y[0]:.1f})",
                line={"color": series_color(i), "dash": DASHES[(i // len(OKABE_ITO)) % 4]},
                marker={"symbol": "circle", "size": 5},
            )
        )
    fig.update_xaxes(title_text="rank", rangemode="tozero")
    fig.update_yaxes(title_text="matching rate (%)", range=[0, 101])
    return style_figure(fig, title, legend_title_text="method")


def results_table(
    rows: Mapping[str, Mapping[str, float]],
    title: str = "Retrieval results",
    columns: Sequence[str] | None = None,
    decimals: int = 2,
    highlight_best: bool = True,
) -> go.Figure:
    """A table of retrieval metrics, one row per method / setting.

    Args:
        rows: ``{row label: {"R1": ..., "mAP": ...}}``, values shown as given (no rescaling).
        title: Figure title.
        columns: Metric columns; by default R1/R5/R10/R20/mAP/mINP that occur in ``rows``, then any other keys.
        decimals: Digits after the decimal point.
        highlight_best: Bold the highest value of each column.

    Returns:
        A ``go.Table`` figure.
    """
    if columns is None:
        present = [k for r in rows.values() for k in r]
        columns = [c for c in DEFAULT_COLUMNS if c in present] + list(
            dict.fromkeys(k for k in present if k not in DEFAULT_COLUMNS)
        )
    cells: list[list[str]] = [list(rows)]
    for col in columns:
        vals = [rows[r].get(col, np.nan) for r in rows]
        finite = [v for v in vals if np.isfinite(v)]
        best = max(finite) if finite else None
        text = [
            "–"
            if not np.isfinite(v)
            else (f"<b>{v:.{decimals}f}</b>" if highlight_best and v == best and len(rows) > 1 else f"{v:.{decimals}f}")
            for v in vals
        ]
        cells.append(text)
    table = go.Table(
        header={
            "values": ["<b>method</b>", *[f"<b>{c}</b>" for c in columns]],
            "fill_color": "#DDE6F0",
            "align": "center",
        },
        cells={"values": cells, "align": ["left", *["center"] * len(columns)], "height": 26},
    )
    fig = go.Figure(table)
    return style_figure(fig, title, height=140 + 28 * len(rows), margin={"t": 60, "b": 10})


# ----------------------------------------------------------------------------------------------------------------
# TGSA / CSA diagnostics
# ----------------------------------------------------------------------------------------------------------------


def heatmap(
    matrix: np.ndarray,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[str] | None = None,
    y_ticks: Sequence[str] | None = None,
    colorscale: str = CONTINUOUS_SCALE,
    colorbar_title: str = "value",
) -> go.Figure:
    """A matrix as a heatmap, row 0 at the top.

    Args:
        matrix: ``(N, M)`` values (e.g. an affinity or distance matrix).
        title: Figure title.
        x_label: Column axis label.
        y_label: Row axis label.
        x_ticks: ``M`` column tick labels (default: indices).
        y_ticks: ``N`` row tick labels (default: indices).
        colorscale: A colour-blind-safe continuous scale name.
        colorbar_title: Colour bar title.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"heatmap expects a 2-D matrix, got shape {m.shape}")
    fig = go.Figure(
        go.Heatmap(
            z=m,
            x=list(x_ticks) if x_ticks is not None else None,
            y=list(y_ticks) if y_ticks is not None else None,
            colorscale=colorscale,
            colorbar={"title": {"text": colorbar_title}},
        )
    )
    fig.update_xaxes(title_text=x_label)
    fig.update_yaxes(title_text=y_label, autorange="reversed")
    return style_figure(fig, title)


def heatmap_grid(
    matrices: Mapping[str, np.ndarray],
    title: str,
    ncols: int = 2,
    x_label: str = "sample j",
    y_label: str = "sample i",
    shared_scale: bool = True,
    colorscale: str = CONTINUOUS_SCALE,
) -> go.Figure:
    """Several matrices side by side, e.g. TGSA affinities {shared, specific} x {visible, infrared}.

    Args:
        matrices: ``{panel title: (N, M) matrix}``.
        title: Figure title.
        ncols: Panels per row.
        x_label: Column axis label of every panel.
        y_label: Row axis label of every panel.
        shared_scale: One colour range for all panels (comparable colours) and one colour bar.
        colorscale: Continuous colour scale name.
    """
    names = list(matrices)
    if not names:
        raise ValueError("heatmap_grid needs at least one matrix")
    ncols = max(1, min(ncols, len(names)))
    nrows = -(-len(names) // ncols)
    mats = [np.asarray(matrices[n], dtype=np.float64) for n in names]
    lo = min(float(np.nanmin(m)) for m in mats) if shared_scale else None
    hi = max(float(np.nanmax(m)) for m in mats) if shared_scale else None
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=names,
        horizontal_spacing=0.12,
        vertical_spacing=min(0.15, 0.5 / max(nrows - 1, 1)),
    )
    for i, m in enumerate(mats):
        r, c = divmod(i, ncols)
        show = (i == 0) if shared_scale else True
        cb = {"len": 1.0 / nrows, "y": 1 - (r + 0.5) / nrows, "x": (c + 1) / ncols - 0.02} if not shared_scale else {}
        fig.add_trace(
            go.Heatmap(z=m, colorscale=colorscale, zmin=lo, zmax=hi, showscale=show, colorbar=cb), row=r + 1, col=c + 1
        )
        fig.update_xaxes(title_text=x_label, row=r + 1, col=c + 1)
        fig.update_yaxes(title_text=y_label, autorange="reversed", row=r + 1, col=c + 1)
    return style_figure(fig, title, height=380 * nrows + 60, width=440 * ncols + 80)


def logit_distributions(
    probs: Mapping[str, np.ndarray],
    title: str,
    kind: str = "sorted",
    log_y: bool = True,
) -> go.Figure:
    """Compare class-probability distributions, e.g. shared vs specific classifier outputs for CSA.

    Args:
        probs: ``{label: (N, C) softmax probabilities}``.
        title: Figure title.
        kind: ``"sorted"``: mean over the N rows of each row's probabilities sorted in decreasing order, against the
            class rank (how peaked the predictions are); ``"hist"``: overlaid histograms of all values.
        log_y: Logarithmic y axis for ``"sorted"``.
    """
    if kind not in ("sorted", "hist"):
        raise ValueError(f"kind must be 'sorted' or 'hist', got {kind!r}")
    fig = go.Figure()
    for i, (name, p) in enumerate(probs.items()):
        arr = np.asarray(p, dtype=np.float64)
        if kind == "sorted":
            arr = arr.reshape(-1, arr.shape[-1])
            prof = -np.sort(-arr, axis=1).mean(axis=0)
            fig.add_trace(
                go.Scatter(
                    x=np.arange(1, len(prof) + 1),
                    y=prof,
                    mode="lines",
                    name=name,
                    line={"color": series_color(i), "dash": DASHES[i % 4], "width": 2.2},
                )
            )
        else:
            fig.add_trace(
                go.Histogram(
                    x=arr.ravel(),
                    name=name,
                    opacity=0.55,
                    histnorm="probability density",
                    nbinsx=50,
                    marker={"color": series_color(i)},
                )
            )
    if kind == "sorted":
        fig.update_xaxes(title_text="class rank (sorted by probability)")
        fig.update_yaxes(title_text="mean probability", type="log" if log_y else "linear")
    else:
        fig.update_xaxes(title_text="probability")
        fig.update_yaxes(title_text="density")
        fig.update_layout(barmode="overlay")
    return style_figure(fig, title, legend_title_text="output")


# ----------------------------------------------------------------------------------------------------------------
# dataset overviews
# ----------------------------------------------------------------------------------------------------------------


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
        width=300 * len(splits) + 260,
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


# ----------------------------------------------------------------------------------------------------------------
# image grids
# ----------------------------------------------------------------------------------------------------------------


def image_grid(
    images: Sequence[Sequence[np.ndarray | None]],
    title: str,
    captions: Sequence[Sequence[str]] | None = None,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cell_size: tuple[int, int] = (180, 110),
    subtitle: str = "",
) -> go.Figure:
    """Lay images out on a grid of subplots (the building block of sample, rank-list and Grad-CAM figures).

    Args:
        images: ``rows x cols`` nested sequence of ``(H, W, 3)`` images (uint8 or float in [0, 1]); ``None`` or a
            short row leaves cells empty.
        title: Figure title.
        captions: Per-cell captions (same nesting as ``images``); they replace ``col_labels`` as subplot titles.
        row_labels: One label per row, shown as the y-axis title of the first column.
        col_labels: One label per column, shown above the first row.
        cell_size: ``(height, width)`` of a cell in pixels.
        subtitle: Smaller second title line (e.g. a colour key).
    """
    nrows = len(images)
    ncols = max((len(r) for r in images), default=0)
    if nrows == 0 or ncols == 0:
        raise ValueError("image_grid needs at least one image")
    titles: list[str] = []
    for r in range(nrows):
        for c in range(ncols):
            if captions is not None:
                titles.append(captions[r][c] if c < len(captions[r]) else "")
            else:
                titles.append(col_labels[c] if col_labels is not None and r == 0 and c < len(col_labels) else "")
    has_titles = any(titles)
    cell_h, cell_w = cell_size
    top, bottom, left = 70 + (18 if subtitle else 0), 20, 60 if row_labels is not None else 20
    gap_px = 42 if has_titles else 12
    height = top + bottom + nrows * cell_h + (nrows - 1) * gap_px
    width = max(left + 20 + ncols * cell_w, 560 if subtitle else 0)
    fig = make_subplots(
        rows=nrows,
        cols=ncols,
        subplot_titles=titles if has_titles else None,
        vertical_spacing=gap_px / max(height - top - bottom, 1) if nrows > 1 else 0.0,
        horizontal_spacing=min(0.02, 0.9 / max(ncols - 1, 1)),
    )
    for r, row in enumerate(images):
        for c, img in enumerate(row):
            if img is None:
                continue
            fig.add_trace(go.Image(source=png_data_uri(img), hoverinfo="skip"), row=r + 1, col=c + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            fig.update_yaxes(title_text=label, title_font={"size": 11}, row=r + 1, col=1)
    fig.update_annotations(font_size=11)
    full_title = title + (f"<br><sup>{subtitle}</sup>" if subtitle else "")
    return style_figure(
        fig,
        full_title,
        height=height,
        width=width,
        margin={"t": top, "b": bottom, "l": left, "r": 20},
        showlegend=False,
    )


MODALITY_KEY = (
    f"border colour = modality: <span style='color:{MODALITY_COLORS[VISIBLE]}'>visible</span>, "
    f"<span style='color:{MODALITY_COLORS[INFRARED]}'>infrared</span>"
)


def sample_grid(
    samples_by_row: Sequence[Sequence[Sample]],
    row_labels: Sequence[str],
    title: str,
    image_size: tuple[int, int] = (128, 64),
    max_per_row: int = 8,
) -> go.Figure:
    """Images of records on a grid, each with a border in its modality colour and a ``cam / modality`` caption.

    Typical use: one row per camera (or per identity) to show one person across visible and infrared cameras.

    Args:
        samples_by_row: Records per row.
        row_labels: One label per row.
        title: Figure title.
        image_size: ``(height, width)`` each image is resized to.
        max_per_row: At most this many images per row (the first ones).
    """
    if len(row_labels) != len(samples_by_row):
        raise ValueError(f"{len(row_labels)} row labels for {len(samples_by_row)} rows")
    border = max(2, image_size[0] // 40)
    images, captions = [], []
    for row in samples_by_row:
        row = list(row)[:max_per_row]
        images.append([add_border(load_image(s.path, image_size), MODALITY_COLORS[s.modality], border) for s in row])
        captions.append([f"cam {s.camid} · {'IR' if s.modality == INFRARED else 'VIS'}" for s in row])
    return image_grid(
        images,
        title,
        captions=captions,
        row_labels=row_labels,
        cell_size=(image_size[0] + 40, image_size[1] + 40),
        subtitle=MODALITY_KEY,
    )


def batch_layout_figure(
    pids: np.ndarray | Sequence[int],
    modality: np.ndarray | Sequence[int],
    p: int,
    k: int,
    title: str = "",
) -> go.Figure:
    """The P x K cross-modality batch layout as a coloured grid.

    Rows are identity blocks, columns the K positions in a block; cell colour = modality, cell text = pid. The
    expected layout (docs/ARCHITECTURE.md) is one identity per block, alternating infrared, visible, ...; the
    subtitle reports how many cells break it.

    Args:
        pids: ``(B,)`` identity labels in batch order, ``B = p * k``.
        modality: ``(B,)`` modality labels (0 visible, 1 infrared).
        p: Identities per batch.
        k: Images per identity.
        title: Figure title (default ``"Batch layout (P=.., K=..)"``).
    """
    pid_arr = np.asarray(pids).reshape(-1)
    mod_arr = np.asarray(modality).reshape(-1)
    if pid_arr.size != p * k or mod_arr.size != p * k:
        raise ValueError(f"expected p*k = {p * k} labels, got {pid_arr.size} pids and {mod_arr.size} modalities")
    pid_grid, mod_grid = pid_arr.reshape(p, k), mod_arr.reshape(p, k)
    expected_mod = (
        np.tile(np.arange(k) % 2 == 0, (p, 1)).astype(np.int64) * INFRARED
        + np.tile(np.arange(k) % 2 == 1, (p, 1)).astype(np.int64) * VISIBLE
    )
    bad = (pid_grid != pid_grid[:, :1]) | (mod_grid != expected_mod)
    text = np.where(bad, np.char.add(pid_grid.astype(str), " !"), pid_grid.astype(str))
    vis, ir = MODALITY_COLORS[VISIBLE], MODALITY_COLORS[INFRARED]
    fig = go.Figure(
        go.Heatmap(
            z=mod_grid.astype(float),
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=1,
            xgap=2,
            ygap=2,
            x=[f"k={j + 1}" for j in range(k)],
            y=[f"id block {i + 1}" for i in range(p)],
            colorscale=[[0.0, vis], [0.5, vis], [0.5, ir], [1.0, ir]],
            colorbar={"title": {"text": "modality"}, "tickvals": [0.25, 0.75], "ticktext": ["visible", "infrared"]},
            hovertemplate="block %{y}, %{x}: pid %{text}<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="position in identity block")
    fig.update_yaxes(title_text="identity block", autorange="reversed")
    status = (
        "layout as expected (infrared / visible alternating, one identity per block)"
        if not bad.any()
        else f"{int(bad.sum())} cell(s) break the expected layout (marked !)"
    )
    return style_figure(
        fig,
        (title or f"Batch layout (P={p}, K={k})") + f"<br><sup>{status}</sup>",
        height=200 + 36 * p,
        width=max(520, 260 + 56 * k),
        margin={"t": 90, "b": 60, "l": 120, "r": 40},
    )


# ----------------------------------------------------------------------------------------------------------------
# saving: HTML (offline) and PNG (kaleido when a Chrome/Chromium is available, else a matplotlib rendering)
# ----------------------------------------------------------------------------------------------------------------

_KALEIDO_STATE: dict[str, object] = {}  # "ok": bool once probed; "warned": bool


def _kaleido_png(fig: go.Figure, width: int | None, height: int | None, scale: float) -> bytes:
    return fig.to_image(format="png", width=width, height=height, scale=scale)


def figure_to_png(
    fig: go.Figure,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    engine: str = "auto",
) -> bytes:
    """Render a figure to PNG bytes.

    ``engine="kaleido"`` uses plotly's exporter, which needs a Chrome or Chromium on the machine (kaleido >= 1 does
    not ship one; on Debian ``apt-get install chromium`` provides it). ``engine="matplotlib"`` draws the figure's
    traces (scatter, bar, histogram, heatmap, image, table), titles, axis labels, legends and subplot titles with
    matplotlib: no system package needed, a faithful but not pixel-identical rendering. ``"auto"`` tries kaleido
    once per process and falls back to matplotlib with a single warning.

    Args:
        fig: The figure (not modified).
        width: Width in CSS pixels (default: the figure's layout width, else 700).
        height: Height in CSS pixels (default: the figure's layout height, else 500).
        scale: Pixel density multiplier.
        engine: ``"auto"``, ``"kaleido"`` or ``"matplotlib"``.

    Returns:
        PNG file content.
    """
    if engine not in ("auto", "kaleido", "matplotlib"):
        raise ValueError(f"engine must be 'auto', 'kaleido' or 'matplotlib', got {engine!r}")
    if engine == "kaleido":
        return _kaleido_png(fig, width, height, scale)
    if engine == "auto" and _KALEIDO_STATE.get("ok", True):
        try:
            png = _kaleido_png(fig, width, height, scale)
            _KALEIDO_STATE["ok"] = True
            return png
        except Exception as exc:  # kaleido raises RuntimeError/ChromeNotFoundError/... without a browser
            _KALEIDO_STATE["ok"] = False
            warnings.warn(
                f"kaleido could not export PNG ({type(exc).__name__}: {str(exc).strip().splitlines()[0]}); "
                "rendering PNGs with matplotlib instead (install Chrome/Chromium for plotly's exact rendering)",
                RuntimeWarning,
                stacklevel=2,
            )
    return _matplotlib_png(fig, width, height, scale)


def save_figure(
    fig: go.Figure,
    folder: str | os.PathLike[str],
    name: str,
    png: bool = True,
    self_contained: bool = False,
    scale: float = 2.0,
    engine: str = "auto",
) -> dict[str, Path]:
    """Write ``<folder>/<name>.html`` (interactive) and ``<folder>/<name>.png`` (static), atomically.

    The HTML works offline: by default (``self_contained=False``) it loads ``plotly.min.js`` from the same folder,
    which is written once per folder (about 4.7 MB shared by all figures there), so keep the HTML next to it;
    ``self_contained=True`` embeds plotly.js in every HTML file instead (portable single file, about 4.7 MB each).
    Nothing is loaded from the network.

    Args:
        fig: The figure.
        folder: Output folder (created if needed).
        name: File stem.
        png: Also write a PNG (see :func:`figure_to_png` for the engines).
        self_contained: Embed plotly.js in the HTML.
        scale: PNG pixel density.
        engine: PNG engine, see :func:`figure_to_png`.

    Returns:
        ``{"html": path, "png": path}`` (``"png"`` only when written).
    """
    if not name or any(ch in name for ch in "/\\"):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if self_contained:
        html = fig.to_html(include_plotlyjs=True, full_html=True)
    else:
        html = fig.to_html(include_plotlyjs="directory", full_html=True)
        _ensure_plotlyjs(out)
    paths["html"] = atomic_write_text(out / f"{name}.html", html)
    if png:
        paths["png"] = atomic_write_bytes(out / f"{name}.png", figure_to_png(fig, scale=scale, engine=engine))
    return paths


def _ensure_plotlyjs(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode("utf-8")
    target = folder / "plotly.min.js"
    if not target.is_file() or target.stat().st_size != len(js):
        atomic_write_bytes(target, js)


# -- matplotlib rendering of a plotly figure (the PNG fallback) --------------------------------------------------

_SYMBOLS = {
    "circle": "o",
    "diamond": "D",
    "square": "s",
    "x": "x",
    "cross": "P",
    "triangle-up": "^",
    "triangle-down": "v",
    "star": "*",
    "circle-open": "o",
    "diamond-open": "D",
}
_DASH = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": "--", "longdashdot": "-."}


def _plain(text: object) -> str:
    s = "" if text is None else str(text)
    s = re.sub(r"<br\s*/?>", "\n", s)
    return re.sub(r"<[^>]+>", "", s)


def _mpl_color(color: Any) -> Any:
    if isinstance(color, str):
        m = re.match(r"rgba?\(([^)]*)\)", color.strip())
        if m:
            parts = [float(v) for v in m.group(1).split(",")]
            rgb = [v / 255.0 for v in parts[:3]]
            return (*rgb, parts[3]) if len(parts) == 4 else tuple(rgb)
    return color


def _axis_key(ref: str | None, axis: str) -> str:
    suffix = (ref or axis)[1:]
    return f"{axis}axis{suffix}"


def _colormap(colorscale: Any) -> Any:
    from matplotlib.colors import LinearSegmentedColormap

    stops = [(float(pos), _mpl_color(col)) for pos, col in (colorscale or ((0.0, "#440154"), (1.0, "#fde725")))]
    return LinearSegmentedColormap.from_list("plotly", stops)


def _matplotlib_png(fig: go.Figure, width: int | None, height: int | None, scale: float) -> bytes:
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lay = fig.layout
    w_px = width or lay.width or 700
    h_px = height or lay.height or 500
    dpi = 100.0 * scale
    mfig = Figure(figsize=(w_px / 100.0, h_px / 100.0), dpi=dpi)
    FigureCanvasAgg(mfig)
    margin = lay.margin
    ml = (margin.l if margin.l is not None else 80) / w_px
    mr = (margin.r if margin.r is not None else 80) / w_px
    mt = (margin.t if margin.t is not None else 100) / h_px
    mb = (margin.b if margin.b is not None else 80) / h_px
    legend_right = 0.0
    if lay.showlegend is not False and any(
        t.showlegend is not False and t.name for t in fig.data if t.type not in ("image", "table", "heatmap")
    ):
        legend_right = min(0.25, 160 / w_px)

    def to_fig(x: float, y: float) -> tuple[float, float]:
        return ml + x * (1 - ml - mr - legend_right), mb + y * (1 - mb - mt)

    axes: dict[tuple[str, str], Any] = {}
    bars: dict[tuple[str, str], list[Any]] = {}
    for trace in fig.data:
        if trace.type == "table":
            dom = trace.domain
            x0, y0 = to_fig(dom.x[0] if dom.x else 0.0, dom.y[0] if dom.y else 0.0)
            x1, y1 = to_fig(dom.x[1] if dom.x else 1.0, dom.y[1] if dom.y else 1.0)
            ax = mfig.add_axes((x0, y0, x1 - x0, y1 - y0))
            ax.axis("off")
            header = [_plain(h) for h in trace.header.values]
            cols = [[_plain(v) for v in col] for col in trace.cells.values]
            lengths = [max(len(text) for text in [h, *col]) + 2 for h, col in zip(header, cols, strict=True)]
            tab = ax.table(
                cellText=[list(r) for r in zip(*cols, strict=True)],
                colLabels=header,
                colWidths=[n / sum(lengths) for n in lengths],  # columns as wide as their longest text
                loc="upper center",
                cellLoc="center",
            )
            tab.auto_set_font_size(False)
            tab.set_fontsize(9)
            tab.scale(1.0, 1.4)
            continue
        key = (_axis_key(trace.xaxis, "x"), _axis_key(trace.yaxis, "y"))
        if key not in axes:
            xdom = lay[key[0]].domain or (0.0, 1.0)
            ydom = lay[key[1]].domain or (0.0, 1.0)
            x0, y0 = to_fig(xdom[0], ydom[0])
            x1, y1 = to_fig(xdom[1], ydom[1])
            axes[key] = mfig.add_axes((x0, y0, x1 - x0, y1 - y0))
        ax = axes[key]
        if trace.type in ("scatter", "scattergl"):
            _mpl_scatter(ax, trace)
        elif trace.type == "bar":
            bars.setdefault(key, []).append(trace)
        elif trace.type == "histogram":
            color = _mpl_color(trace.marker.color) if trace.marker and trace.marker.color else None
            density = trace.histnorm in ("probability density", "probability", "percent")
            values = np.asarray(trace.x, dtype=np.float64)
            ax.hist(
                values[np.isfinite(values)],
                bins=trace.nbinsx or "auto",
                density=density,
                color=color,
                alpha=trace.opacity if trace.opacity is not None else 1.0,
                label=trace.name if trace.showlegend is not False else None,
            )
        elif trace.type == "heatmap":
            _mpl_heatmap(mfig, ax, trace, lay[key[1]])
        elif trace.type == "image":
            img = decode_data_uri(trace.source) if trace.source else np.asarray(trace.z, dtype=np.uint8)
            ax.imshow(img, interpolation="bilinear")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
    for key, traces in bars.items():
        _mpl_bars(axes[key], traces, lay.barmode or "group")
    for (xk, yk), ax in axes.items():
        xa, ya = lay[xk], lay[yk]
        ax.set_xlabel(_plain(xa.title.text), fontsize=9)
        ax.set_ylabel(_plain(ya.title.text), fontsize=9)
        ax.tick_params(labelsize=8)
        if ya.type == "log":
            ax.set_yscale("log")
        if xa.type == "log":
            ax.set_xscale("log")
        if ya.range is not None:  # plotly gives the range of a log axis in log10 units
            ax.set_ylim(*(10.0**v for v in ya.range) if ya.type == "log" else ya.range)
        if xa.range is not None:
            ax.set_xlim(*(10.0**v for v in xa.range) if xa.type == "log" else xa.range)
        if xa.showticklabels is False:
            ax.set_xticks([])
        if ya.showticklabels is False:
            ax.set_yticks([])
    for ann in lay.annotations or ():
        if ann.xref == "paper" and ann.yref == "paper" and ann.text:
            fx, fy = to_fig(ann.x, ann.y)
            mfig.text(
                fx,
                fy + (0.004 if ann.yanchor == "bottom" else 0.0),
                _plain(ann.text),
                fontsize=9,
                ha={"left": "left", "right": "right"}.get(ann.xanchor, "center"),
                va={"top": "top", "middle": "center"}.get(ann.yanchor, "bottom"),
            )
    if lay.title and lay.title.text:
        main, _, sub = str(lay.title.text).partition("<br>")
        mfig.text(0.5, 1 - 12 / h_px, _plain(main), fontsize=12, ha="center", va="top")
        if sub:
            mfig.text(0.5, 1 - 34 / h_px, _plain(sub), fontsize=8, ha="center", va="top", wrap=True)
    if legend_right > 0:
        handles, labels = [], []
        for ax in axes.values():
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in labels and not lab.startswith("_"):
                    handles.append(h)
                    labels.append(lab)
        if handles:
            title = _plain(lay.legend.title.text) if lay.legend and lay.legend.title else None
            mfig.legend(
                handles, labels, loc="upper right", fontsize=8, title=title or None, title_fontsize=8, frameon=False
            )
    buf = io.BytesIO()
    mfig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _mpl_scatter(ax: Any, trace: Any) -> None:
    x = np.asarray([np.nan if v is None else v for v in (trace.x if trace.x is not None else ())], dtype=object)
    y = np.asarray([np.nan if v is None else v for v in (trace.y if trace.y is not None else ())], dtype=np.float64)
    if x.size == 0:
        x = np.arange(len(y))
    try:
        x = x.astype(np.float64)
    except (TypeError, ValueError):
        x = x.astype(str)
    mode = trace.mode or "lines"
    label = trace.name if trace.showlegend is not False and trace.name else None
    alpha = trace.opacity if trace.opacity is not None else 1.0
    if "lines" in mode:
        line = trace.line
        ax.plot(
            x,
            y,
            color=_mpl_color(line.color) if line and line.color else None,
            alpha=alpha,
            label=label,
            linestyle=_DASH.get(line.dash or "solid", "-") if line else "-",
            linewidth=(line.width or 2.0) * 0.75 if line else 1.5,
            marker=_SYMBOLS.get(trace.marker.symbol or "circle", "o") if "markers" in mode else None,
            markersize=3,
        )
    elif "markers" in mode:
        marker = trace.marker
        color = marker.color if marker and marker.color is not None else None
        if isinstance(color, (list, tuple, np.ndarray)):
            color = [_mpl_color(c) for c in color]
        elif color is not None:
            color = _mpl_color(color)
        size = float(marker.size) if marker and isinstance(marker.size, (int, float)) else 6.0
        ax.scatter(
            x,
            y,
            c=color,
            s=size**2 * 0.5,
            marker=_SYMBOLS.get((marker.symbol if marker else None) or "circle", "o"),
            alpha=alpha,
            label=label,
            linewidths=0,
        )


def _mpl_bars(ax: Any, traces: list[Any], barmode: str) -> None:
    horizontal = all(t.orientation == "h" for t in traces)  # categories on y, values on x

    def categories(t: Any) -> Any:
        return t.y if horizontal else t.x

    cats: list[Any] = []
    for t in traces:
        cats.extend(v for v in categories(t) if v not in cats)
    pos = {c: i for i, c in enumerate(cats)}
    n = len(traces)
    width = 0.8 / (1 if barmode in ("stack", "overlay", "relative") else n)
    bottom = np.zeros(len(cats))
    for j, t in enumerate(traces):
        xs = np.array([pos[v] for v in categories(t)], dtype=np.float64)
        ys = np.asarray(t.x if horizontal else t.y, dtype=np.float64)
        offset = 0.0 if width >= 0.8 else (j - (n - 1) / 2) * width
        base = bottom[xs.astype(int)] if barmode == "stack" else 0.0
        style = {
            "label": t.name if t.showlegend is not False else None,
            "color": _mpl_color(t.marker.color) if t.marker and t.marker.color else None,
        }
        if horizontal:
            ax.barh(xs + offset, ys, height=width, left=base, **style)
        else:
            ax.bar(xs + offset, ys, width=width, bottom=base, **style)
        if barmode == "stack":
            bottom[xs.astype(int)] += ys
    if horizontal:
        ax.set_yticks(range(len(cats)))
        ax.set_yticklabels([str(c) for c in cats])
    else:
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels([str(c) for c in cats], rotation=0)


def _mpl_heatmap(mfig: Any, ax: Any, trace: Any, yaxis: Any) -> None:
    z = np.asarray(trace.z, dtype=np.float64)
    reversed_y = yaxis.autorange == "reversed"
    im = ax.imshow(
        z,
        cmap=_colormap(trace.colorscale),
        aspect="auto",
        vmin=trace.zmin,
        vmax=trace.zmax,
        origin="upper" if reversed_y else "lower",
        interpolation="nearest",
    )
    if trace.x is not None and len(trace.x) <= 40:
        ax.set_xticks(range(len(trace.x)))
        ax.set_xticklabels([str(v) for v in trace.x], rotation=90 if len(trace.x) > 10 else 0)
    if trace.y is not None and len(trace.y) <= 40:
        ax.set_yticks(range(len(trace.y)))
        ax.set_yticklabels([str(v) for v in trace.y])
    if trace.text is not None and z.size <= 600:
        text = np.asarray(trace.text, dtype=object).reshape(z.shape)
        for (i, j), val in np.ndenumerate(text):
            ax.text(j, i, str(val), ha="center", va="center", fontsize=7)
    if trace.showscale is not False:
        cb = mfig.colorbar(im, ax=ax, fraction=0.05, pad=0.02)
        if trace.colorbar and trace.colorbar.tickvals is not None:
            cb.set_ticks(list(trace.colorbar.tickvals))
            cb.set_ticklabels([str(v) for v in trace.colorbar.ticktext or trace.colorbar.tickvals])
        if trace.colorbar and trace.colorbar.title and trace.colorbar.title.text:
            cb.set_label(_plain(trace.colorbar.title.text), fontsize=8)
        cb.ax.tick_params(labelsize=7)


__all__ = [
    "MATCH_COLOR",
    "MISMATCH_COLOR",
    "MODALITY_COLORS",
    "MODALITY_SYMBOLS",
    "OKABE_ITO",
    "batch_layout_figure",
    "cmc_curves",
    "dataset_bars",
    "dataset_stats",
    "ema",
    "figure_to_png",
    "heatmap",
    "heatmap_grid",
    "image_grid",
    "image_size_histogram",
    "logit_distributions",
    "loss_curves",
    "modality_name",
    "results_table",
    "sample_grid",
    "save_figure",
    "series_color",
    "style_figure",
]
