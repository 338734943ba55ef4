"""Figures fit JupyterLab's output area (autosize, never wider than MAX_WIDTH, legends below, every rank of a rank
list shown) and tables show every row with full names, integer counts and only metrics highlighted."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from idkl_lib.data.records import Sample
from idkl_lib.viz import compare, plots
from idkl_lib.viz.dataset_plots import statistics_table
from idkl_lib.viz.embeddings import embedding_scatter, modality_gap_figure
from idkl_lib.viz.ranklist import ranklist_figure
from idkl_lib.viz.tables import CHAR_WIDTH, LINE_HEIGHT, MAX_CHARS, MIN_CHARS, REFERENCE_WIDTH, table_figure
from idkl_lib.viz.theme import MAX_WIDTH

from .test_viz_plots import _BUILDERS


def _images(folder: Path, specs: list[tuple[int, int, int]], prefix: str) -> list[Sample]:
    out = []
    for k, (pid, cam, mod) in enumerate(specs):
        path = folder / f"{prefix}{k}.png"
        Image.fromarray(np.full((16, 8, 3), 40 + 10 * k, dtype=np.uint8)).save(path)
        out.append(Sample(str(path), pid, cam, mod))
    return out


def _fits(fig) -> None:  # noqa: ANN001
    assert fig.layout.autosize is True
    assert fig.layout.width is None or fig.layout.width <= MAX_WIDTH, fig.layout.width


def test_every_figure_follows_the_page_and_stays_narrow(tmp_path: Path) -> None:
    for build in _BUILDERS.values():
        _fits(build())
    wide_heatmaps = plots.heatmap_grid({str(i): np.eye(3) for i in range(3)}, "T", ncols=3)  # 3 x 440 px wanted
    _fits(wide_heatmaps)
    rng = np.random.default_rng(0)
    umap = embedding_scatter(rng.normal(size=(10, 2)), np.arange(10) % 3, np.arange(10) % 2, title="UMAP")
    gap = {n: {"cross_same_id": 0.2, "cross_diff_id": 0.9, "silhouette_modality": 0.0, "silhouette_identity": 0.3}
           for n in ("enhanced shared (IDKL)", "specific (IDKL)")}  # fmt: skip
    for fig in (umap, modality_gap_figure(gap)):
        _fits(fig)
        legend = fig.layout.legend  # a horizontal row under the plot, inside the figure, never beside it
        assert legend.orientation == "h" and legend.yref == "container" and legend.yanchor == "bottom"
        assert legend.y < 0.1 and fig.layout.margin.b >= 100
    # a grid wider than the limit shrinks its tiles and keeps all of them
    tile = np.zeros((20, 10, 3), dtype=np.uint8)
    grid = plots.image_grid([[tile] * 12], "twelve", cell_size=(180, 110))
    _fits(grid)
    assert grid.layout.width <= MAX_WIDTH and sum(t.type == "image" for t in grid.data) == 12


@pytest.mark.parametrize("queries", [[0], [0, 1, 2, 3]])
def test_rank_lists_show_all_ranks_within_the_width(tmp_path: Path, queries: list[int]) -> None:
    query = _images(tmp_path, [(q, 3, 1) for q in range(4)], "q")
    gallery = _images(tmp_path, [(g % 5, 1, 0) for g in range(14)], "g")
    dist = np.random.default_rng(1).random((4, 14))
    fig = ranklist_figure(dist, query, gallery, queries, topk=10, image_size=(128, 64))
    _fits(fig)
    assert sum(t.type == "image" for t in fig.data) == len(queries) * 11
    captions = [a.text for a in fig.layout.annotations]
    for rank in range(1, 11):
        assert sum(f"rank {rank} ·" in c for c in captions) == len(queries), rank
    assert sum(c.startswith("query #") for c in captions) == len(queries)
    # the ten ranks wrap onto a second row of each query, labelled with the ranks it holds
    assert _row_labels(fig) == [x for q in queries for x in (f"query #{q}", "ranks 6–10")]
    compact = ranklist_figure(dist, query, gallery, queries, topk=3, image_size=(128, 64))
    assert sum(t.type == "image" for t in compact.data) == len(queries) * 4
    assert _row_labels(compact) == ([f"query #{q}" for q in queries] if len(queries) > 1 else [])


def _row_labels(fig) -> list[str]:  # noqa: ANN001
    """Row labels in row order; plotly draws an axis title only on an axis holding a trace, so each must have one."""
    axes = sorted((k for k in fig.layout if k.startswith("yaxis")), key=lambda k: int(k[5:] or 1))
    labelled = [k for k in axes if fig.layout[k].title.text]
    assert {f"y{k[5:]}" for k in labelled} <= {t.yaxis for t in fig.data}, "a labelled row without a trace"
    return [fig.layout[k].title.text for k in labelled]


def test_table_height_holds_every_wrapped_row() -> None:
    label = "x" * 200
    fig = table_figure(["method", "R1"], [[label, "short"], ["1.00", "2.00"]], "T")
    # by hand: weights 48 (200 characters, capped) and 6 (4, raised) -> the label column is 640 * 48 / 54 = 568.9 px
    # wide, (568.9 - 16) / 7.5 = 73 characters a line, so the 200-character label takes 3 lines (3 * 19 + 8 = 65 px);
    # the numbers fit their 71 px column; the other row and the header take one line (the 26 px minimum, 27 with
    # padding); title and margins 60 + 10, slack 12.
    assert REFERENCE_WIDTH == 640 and CHAR_WIDTH == 7.5 and LINE_HEIGHT == 19 and (MIN_CHARS, MAX_CHARS) == (6, 48)
    assert math.ceil(200 / int((640 * 48 / 54 - 16) / 7.5)) == 3 and int((640 * 6 / 54 - 16) / 7.5) >= 4
    assert fig.layout.height == 60 + 10 + 27 + 65 + 27 + 12
    assert list(fig.data[0].columnwidth) == [48, 6] and list(fig.data[0].cells.values[0]) == [label, "short"]
    many = table_figure(["a"], [[str(i) for i in range(40)]], "T")
    assert many.layout.height >= 60 + 10 + 41 * 26, "every row at least its minimum height"
    with pytest.raises(ValueError, match="differ in length"):
        table_figure(["a", "b"], [["1"], ["1", "2"]], "T")


def test_results_tables_show_full_names_integer_counts_and_highlight_metrics_only() -> None:
    rows = {
        "untrained · sysu/indoor-search/single-shot": {"R1": 2.03, "mAP": 6.12, "num_queries": 384.0},
        "sysu/indoor-search/single-shot": {"R1": 57.16, "mAP": 66.17, "num_queries": 384.0},
        "sysu/all-search/single-shot": {"R1": 69.43, "mAP": 65.10, "num_queries": 384.0},
    }
    fig = plots.results_table(rows)
    _fits(fig)
    cells = [list(c) for c in fig.data[0].cells.values]
    assert cells[0] == list(rows), "full names, every row"
    assert cells[1] == ["2.03", "57.16", "<b>69.43</b>"] and cells[2] == ["6.12", "<b>66.17</b>", "65.10"]
    assert cells[3] == ["384", "384", "384"], "counts as integers, never bold"
    widths = list(fig.data[0].columnwidth)
    assert widths[0] == len("untrained · sysu/indoor-search/single-shot") and widths[0] > 3 * max(widths[1:3])
    stats = {
        split: {"per_modality": {"visible": {"ids": 96, "images": 1200, "cameras": [1, 2]}}}
        for split in ("train", "query", "gallery")
    }
    table = statistics_table(stats, "T")
    assert [list(c) for c in table.data[0].cells.values][3] == ["1,200"] * 3
    summary = compare.paired_table(
        [{"config": "no TGSA", "metric": "R1", "pairs": 3, "mean_diff": -1.5, "ci95": 0.4, "t_p": 0.01,
          "wilcoxon_p": 0.25, "inside_noise": False}], "full")  # fmt: skip
    _fits(summary)
    assert re.search(r"outside seed noise", summary.data[0].cells.values[-1][0])
