"""Figures of the run comparison (``notebooks/06_compare_runs.ipynb``): tables of mean +/- CI per configuration and of
the paired differences with the baseline, overlaid CMC and loss curves, and loss-term magnitudes per configuration.

Inputs are the plain structures of :mod:`idkl_lib.experiments.compare`; every figure uses the shared look of
:mod:`idkl_lib.viz.plots`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from idkl_lib.viz.plots import cmc_curves, series_color, style_figure
from idkl_lib.viz.tables import table_figure

__all__ = ["cmc_figure", "loss_curves_figure", "loss_terms_figure", "paired_table", "summary_table"]


_VERDICTS = {True: "inside seed noise", False: "<b>outside seed noise</b>", None: "one seed: no estimate"}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], columns: Sequence[Sequence[str]], title: str) -> go.Figure:
    return table_figure(header, columns, title)


def summary_table(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], title: str) -> go.Figure:
    """One row per configuration: seeds, and per metric ``mean ± std`` and the 95% interval ``[lo, hi]``."""
    columns: list[list[str]] = [[str(r["config"]) for r in rows], [str(r["n"]) for r in rows]]
    header = ["configuration", "seeds"]
    for metric in metrics:
        header += [f"{metric} mean ± std", f"{metric} 95% CI"]
        columns.append([f"{_fmt(r[metric]['mean'])} ± {_fmt(r[metric]['std'])}" for r in rows])
        columns.append(
            [
                "–"
                if r[metric]["ci95"] is None
                else f"[{r[metric]['mean'] - r[metric]['ci95']:.2f}, {r[metric]['mean'] + r[metric]['ci95']:.2f}]"
                for r in rows
            ]
        )
    header.append("train s")
    columns.append([_fmt(r.get("train_time_s"), 0) for r in rows])
    return _table(header, columns, title)


def paired_table(rows: Sequence[Mapping[str, Any]], baseline: str, title: str = "") -> go.Figure:
    """Differences with the baseline per configuration and metric; rows inside the seed noise are marked."""
    header = ["configuration", "metric", "pairs", "mean diff", "95% CI", "paired t p", "Wilcoxon p", "verdict"]
    columns = [
        [str(r["config"]) for r in rows],
        [str(r["metric"]) for r in rows],
        [str(r["pairs"]) for r in rows],
        [f"{r['mean_diff']:+.2f}" if r["mean_diff"] is not None else "–" for r in rows],
        [f"± {r['ci95']:.2f}" if r["ci95"] is not None else "–" for r in rows],
        [_fmt(r["t_p"], 3) for r in rows],
        [_fmt(r["wilcoxon_p"], 3) for r in rows],
        [_VERDICTS[r["inside_noise"]] for r in rows],
    ]
    return _table(header, columns, title or f"Paired by seed: each configuration minus {baseline}")


def loss_curves_figure(
    curves: Mapping[str, Mapping[str, Any]], title: str = "Total loss (mean over seeds)"
) -> go.Figure:
    """The total training loss per logged step, one line per configuration (mean over its seeds)."""
    fig = go.Figure()
    for i, (label, curve) in enumerate(curves.items()):
        fig.add_trace(
            go.Scatter(x=curve["steps"], y=curve["total"], mode="lines", name=label, line={"color": series_color(i)})
        )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="total loss", type="log")
    return style_figure(fig, title, legend_title_text="configuration")


def cmc_figure(curves: Mapping[str, Mapping[str, Any]], title: str) -> go.Figure:
    """Mean CMC curve per configuration (percent)."""
    return cmc_curves({label: c["cmc"] for label, c in curves.items() if c["cmc"]}, title, percent=False)


def loss_terms_figure(magnitudes: Mapping[str, Mapping[str, float]], title: str = "") -> go.Figure:
    """Grouped bars: each logged loss term's last-epoch value per configuration (log scale; 0 = switched off)."""
    terms = sorted({t for values in magnitudes.values() for t in values if t != "total"})
    fig = go.Figure()
    for i, (label, values) in enumerate(magnitudes.items()):
        fig.add_trace(go.Bar(x=terms, y=[values.get(t) for t in terms], name=label, marker_color=series_color(i)))
    fig.update_yaxes(title_text="weighted loss (last epoch)", type="log")
    fig.update_layout(barmode="group")
    return style_figure(fig, title or "Loss terms per configuration (last epoch, mean over seeds)")
