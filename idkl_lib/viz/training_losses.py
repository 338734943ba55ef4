"""A training run's losses as small multiples, also live while it trains: one panel per group of loss terms (the total,
identity, triplet, the purifier, TGSA, CSA1, CSA2, the modality losses), each with its own logarithmic axis that holds
all of its curves and a legend of at most three entries in distinct colours.

One panel for all sixteen curves hides most of them: the terms span several decades, so one axis either clips the
smallest (the purifier's entropy term runs off it) or flattens the rest, and sixteen series need more colours than a
colour-blind-safe palette has. Grouping by :data:`idkl_lib.config.ablation.TERM_GROUPS` keeps the terms that are
compared with each other (e.g. TGSA's three parts) on one axis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.config.ablation import TERM_GROUPS
from idkl_lib.viz.curves import _history_to_series, ema
from idkl_lib.viz.theme import NOTEBOOK_RENDERER, OKABE_ITO, style_figure

__all__ = ["LOSS_PANELS", "MAX_DECADES", "LiveLossPlot", "final_losses", "loss_figure", "panel_terms"]

LOSS_PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("total", ("total",)),
    ("identity", TERM_GROUPS["identity"]),
    ("triplet", TERM_GROUPS["triplet"]),
    ("purifier (IP)", TERM_GROUPS["ip"]),
    ("TGSA", TERM_GROUPS["tgsa"]),
    ("CSA1", TERM_GROUPS["csa1"]),
    ("CSA2", TERM_GROUPS["csa2"]),
    ("modality", TERM_GROUPS["mod"]),
)
"""Panel title -> the history keys it draws, in panel order; any other logged key goes to a last panel, "other"."""
NOT_LOSSES = ("step", "epoch", "lr", "time", "iteration")
"""History keys that are not loss terms."""
MAX_DECADES = 10.0
"""A panel's log axis spans at most this many decades below its largest value: a term that falls further (or to
exactly 0, a satisfied margin, which a log axis cannot show) is at the floor of its panel, practically zero next to
the others."""
PANEL_HEIGHT = 215
"""Pixels per row of panels (two panels a row)."""
_COLUMNS = 2
_PREFIXES = ("tgsa_", "csa1_", "csa2_", "ip_")
"""Prefixes a legend leaves out: the panel's title names the group (``tgsa_intra`` is ``intra`` under TGSA)."""
_TOTAL_COLOR = "#000000"
_TERM_COLORS = tuple(color for color in OKABE_ITO if color != _TOTAL_COLOR)  # black is the total's alone


def panel_terms(keys: Sequence[str]) -> list[tuple[str, list[str]]]:
    """``[(panel title, [history keys])]`` of the panels a history with ``keys`` fills (empty panels left out)."""
    present = [k for k in keys if k not in NOT_LOSSES]
    panels = [(title, [k for k in terms if k in present]) for title, terms in LOSS_PANELS]
    known = {k for _, terms in LOSS_PANELS for k in terms}
    panels.append(("other", [k for k in present if k not in known]))
    return [(title, terms) for title, terms in panels if terms]


def _label(term: str, values: np.ndarray) -> str:
    """A curve's legend entry: the term without its group's prefix, ``= 0`` added when it is never positive (a log
    axis cannot draw it: the term is switched off by the batch layout or satisfied throughout)."""
    label = next((term.removeprefix(p) for p in _PREFIXES if term.startswith(p)), term)
    return label if np.any(np.isfinite(values) & (values > 0)) else f"{label} = 0"


def _log_range(values: Sequence[np.ndarray]) -> list[float] | None:
    """``[low, high]`` (log10) that holds every positive finite value, at most :data:`MAX_DECADES` deep."""
    finite = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values]) if values else np.array([])
    if finite.size == 0:
        return None
    top, bottom = math.log10(float(finite.max())), math.log10(float(finite.min()))
    bottom = max(bottom, top - MAX_DECADES)
    pad = max(0.05 * (top - bottom), 0.05)
    return [bottom - pad, top + pad]


def loss_figure(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]],
    title: str,
    smoothing: float = 0.6,
    x_key: str = "step",
) -> go.Figure:
    """The losses of a training history as one panel per term group (:data:`LOSS_PANELS`), two panels a row.

    Args:
        history: One dict per logged step (``[{"step": 4, "epoch": 1, "total": 9.1, "id": 5.9, ...}, ...]``) or
            one list per key.
        title: Figure title.
        smoothing: EMA weight in ``[0, 1)``; when > 0 the raw values are drawn faintly behind the smoothed curve.
        x_key: Key holding the x value.

    Returns:
        The figure: per panel a logarithmic loss axis whose range holds all of the panel's curves
        (:func:`_log_range`), and its own legend above it, titled with the group (:func:`_label` names the curves;
        the full term name is in the hover text and ``legendgroup``).

    Raises:
        ValueError: The history holds no loss terms.
    """
    x, cols = _history_to_series(history, x_key)
    panels = panel_terms(list(cols))
    if not panels:
        raise ValueError("loss history holds no loss terms")
    rows = math.ceil(len(panels) / _COLUMNS)
    fig = make_subplots(
        rows=rows,
        cols=_COLUMNS,
        vertical_spacing=min(0.25, 75 / (PANEL_HEIGHT * rows - 20)),  # about 75 px: tick labels and a legend
        horizontal_spacing=0.09,
    )
    for index, (name, terms) in enumerate(panels):
        row, col = divmod(index, _COLUMNS)
        legend = "legend" if index == 0 else f"legend{index + 1}"
        drawn = []
        for i, term in enumerate(terms):
            color = _TOTAL_COLOR if term == "total" else _TERM_COLORS[i % len(_TERM_COLORS)]
            raw = cols[term]
            drawn.append(raw)
            curve = raw
            if smoothing > 0:
                fig.add_trace(
                    go.Scatter(x=x, y=raw, mode="lines", name=_label(term, raw), legendgroup=term, showlegend=False,
                               opacity=0.25, line={"color": color, "width": 1}, hoverinfo="skip"),
                    row=row + 1, col=col + 1,
                )  # fmt: skip
                curve = ema(raw, smoothing)
            fig.add_trace(
                go.Scatter(x=x, y=curve, mode="lines", name=_label(term, raw), legendgroup=term, legend=legend,
                           hovertemplate=f"{term}: %{{y:.4g}}<extra></extra>",
                           line={"color": color, "width": 2.4 if term == "total" else 1.8}),
                row=row + 1, col=col + 1,
            )  # fmt: skip
        span = _log_range(drawn)
        if span is None:  # nothing a log axis can draw: say so in the panel
            fig.add_annotation(text="0 throughout", showarrow=False, xref="x domain", yref="y domain", x=0.5, y=0.5,
                               row=row + 1, col=col + 1)  # fmt: skip
            span = [-1.0, 1.0]
        decades = {"dtick": 1} if span and span[1] - span[0] >= 2 else {}  # no 2 and 5 labels between decades
        fig.update_yaxes(type="log", range=span, exponentformat="power", row=row + 1, col=col + 1, **decades)
        domain_x = fig.get_subplot(row + 1, col + 1).xaxis.domain
        domain_y = fig.get_subplot(row + 1, col + 1).yaxis.domain
        fig.update_layout(
            {
                legend: {  # the panel's title: its group name, then its curves in a row
                    "title": {"text": f"<b>{name}</b>", "side": "left"},
                    "orientation": "h",
                    "x": domain_x[0],
                    "xanchor": "left",
                    "y": domain_y[1],
                    "yanchor": "bottom",
                    "itemwidth": 30,
                    "font": {"size": 11},
                }
            }
        )
    for index in range(max(0, len(panels) - _COLUMNS), len(panels)):  # the lowest panel of each column
        fig.update_xaxes(title_text=x_key, row=index // _COLUMNS + 1, col=index % _COLUMNS + 1)
    fig.update_yaxes(title_text="loss", col=1)
    suffix = f" (EMA smoothing {smoothing:g}; faint: raw)" if smoothing > 0 else ""
    return style_figure(fig, title + suffix, height=120 + PANEL_HEIGHT * rows, margin={"t": 90, "b": 50})


class LiveLossPlot:
    """The loss figure (:func:`loss_figure`) redrawn while :func:`idkl_lib.train.train` runs (pass it as ``on_log``).

    The figure lives in an ``ipywidgets.Output`` shown under the cell on the first drawing; every redraw replaces the
    Output's content with the current figure (the same as ``clear_output(wait=True)`` followed by a display, but
    without a kernel round trip, so it also works from a training callback and outside a kernel). JupyterLab's
    plotly renderer ignores in-place updates of an already displayed graph, an Output widget's content is rendered
    afresh. Redraws are throttled (at most one per ``min_interval`` seconds, and only every ``every`` logged rows),
    so a long run does not spend its time drawing. After training, :meth:`finish` empties the Output and returns the
    final figure, to be shown with ``fig.show()``: one loss figure per run in the notebook, which every viewer of the
    saved notebook and its HTML export sees (a widget's content needs a live kernel or the widget state).

    Args:
        title: Figure title.
        every: Redraw at most every this many logged rows.
        smoothing: EMA smoothing of the curves (:func:`idkl_lib.viz.loss_curves`).
        min_interval: Minimum seconds between two automatic redraws.
    """

    def __init__(
        self,
        title: str = "Training losses",
        every: int = 1,
        smoothing: float = 0.6,
        min_interval: float = 2.0,
    ) -> None:
        self.title, self.every, self.smoothing = title, max(1, int(every)), smoothing
        self.min_interval = float(min_interval)
        self.history: list[dict[str, float]] = []
        self.output: Any = None  # the ipywidgets.Output, created (and displayed) by the first redraw
        self._last = -math.inf

    def __call__(self, row: Mapping[str, float]) -> None:
        self.history.append(dict(row))
        if len(self.history) % self.every == 0 and time.monotonic() - self._last >= self.min_interval:
            self.redraw()

    def figure(self, history: Sequence[Mapping[str, float]] | None = None) -> go.Figure:
        """The loss figure of ``history`` (default: the rows logged so far)."""
        return loss_figure(self.history if history is None else history, self.title, smoothing=self.smoothing)

    def finish(self, history: Sequence[Mapping[str, float]] | None = None) -> go.Figure:
        """Empty the live Output and return the final figure of ``history`` (default: the rows logged here; pass
        the training result's history, which holds a resumed run's earlier rows too) to show in its place."""
        if self.output is not None:
            self.output.outputs = ()
        return self.figure(history)

    def redraw(self) -> None:
        """Draw the current curves into the Output widget (displayed under the cell on the first call)."""
        import ipywidgets
        from IPython.display import display

        if not self.history:
            return
        if self.output is None:
            self.output = ipywidgets.Output()
            display(self.output)
        bundle = _mime_bundle(self.figure())
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
        self._last = time.monotonic()


def _mime_bundle(fig: go.Figure) -> dict[str, Any]:
    """The figure's output for the default renderers, without re-running their activation.

    The live plot's Output widget holds raw bundles (JSON only, no numpy arrays), and ``fig._repr_mimebundle_()``
    re-activates the ``notebook`` renderer on every call, which embeds another copy of plotly.js (about 5 MB) in the
    notebook each time. The first figure shown with ``fig.show()`` loads plotly.js once. Without a notebook renderer
    (e.g. ``"browser"``) the bundle is the plotly mime type alone.
    """
    import plotly.io as pio

    fig_dict = fig.to_dict()
    bundle: dict[str, Any] = {}
    for name in (pio.renderers.default or NOTEBOOK_RENDERER).split("+"):
        renderer = pio.renderers[name]
        if hasattr(renderer, "to_mimebundle"):
            bundle.update(renderer.to_mimebundle(fig_dict))
    return bundle or pio.renderers["plotly_mimetype"].to_mimebundle(fig_dict)


def final_losses(history: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of every logged term over the last epoch of a training history (``{term: value}``)."""
    if not history:
        return {}
    last = max(row.get("epoch", 0.0) for row in history)
    rows = [row for row in history if row.get("epoch", 0.0) == last]
    keys = [key for key in rows[0] if key not in ("step", "epoch", "lr")]
    return {key: float(np.mean([row[key] for row in rows if key in row])) for key in keys}
