"""The one look of every figure in :mod:`idkl_lib.viz`: template, palettes, modality colours, the title style.

* one template (``plotly_white``), a title on every figure, labelled axes, a legend whenever there are several series;
* colour-blind-safe colours (Okabe-Ito for categories, Viridis/Cividis for continuous values);
* the same modality colours everywhere: :data:`MODALITY_COLORS` (visible = blue, infrared = orange) and marker
  symbols :data:`MODALITY_SYMBOLS`;
* images are embedded as compact PNG data URIs (:func:`idkl_lib.viz.images.png_data_uri`);
* figures fit JupyterLab's output area: they follow the page's width (``autosize``) and no figure is laid out wider
  than :data:`MAX_WIDTH`; image grids, whose tiles need a fixed size, shrink or wrap to fit it; legends of wide
  figures sit below the plot (:data:`LEGEND_BELOW`), never beside it where a narrow page cuts them off.
"""

from __future__ import annotations

import plotly.graph_objects as go

from idkl_lib.data.records import INFRARED, MODALITY_NAMES, VISIBLE

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
TERM_SYMBOLS: dict[str, str] = {  # fmt: skip
    "id": "L_id",
    "id_sp": "L_id_sp",
    "tri_sh": "L_tri(f_sh)",
    "tri_sp": "L_tri(f_sp)",
    "ip_entropy": "L_F",
    "ip_centroid": "L_mIN",
    "tgsa_inter": "L_TGSA",
    "tgsa_intra": "L_TGSA",
    "tgsa_intra_cross": "L_TGSA",
    "csa1_inter": "L_CSA1",
    "csa1_intra": "L_CSA1",
    "csa2_inter": "L_CSA2",
    "csa2_intra": "L_CSA2",
    "disc": "L_unad",
    "confuser": "L_pse",
}
"""The method text's symbol of every loss term (docs/method.md, section 3.8), used in figure labels."""
MAX_WIDTH = 900
"""Widest layout width (CSS pixels) of any figure: JupyterLab's output area in a usual window is about that wide."""
LEGEND_BELOW: dict[str, object] = {
    "orientation": "h",
    "x": 0.5,
    "xanchor": "center",
    "yref": "container",
    "y": 0.01,
    "yanchor": "bottom",
}
"""Legend placement of multi-panel figures: a horizontal row centred at the bottom of the figure, under the axis
titles (give the figure a bottom margin of about 110 px for it)."""

__all__ = [
    "CONTINUOUS_SCALE",
    "DASHES",
    "DEFAULT_COLUMNS",
    "LEGEND_BELOW",
    "MATCH_COLOR",
    "MAX_WIDTH",
    "MISMATCH_COLOR",
    "MODALITY_COLORS",
    "MODALITY_SYMBOLS",
    "NOTEBOOK_RENDERER",
    "OKABE_ITO",
    "TEMPLATE",
    "TERM_SYMBOLS",
    "modality_name",
    "series_color",
    "style_figure",
]


def modality_name(modality: int) -> str:
    """``0 -> "visible"``, ``1 -> "infrared"``."""
    return MODALITY_NAMES.get(int(modality), f"modality {int(modality)}")


def series_color(i: int) -> str:
    """The ``i``-th colour of :data:`OKABE_ITO`, cycled."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def style_figure(fig: go.Figure, title: str, **kw: object) -> go.Figure:
    """Apply the shared look (template, centred title, extra ``layout`` keywords) in place; returns ``fig``.

    The figure follows the page's width (``autosize``); a ``width`` keyword above :data:`MAX_WIDTH` is lowered to it.
    """
    width = kw.pop("width", None)
    if width is not None:
        kw["width"] = min(int(width), MAX_WIDTH)  # type: ignore[call-overload]
    fig.update_layout(title={"text": title, "x": 0.5, "xanchor": "center"}, template=TEMPLATE, autosize=True, **kw)
    return fig


NOTEBOOK_RENDERER = "plotly_mimetype+notebook"
"""Plotly renderers of the notebooks (see :func:`idkl_lib.workbench.setup_notebook`)."""
