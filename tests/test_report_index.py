"""The report page leads with its result: the summary (parameters, IDKL vs baseline, key figures) from a hand-built
run folder, figures in the order they were saved, the full metrics table collapsed at the bottom."""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from idkl_lib.report import index as reports
from idkl_lib.report import summary as report_summary

IDKL = {
    "sysu/all-search/single-shot": {"R1": 69.4271, "R5": 95.4, "mAP": 65.1042, "mINP": 50.6407, "num_queries": 384},
    "sysu/indoor-search/single-shot": {"R1": 57.1615, "mAP": 66.1746, "mINP": 61.4591, "num_queries": 384},
}
BASELINE = {
    "sysu/all-search/single-shot": {"R1": 69.8177, "R5": 92.0, "mAP": 63.8587, "mINP": 48.2739, "num_queries": 384},
    "sysu/indoor-search/single-shot": {"R1": 58.2552, "mAP": 65.0448, "mINP": 60.3622, "num_queries": 384},
}
# IDKL - baseline by hand: 69.4271 - 69.8177 = -0.3906, 65.1042 - 63.8587 = 1.2455, 50.6407 - 48.2739 = 2.3668;
# 57.1615 - 58.2552 = -1.0937, 66.1746 - 65.0448 = 1.1298, 61.4591 - 60.3622 = 1.0969.
EXPECTED_ROWS = [
    ["sysu/all-search/single-shot (rank lists)", "384", "69.43", "69.82", "−0.39", "65.10", "63.86", "+1.25"]
    + ["50.64", "48.27", "+2.37"],
    ["sysu/indoor-search/single-shot", "384", "57.16", "58.26", "−1.09", "66.17", "65.04", "+1.13"]
    + ["61.46", "60.36", "+1.10"],
]
CONFIG = {"dataset": "sysu", "arch": "resnet18", "height": 128, "width": 64, "p": 8, "k": 4, "epochs": 20}
CONFIG |= {"lr": 0.01, "seed": 0, "loss_preset": "sysu", "pretrained": False, "device": "cpu"}


class _Tables(HTMLParser):
    """Cell texts of every ``<table>`` (with its class) and the ``<td>`` classes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[str, list[list[str]], list[list[str]]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append((dict(attrs).get("class") or "", [], []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
            self.tables[-1][2].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []
            self.tables[-1][2][-1].append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _summary_table(page: str) -> tuple[list[list[str]], list[list[str]]]:
    parser = _Tables()
    parser.feed(page)
    ((_, rows, classes),) = [t for t in parser.tables if t[0] == "summary"]
    return rows, classes


def _write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content), encoding="utf-8")


def _run(tmp_path: Path, evaluate: dict[str, Any], baseline_step: dict[str, Any] | None = None) -> Path:
    run = tmp_path / "run"
    order = ["01_data_exploration", "02_train", "02_train_baseline", "03_evaluate"]
    steps = {name: {"state": "done", "duration_s": 1.0} for name in order}
    _write(run / "status.json", {"state": "done", "preset": "demo", "order": order, "steps": steps})
    _write(run / "params.json", {"02_train": {"epochs": 20}})
    size = {"params_total": 2_400_000, "params_retrieval": 1_100_000, "gflops_retrieval": 0.11, "gflops_train": 0.52}
    train = {"train_config": CONFIG, "eval": {k: dict(v) for k, v in IDKL.items()}, "complexity": size}
    _write(run / "02_train" / "metrics.json", train)
    if baseline_step is not None:
        _write(run / "02_train_baseline" / "metrics.json", baseline_step)
    rank_view = {"name": "sysu/all-search/single-shot (trial 1)", "num_queries": 384, "rank1_queries": 258}
    _write(run / "03_evaluate" / "metrics.json", {"feature": "shared", "rank_view": rank_view, **evaluate})
    return run


def test_side_by_side_table_values_differences_and_parameters(tmp_path: Path) -> None:
    vs = {s: {m: IDKL[s][m] - BASELINE[s][m] for m in ("R1", "mAP", "mINP")} for s in IDKL}
    baseline = {"checkpoint": "/runs/x/02_train_baseline/checkpoint.pth", "protocols": BASELINE}
    evaluate = {"protocols": IDKL, "baseline": baseline, "vs_baseline": vs}
    page = reports.render_index(_run(tmp_path, evaluate, baseline_step={"eval": IDKL}))
    rows, classes = _summary_table(page)
    assert rows[2:] == EXPECTED_ROWS
    assert classes[2][4].endswith("neg") and classes[2][7].endswith("pos"), "differences are coloured by sign"
    assert [c for c in classes[2] if "diff" in c] == [classes[2][i] for i in (4, 7, 10)], "only differences coloured"
    assert "evaluated side by side in 03_evaluate" in page and "checkpoint 02_train_baseline/checkpoint.pth)" in page
    line = re.search(r"<p class='params'>(.*?)</p>", page).group(1)  # type: ignore[union-attr]
    for part in ("preset demo", "dataset sysu", "arch resnet18", "size 128×64", "P×K 8×4", "epochs 20", "lr 0.01"):
        assert part in line
    assert "seed 0" in line and "eval feature shared" in line
    assert "2.40 M parameters (1.10 M retrieval) · GFLOPs per image 0.11 retrieval, 0.52 training" in line
    # The summary comes before the steps; the full metrics table is collapsed at the bottom.
    assert page.index('id="summary"') < page.index("<h2>Steps</h2>") < page.index("<h2>Notebooks</h2>")
    details = page[page.index('<h2 id="metrics">') :]
    assert details.index("<details>") < details.index("protocols.sysu/all-search/single-shot.R1")
    assert "</details>" in details and '<code>rank_view.num_queries</code></td><td class="num">384</td>' in page


def test_differences_computed_when_vs_baseline_is_missing(tmp_path: Path) -> None:
    evaluate = {"protocols": IDKL, "baseline": {"protocols": BASELINE}}
    rows, _ = _summary_table(reports.render_index(_run(tmp_path, evaluate)))
    assert rows[2:] == EXPECTED_ROWS


def test_fallback_to_the_baseline_steps_own_evaluation(tmp_path: Path) -> None:
    # 03 has no baseline entry: both numbers come from the training steps' final evaluations (like for like),
    # not from 03's protocols (made different here to see which one is used).
    shifted = {s: {**row, "R1": row["R1"] - 10} for s, row in IDKL.items()}
    page = reports.render_index(_run(tmp_path, {"protocols": shifted}, baseline_step={"eval": BASELINE}))
    rows, _ = _summary_table(page)
    assert rows[2:] == EXPECTED_ROWS
    assert "02_train_baseline/metrics.json" in page and "no side-by-side baseline" in page
    result = report_summary.comparison(json.loads(json.dumps({"03_evaluate": {"protocols": IDKL}})))
    assert result.source == "idkl_only"


def test_idkl_alone_and_no_metrics(tmp_path: Path) -> None:
    page = reports.render_index(_run(tmp_path, {"protocols": IDKL}, baseline_step={"final_losses": {"id": 1.0}}))
    rows, _ = _summary_table(page)
    assert rows[1] == ["IDKL", "IDKL", "IDKL"] and rows[2][:5] == ["sysu/all-search/single-shot (rank lists)"] + [
        "384",
        "69.43",
        "65.10",
        "50.64",
    ]
    assert "IDKL alone (03_evaluate/metrics.json)" in page and "Δ" not in rows[0]
    empty = tmp_path / "empty"
    _write(empty / "status.json", {"state": "running", "order": ["01_data_exploration"], "steps": {}})
    page = reports.render_index(empty)
    assert "No protocol metrics in this run (yet)." in page and "class='summary'" not in page


def _figure(folder: Path, stem: str, mtime: int, png: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".html", ".png") if png else (".html",):
        path = folder / f"{stem}{suffix}"
        path.write_bytes(b"x")
        os.utime(path, ns=(mtime + (suffix == ".png"), mtime + (suffix == ".png")))


def test_thumbnails_in_saving_order_and_key_figures(tmp_path: Path) -> None:
    run = _run(tmp_path, {"protocols": IDKL})
    figures = run / "03_evaluate" / "figures"
    (figures / "plotly.min.js").parent.mkdir(parents=True)
    (figures / "plotly.min.js").write_text("js")
    for stem, t in (("results", 1_000), ("cmc", 3_000), ("rank_lists", 2_000)):
        _figure(figures, stem, t * 10**9)
    _figure(figures, "zz_only_interactive", 500 * 10**9, png=False)
    _figure(run / "02_train_baseline" / "figures", "loss_curves", 10**9)  # the baseline's curves are not key
    page = reports.render_index(run)
    section = page[page.index('id="step-03_evaluate"') :]
    shown = re.findall(r'<img src="03_evaluate/figures/(\w+)\.png"', section)
    assert shown == ["results", "rank_lists", "cmc"], "saving order, not alphabetical"
    assert '<a href="03_evaluate/figures/cmc.html">interactive</a>' in section
    assert "plotly.min.js" not in page and "figures/results.html</a></li>" not in section
    assert 'href="03_evaluate/figures/zz_only_interactive.html"' in section
    summary = page[page.index('id="summary"') : page.index("<h2>Steps</h2>")]
    keys = re.findall(r'<a href="([^"]+)"><img src="([^"]+)"', summary)
    assert keys == [
        ("03_evaluate/figures/cmc.html", "03_evaluate/figures/cmc.png"),
        ("03_evaluate/figures/rank_lists.html", "03_evaluate/figures/rank_lists.png"),
    ]


def test_presenting_section_links_every_deck_in_run_order(tmp_path: Path) -> None:
    run = _run(tmp_path, {"protocols": IDKL})
    assert 'id="presenting"' not in reports.render_index(run), "no deck, no presenting section"
    for name in ("01_data_exploration", "02_train", "03_evaluate"):
        (run / f"{name}.slides.html").write_text("<html></html>")
    page = reports.render_index(run)
    section = page[page.index('<h2 id="presenting">') : page.index("<h2>Notebooks</h2>")]
    decks = re.findall(r'href="([^"]+\.slides\.html)"', section)
    assert decks == ["01_data_exploration.slides.html", "02_train.slides.html", "03_evaluate.slides.html"]
    assert "open 02_train then 03_evaluate" in section
    for key in ("<kbd>f</kbd>", "<kbd>Esc</kbd>", "<kbd>s</kbd>", "<kbd>→</kbd>", "RISE"):
        assert key in section, key


def test_a_jupyterlab_run_folder_gets_the_same_summary_first_page(tmp_path: Path, capsys: Any) -> None:
    from idkl_lib.notebook.context import RunFolder

    vs = {s: {m: IDKL[s][m] - BASELINE[s][m] for m in ("R1", "mAP", "mINP")} for s in IDKL}
    run = _run(tmp_path, {"protocols": IDKL, "baseline": {"protocols": BASELINE}, "vs_baseline": vs})
    for name in ("status.json", "params.json"):  # notebooks run by hand write neither
        (run / name).unlink()
    _write(run / "01_data_exploration" / "metrics.json", {"dataset": "synthetic"})
    _write(run / "05_embeddings" / "metrics.json", {"num_points": 10})
    (run / "04_gradcam").mkdir()  # a step folder without metrics.json: the notebook did not finish
    _figure(run / "02_train" / "figures", "loss_curves", 10**9)
    interactive = RunFolder(run, run / "05_embeddings", interactive=True)
    assert RunFolder(run, run / "05_embeddings", interactive=False).write_report() is None  # the pipeline's own
    assert not (run / "index.html").exists()
    assert interactive.write_report() == run / "index.html"
    printed = f"report: {(run / 'index.html').resolve()} (open it in a browser; notebook 05 rewrites it when run again)"
    assert capsys.readouterr().out == printed + "\n"
    page = (run / "index.html").read_text(encoding="utf-8")
    rows, _ = _summary_table(page)
    assert rows[2:] == EXPECTED_ROWS  # the same summary as a pipeline run's
    assert '<span class="badge interactive">interactive</span>' in page and ".interactive{" in page
    steps = re.findall(r'<a href="#step-([^"]+)">', page)
    assert steps == ["01_data_exploration", "02_train", "03_evaluate", "05_embeddings"]
    assert page.count('<span class="badge done">done</span>') >= 4 and "02_train/figures/loss_curves.png" in page
    assert page.index('id="summary"') < page.index("<h2>Steps</h2>")
