"""Tables drawn as plotly figures that show every row and the full text of every cell.

A ``go.Table`` scrolls inside its figure when its rows need more height than the layout gives, and its columns share
the width equally, so long names wrap onto several lines and push rows out of sight. :func:`table_figure` gives each
column a width in proportion to its longest text (within :data:`MIN_CHARS` and :data:`MAX_CHARS`) and the figure the
height of every row's wrapped lines at
:data:`REFERENCE_WIDTH` (a narrow notebook and the PNG export's default width); a wider display only adds space. The
width follows the page (``autosize``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import plotly.graph_objects as go

from idkl_lib.viz.theme import style_figure

__all__ = ["CHAR_WIDTH", "LINE_HEIGHT", "MAX_CHARS", "MIN_CHARS", "REFERENCE_WIDTH", "table_figure", "text_lines"]

REFERENCE_WIDTH = 640
"""Table width in CSS pixels the row heights are computed for (narrower than any notebook output area in use)."""
CHAR_WIDTH = 7.5
"""Width of an average character of the table font (12 px) in CSS pixels, with a margin."""
LINE_HEIGHT = 19
"""Height of one line of cell text in CSS pixels."""
MIN_CHARS, MAX_CHARS = 6, 48
"""Bounds of a column's width weight (characters): short numbers stay on one line, a long label wraps rather than
squeezing the other columns."""
_CELL_PAD = 16  # horizontal padding of a cell
_TAG = re.compile(r"<[^>]+>")


def text_lines(text: str, width_px: float) -> int:
    """Lines a cell's text takes in a column ``width_px`` wide (HTML tags are not counted; ``<br>`` breaks)."""
    chars = max(1, int((width_px - _CELL_PAD) / CHAR_WIDTH))
    parts = re.split(r"<br\s*/?>", str(text))
    return sum(max(1, math.ceil(len(_TAG.sub("", p)) / chars)) for p in parts)


def table_figure(
    header: Sequence[str],
    columns: Sequence[Sequence[str]],
    title: str,
    align: Sequence[str] | None = None,
    cell_height: int = 26,
) -> go.Figure:
    """A ``go.Table`` figure sized to show every row: column widths from the texts, height from the wrapped lines.

    Args:
        header: Column titles (shown bold).
        columns: Cell texts per column (all of the same length); may hold plotly's HTML subset (``<b>``, ``<br>``).
        title: Figure title.
        align: Alignment per column; default left for the first column, centre for the others.
        cell_height: Minimum row height in pixels.
    """
    if len(header) != len(columns):
        raise ValueError(f"{len(header)} header cells for {len(columns)} columns")
    lengths = {len(c) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"table columns differ in length: {sorted(lengths)}")
    rows = lengths.pop() if lengths else 0
    longest = [
        max(len(_TAG.sub("", str(t))) for t in [h, *(p for c in col for p in re.split(r"<br\s*/?>", str(c)))])
        for h, col in zip(header, columns, strict=True)
    ]
    weights = [min(max(MIN_CHARS, n), MAX_CHARS) for n in longest]
    widths = [REFERENCE_WIDTH * w / sum(weights) for w in weights]
    head_h = max(cell_height, max(text_lines(h, w) for h, w in zip(header, widths, strict=True)) * LINE_HEIGHT + 8)
    body_h = sum(
        max(cell_height, max(text_lines(col[r], w) for col, w in zip(columns, widths, strict=True)) * LINE_HEIGHT + 8)
        for r in range(rows)
    )
    top, bottom = 60, 10
    table = go.Table(
        columnwidth=weights,
        header={"values": [f"<b>{h}</b>" for h in header], "fill_color": "#DDE6F0", "align": "center"},
        cells={
            "values": [list(c) for c in columns],
            "align": list(align) if align is not None else ["left", *["center"] * (len(columns) - 1)],
            "height": cell_height,
        },
    )
    # plotly draws a row at least ``cell_height`` high and wraps long text; the sum plus a little slack is the table.
    height = top + bottom + head_h + body_h + 12
    return style_figure(go.Figure(table), title, height=height, margin={"t": top, "b": bottom, "l": 10, "r": 10})
