"""Training curves and retrieval results: loss curves, CMC curves, results tables (a training run's losses by term
group, also live while it trains: :mod:`idkl_lib.viz.training_losses`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from idkl_lib.viz.tables import table_figure
from idkl_lib.viz.theme import (
    DASHES,
    DEFAULT_COLUMNS,
    OKABE_ITO,
    series_color,
    style_figure,
)

__all__ = ["cmc_curves", "ema", "loss_curves", "results_table"]


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


def _is_count_column(name: str, values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None]
    integers = bool(present) and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in present)
    return name.startswith("num_") or integers


def results_table(
    rows: Mapping[str, Mapping[str, float]],
    title: str = "Retrieval results",
    columns: Sequence[str] | None = None,
    decimals: int = 2,
    highlight_best: bool = True,
    counts: Sequence[str] | None = None,
) -> go.Figure:
    """A table of retrieval metrics, one row per method / setting.

    Args:
        rows: ``{row label: {"R1": ..., "mAP": ...}}``, values shown as given (no rescaling).
        title: Figure title.
        columns: Metric columns; by default R1/R5/R10/R20/mAP/mINP that occur in ``rows``, then any other keys.
        decimals: Digits after the decimal point of the metrics.
        highlight_best: Bold the highest value of each metric column (never of a count column).
        counts: Columns holding counts (e.g. ``num_queries``), printed as integers and not highlighted; by default
            the columns named ``num_*`` and those whose values are all integers.

    Returns:
        A ``go.Table`` figure showing every row and the full labels (:func:`idkl_lib.viz.tables.table_figure`).
    """
    if columns is None:
        present = [k for r in rows.values() for k in r]
        columns = [c for c in DEFAULT_COLUMNS if c in present] + list(
            dict.fromkeys(k for k in present if k not in DEFAULT_COLUMNS)
        )
    cells: list[list[str]] = [list(rows)]
    for col in columns:
        vals = [rows[r].get(col, np.nan) for r in rows]
        is_count = col in counts if counts is not None else _is_count_column(col, [rows[r].get(col) for r in rows])
        finite = [v for v in vals if np.isfinite(v)]
        best = max(finite) if finite and highlight_best and not is_count and len(rows) > 1 else None
        text = []
        for v in vals:
            if not np.isfinite(v):
                text.append("–")
                continue
            shown = f"{round(v):d}" if is_count else f"{v:.{decimals}f}"
            text.append(f"<b>{shown}</b>" if best is not None and v == best else shown)
        cells.append(text)
    align = ["left", *["center"] * len(columns)]
    return table_figure(["method", *columns], cells, title, align=align)
