"""Plotly figures for the notebooks that belong to no other viz module: TGSA/CSA diagnostics (heatmaps, logit
distributions), image grids (sample grids, the batch layout) and the modality-gap bars.

This module also re-exports the figures of :mod:`~idkl_lib.viz.theme`, :mod:`~idkl_lib.viz.curves`,
:mod:`~idkl_lib.viz.dataset_plots` and :mod:`~idkl_lib.viz.export`, so ``from idkl_lib.viz import plots`` keeps
giving every figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.data.records import INFRARED, VISIBLE, Sample
from idkl_lib.viz.curves import cmc_curves, ema, loss_curves, results_table
from idkl_lib.viz.dataset_plots import dataset_bars, dataset_stats, image_size_histogram
from idkl_lib.viz.export import figure_to_png, save_figure
from idkl_lib.viz.images import add_border, load_image, png_data_uri
from idkl_lib.viz.theme import (
    CONTINUOUS_SCALE,
    DASHES,
    DEFAULT_COLUMNS,
    MATCH_COLOR,
    MAX_WIDTH,
    MISMATCH_COLOR,
    MODALITY_COLORS,
    MODALITY_SYMBOLS,
    NOTEBOOK_RENDERER,
    OKABE_ITO,
    TEMPLATE,
    modality_name,
    series_color,
    style_figure,
)

__all__ = [
    "CONTINUOUS_SCALE",
    "DASHES",
    "DEFAULT_COLUMNS",
    "MATCH_COLOR",
    "MISMATCH_COLOR",
    "MODALITY_COLORS",
    "MODALITY_KEY",
    "MODALITY_SYMBOLS",
    "NOTEBOOK_RENDERER",
    "OKABE_ITO",
    "TEMPLATE",
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
        cell_size: ``(height, width)`` of a cell in pixels; cells shrink (keeping their shape) when the grid would
            be wider than :data:`~idkl_lib.viz.theme.MAX_WIDTH`.
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
    top, bottom, left = 72 + (24 if subtitle else 0), 20, 60 if row_labels is not None else 20
    if left + 20 + ncols * cell_w > MAX_WIDTH:  # shrink the tiles to fit the notebook's width
        factor = (MAX_WIDTH - left - 20) / (ncols * cell_w)
        cell_h, cell_w = max(1, int(cell_h * factor)), max(1, int(cell_w * factor))
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
                if c == 0 and row_labels is not None:  # an empty first cell keeps its row label: the axis needs data
                    fig.add_trace(go.Scatter(x=[None], y=[None], hoverinfo="skip"), row=r + 1, col=1)
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
