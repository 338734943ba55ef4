"""The IDKL-vs-baseline table of notebook 03: one small table per protocol setting, rows IDKL, baseline and their
difference (IDKL - baseline), the difference signed and coloured (bluish green: IDKL higher, vermillion: baseline
higher), query counts as integers. The numbers come from :func:`idkl_lib.eval.comparison.comparison_rows`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.eval.comparison import COMPARED_METRICS, comparison_rows, signed
from idkl_lib.viz.theme import style_figure

__all__ = ["AHEAD_FILL", "BEHIND_FILL", "baseline_table"]

AHEAD_FILL = "#CFEDE4"  # a light Okabe-Ito bluish green: IDKL higher
BEHIND_FILL = "#F7D9C4"  # a light Okabe-Ito vermillion: the baseline higher
_ROW_HEIGHT, _HEADER_HEIGHT = 26, 28


def baseline_table(
    idkl: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    title: str = "IDKL vs baseline",
    metrics: Sequence[str] = COMPARED_METRICS,
    decimals: int = 2,
) -> go.Figure:
    """One table per protocol setting: IDKL, baseline and IDKL - baseline for each metric (percent), plus the
    number of queries (``num_queries``, an integer) when both sides give it.

    Args:
        idkl, baseline: ``{setting: {metric: value, "num_queries": n}}`` (notebook 03's ``protocols`` layout).
    """
    rows = comparison_rows(idkl, baseline, metrics)
    settings = list(idkl)
    counts = all("num_queries" in idkl[s] and "num_queries" in baseline[s] for s in settings)
    fig = make_subplots(
        rows=len(settings), cols=1, specs=[[{"type": "table"}]] * len(settings), subplot_titles=settings,
        vertical_spacing=0.3 / max(len(settings), 1),
    )  # fmt: skip
    header = ["", *metrics, *(["queries"] if counts else [])]
    for i, setting in enumerate(settings, start=1):
        by_metric = {r["metric"]: r for r in rows if r["setting"] == setting}
        columns = [["IDKL", "baseline", "<b>IDKL \u2212 baseline</b>"]]
        fills = [["white"] * 3]
        for metric in metrics:
            r = by_metric[metric]
            diff = round(r["difference"], decimals)
            columns.append([f"{r['idkl']:.{decimals}f}", f"{r['baseline']:.{decimals}f}",
                            f"<b>{signed(r['difference'], decimals)}</b>"])  # fmt: skip
            fills.append(["white", "white", AHEAD_FILL if diff > 0 else BEHIND_FILL if diff < 0 else "white"])
        if counts:
            columns.append([f"{int(idkl[setting]['num_queries']):d}", f"{int(baseline[setting]['num_queries']):d}", ""])
            fills.append(["white"] * 3)
        fig.add_trace(
            go.Table(
                columnwidth=[2.2, *[1] * (len(header) - 1)],
                header={
                    "values": [f"<b>{h}</b>" for h in header],
                    "fill_color": "#DDE6F0",
                    "align": "center",
                    "height": _HEADER_HEIGHT,
                },  # fmt: skip
                cells={
                    "values": columns,
                    "fill_color": fills,
                    "align": ["left", *["center"] * (len(header) - 1)],
                    "height": _ROW_HEIGHT,
                },  # fmt: skip
            ),
            row=i,
            col=1,
        )
    height = 90 + len(settings) * (_HEADER_HEIGHT + 3 * _ROW_HEIGHT + 60)
    return style_figure(fig, title, height=height, margin={"t": 70, "b": 10, "l": 10, "r": 10})
