"""PNG export of a notebook's figures: one kaleido browser reused (``idkl_lib.viz.export.figure_to_png``) against
one browser per figure (plotly's ``fig.to_image`` without a running export server, the previous way).

The figures are those of a run's report (``--report reports/demo``: every ``<step>/figures/*.html`` read back into a
plotly figure) or, without one, ``--figures`` synthetic figures of the kinds the notebooks make (loss curves, CMC
curves, tables, heatmap grids, logit histograms, batch layouts, image grids, embedding scatters), cycled. Each figure
is exported by both ways, interleaved (A, B, A, B, ...), at the report's scale 2. Reported: failures of each way
(with the first line of each error), seconds per PNG (median, inter-quartile range, total) and the ratio of the
medians. The reused browser's start is in its first figure's time. ``--quick``: 4 synthetic figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from benchmarks._common import base_parser, setup, write_result
from idkl_lib.viz import export, plots
from idkl_lib.viz.embeddings import embedding_scatter

NAME = "bench_png_export"
_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"[^"]+",\s*')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--report", type=Path, default=None, help="a run folder whose figures are exported")
    parser.add_argument("--figures", type=int, default=40, help="synthetic figures (without --report)")
    return parser.parse_args(argv)


def report_figures(run_dir: Path) -> dict[str, go.Figure]:
    """Every figure of a run's report, read back from its HTML (``save_figure``'s plotly output)."""
    figures = {}
    decoder = json.JSONDecoder()
    for html in sorted(run_dir.glob("*/figures/*.html")):
        text = html.read_text()
        match = _NEW_PLOT.search(text)
        if match is None:
            continue
        data, end = decoder.raw_decode(text, match.end())
        layout, _ = decoder.raw_decode(text[end:].lstrip(" \n,"))
        figures[f"{html.parent.parent.name}/{html.stem}"] = go.Figure(data=data, layout=layout)
    if not figures:
        raise SystemExit(f"no figures found in {run_dir}/*/figures/*.html: pass a run folder of the pipeline")
    return figures


def synthetic_figures(count: int, seed: int) -> dict[str, go.Figure]:
    rng = np.random.default_rng(seed)
    images = (rng.random((3, 8, 64, 32, 3)) * 255).astype(np.uint8)
    points = rng.normal(size=(600, 2))
    kinds: dict[str, Callable[[], go.Figure]] = {
        "loss": lambda: plots.loss_curves({k: list(np.cumsum(rng.random(200))[::-1]) for k in ("id", "tri", "kl")}),
        "cmc": lambda: plots.cmc_curves({"idkl": np.linspace(0.5, 1, 20), "baseline": np.linspace(0.4, 1, 20)}),
        "table": lambda: plots.results_table(
            {f"model {i}": {"R1": rng.random(), "mAP": rng.random()} for i in range(6)}
        ),
        "heatmaps": lambda: plots.heatmap_grid({f"m{i}": rng.random((16, 16)) for i in range(4)}, "maps"),
        "logits": lambda: plots.logit_distributions({"a": rng.random((64, 10)), "b": rng.random((64, 10))}, "T"),
        "batch": lambda: plots.batch_layout_figure(np.repeat(np.arange(4), 4), np.tile([1, 0], 8), 4, 4),
        "images": lambda: plots.image_grid([list(row) for row in images], "images"),
        "umap": lambda: embedding_scatter(points, rng.integers(0, 20, 600), rng.integers(0, 2, 600)),
    }
    names = list(kinds)
    return {f"{names[i % len(names)]}_{i}": kinds[names[i % len(names)]]() for i in range(count)}


def _timed(fn: Callable[[], bytes]) -> tuple[float, str | None]:
    start = time.perf_counter()
    try:
        data = fn()
        error = None if data.startswith(b"\x89PNG") else "not a PNG"
    except Exception as exc:  # counted, not raised: failures are what is measured
        error = export._first_line(exc)
    return time.perf_counter() - start, error


def _stats(seconds: list[float]) -> dict[str, float]:
    q1, _, q3 = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else (seconds[0],) * 3
    return {"median_s": statistics.median(seconds), "iqr_s": q3 - q1, "total_s": sum(seconds), "n": len(seconds)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup(args, repeats=1, warmup=0)
    count = 4 if args.quick else args.figures
    figures = report_figures(args.report) if args.report else synthetic_figures(count, args.seed)
    timings: dict[str, list[float]] = {"one_browser_per_figure": [], "reused_browser": []}
    failures: dict[str, list[str]] = {"one_browser_per_figure": [], "reused_browser": []}
    ways: dict[str, Callable[[go.Figure], bytes]] = {
        "one_browser_per_figure": lambda fig: fig.to_image(format="png", scale=2.0),
        "reused_browser": lambda fig: export.figure_to_png(fig, scale=2.0),
    }
    for index, (name, fig) in enumerate(figures.items()):
        order = list(ways) if index % 2 == 0 else list(reversed(ways))  # interleaved, alternating who goes first
        for way in order:
            seconds, error = _timed(functools.partial(ways[way], fig))
            timings[way].append(seconds)
            if error:
                failures[way].append(f"{name}: {error}")
    export.close_png_export()
    stats = {way: _stats(timings[way]) for way in ways}
    speedup = stats["one_browser_per_figure"]["median_s"] / stats["reused_browser"]["median_s"]
    results: dict[str, object] = {way: {**stats[way], "failures": failures[way]} for way in ways}
    results["median_ratio_per_figure_over_reused"] = speedup
    summary = (
        f"{len(figures)} figures: reused browser {stats['reused_browser']['median_s']:.2f} s/PNG "
        f"({len(failures['reused_browser'])} failed), one browser per figure "
        f"{stats['one_browser_per_figure']['median_s']:.2f} s/PNG ({len(failures['one_browser_per_figure'])} "
        f"failed): {speedup:.1f}x"
    )
    settings = {"source": str(args.report) if args.report else "synthetic", "figures": len(figures), "scale": 2.0}
    write_result(args, NAME, "cpu", settings, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
