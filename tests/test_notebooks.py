"""The numbered notebooks: a static check of their anatomy (fast, always runs) and one papermill run of the whole
sequence with the pipeline's ``ci`` preset (marked ``notebooks``; ``make test-unit`` leaves it out).

The executed run goes through :func:`idkl_lib.pipeline.run.run_pipeline`, once for all notebooks, so 03-05 read the
checkpoints that 02 wrote, exactly as in ``make demo``; every step's ``metrics.json`` keys and the report folder are
checked afterwards.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest

from idkl_lib.notebook.context import DATA_PARAMS, DEFAULT_RUN_DIR, DEFAULT_RUN_TAG, DataSettings
from idkl_lib.pipeline import DEFAULT_STEPS, PRESETS, PipelineError, PipelineResult, Step, run_pipeline
from idkl_lib.runs import MATHJAX_DIR, PLOTLY_JS_NAME, REVEAL_DIR

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
PARAMETER_LINE_WIDTH = 100
"""Widest line of a parameters cell: what JupyterLab's code cell shows in a usual window without scrolling."""
SHARED_DEFAULTS = ("device", "cpu_threads", "seed")
"""Parameters that mean the same thing in every notebook declaring them, so they share their default value."""
CONTEXT_STEPS = ("02_train", "03_evaluate", "04_gradcam", "05_embeddings")
"""Notebooks whose run folder and data default to the run set up in notebook 01 (:mod:`idkl_lib.notebook.context`)."""

EXPECTED_KEYS: dict[str, set[str]] = {
    "01_data_exploration": {"dataset", "parsed_as", "root", "statistics", "card", "image_size", "num_images"},
    "02_train": {
        "run_tag",
        "loss_preset",
        "loss_weights",
        "device",
        "epochs",
        "epochs_run",
        "steps",
        "images_per_second",
        "final_losses",
        "batch_losses",
        "mean_distance",
        "alignment_kl",
        "recipe",
        "recipe_changes",
        "train_config",
        "eval",
        "checkpoint",
        "history",
    },
    "03_evaluate": {
        "checkpoint",
        "checkpoint_epoch",
        "arch",
        "loss_preset",
        "feature",
        "flip",
        "cmc_mode",
        "protocols",
        "cmc",
        "untrained",
        "rank_view",
    },
    "04_gradcam": {"checkpoint", "baseline_checkpoint", "cam_method", "queries", "views"},
    "05_embeddings": {"checkpoint", "baseline_checkpoint", "num_points", "views"},
}
EXPECTED_KEYS["02_train_baseline"] = EXPECTED_KEYS["02_train"]
METRIC_NAMES = {"R1", "R5", "R10", "R20", "mAP", "mINP"}


def _ids(path: Path) -> str:
    return path.stem


def _code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _parameters_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    return next(cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", []))


def _declared(nb: nbformat.NotebookNode) -> dict[str, object]:
    """Names and literal values assigned in the parameters cell (via the Python parser, not papermill's)."""
    declared: dict[str, object] = {}
    for node in ast.parse(_parameters_cell(nb).source).body:
        assert isinstance(node, ast.Assign | ast.AnnAssign), f"not an assignment: {ast.unparse(node)}"
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        assert isinstance(target, ast.Name) and node.value is not None
        declared[target.id] = ast.literal_eval(node.value)  # raises on anything that is not a plain literal
    return declared


# ---------------------------------------------------------------------------------------------- static checks


def test_the_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_data_exploration",
        "02_train",
        "03_evaluate",
        "04_gradcam",
        "05_embeddings",
        "06_compare_runs",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_notebook_anatomy(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    tagged = [cell for cell in nb.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code", "exactly one code cell tagged 'parameters'"
    kernelspec = nb.metadata.get("kernelspec", {})
    assert kernelspec.get("name") == "python3" and kernelspec.get("language") == "python"
    assert nb.metadata.get("language_info", {}).get("name") == "python"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith(f"# {path.stem[:2]} ·")
    for cell in _code_cells(nb):
        assert cell.outputs == [] and cell.execution_count is None, "outputs are stripped before committing"
    source = "\n".join(cell.source for cell in _code_cells(nb))
    ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%")))
    assert not re.search(r"^\s*(def|class|async\s+def)\s", source, re.M), "helpers belong in idkl_lib, not here"
    assert "sys.path" not in source, "notebooks import the installed idkl_lib"
    assert "write_metrics" in _code_cells(nb)[-1].source, "the last cell writes metrics.json"
    assert "save_figure" in _code_cells(nb)[-1].source, "the last cell writes the figures"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_parameters_are_documented_literals(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    declared = _declared(nb)
    data = set() if path.stem == "06_compare_runs" else {"dataset", "data_root", "seed"}  # 06 reads run folders
    assert {"run_dir", "step_dir", *data} <= set(declared)
    lines = [line for line in _parameters_cell(nb).source.splitlines() if line.strip()]
    assignments = [line for line in lines if not line.lstrip().startswith("#")]  # the rest: wrapped comments
    assert all(re.search(r"\S\s+#\s+\S", line) for line in assignments), "every parameter has a trailing comment"
    assert not lines[0].lstrip().startswith("#") and len(assignments) == len(declared)
    too_long = [line for line in lines if len(line) > PARAMETER_LINE_WIDTH]
    assert not too_long, f"wrap these comments to {PARAMETER_LINE_WIDTH} columns (JupyterLab's cell): {too_long}"
    # papermill's own parser (--help-notebook, pipeline) must see every name: it skips lines with a second "="
    inspected = papermill.inspect_notebook(str(path))
    assert set(inspected) == set(declared)
    assert all(inspected[name]["help"] for name in inspected)


def test_shared_parameters_have_one_meaning() -> None:
    declared = {path.stem: _declared(nbformat.read(str(path), as_version=4)) for path in NOTEBOOKS}
    for name in SHARED_DEFAULTS:
        values = {stem: params[name] for stem, params in declared.items() if name in params}
        assert len(set(map(repr, values.values()))) == 1, f"{name} defaults differ: {values}"
    for stem in ("01_data_exploration", *CONTEXT_STEPS):
        assert declared[stem]["step_dir"] == "", f"{stem}: step_dir defaults to <run_dir>/<step>"
    # 01 sets the run folder and the data once (its defaults are the demo's), 02-05 default to that run context
    first = declared["01_data_exploration"]
    assert {name: first[name] for name in DATA_PARAMS} == DataSettings().as_dict()
    assert first["run_dir"] == str(DEFAULT_RUN_DIR)
    for stem in CONTEXT_STEPS:
        assert declared[stem]["run_dir"] == "", stem
        assert all(declared[stem][name] is None for name in DATA_PARAMS), stem
    assert declared["02_train"]["run_tag"] == DEFAULT_RUN_TAG
    assert declared["02_train"]["overwrite"] is False and declared["02_train"]["with_baseline"] is None
    assert all(declared[stem]["allow_other_dataset"] is False for stem in CONTEXT_STEPS[1:])
    everything = set().union(*declared.values())
    for preset, values in PRESETS.items():
        assert set(values) <= everything, f"preset {preset!r} sets names no notebook declares"
    for step in DEFAULT_STEPS:
        assert set(step.params) <= set(declared[step.notebook])


def test_rank_list_text_names_the_drawn_frame_colours() -> None:
    from idkl_lib.viz.theme import MATCH_COLOR, MISMATCH_COLOR

    names = {"#009E73": "bluish-green", "#D55E00": "orange"}  # Okabe-Ito bluish green and vermillion
    nb = nbformat.read(str(NOTEBOOKS_DIR / "03_evaluate.ipynb"), as_version=4)
    (text,) = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Rank lists")]
    assert f"{names[MATCH_COLOR]} frame" in text and f"{names[MISMATCH_COLOR]} one" in text
    assert not re.search(r"\b(green|red) (frame|one)\b", text.replace("bluish-green", ""))


def test_the_cmc_text_names_the_convention_computed() -> None:
    import inspect

    from idkl_lib.eval import evaluate_dataset

    computed = inspect.signature(evaluate_dataset).parameters["cmc_mode"].default  # what 03's call uses
    nb = nbformat.read(str(NOTEBOOKS_DIR / "03_evaluate.ipynb"), as_version=4)
    (text,) = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Results")]
    assert computed == "unique_ids" and f'`cmc_mode="{computed}"`' in text and "distinct identities" in text
    assert "evaluate_dataset(ds, query_feats, gallery_feats, num_trials" in "".join(c.source for c in _code_cells(nb))


# ---------------------------------------------------------------------------------------------- executed run


@contextlib.contextmanager
def captured_output(folder: Path) -> Iterator[None]:
    """Everything written to stdout and stderr, by Python and by child processes such as the kernels, goes to
    ``folder/stdout.txt`` and ``folder/stderr.txt``."""
    with open(folder / "stdout.txt", "w") as out, open(folder / "stderr.txt", "w") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
        finally:
            out.flush()
            err.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    """The whole pipeline with the ``ci`` preset, the synthetic dataset written into a temporary folder; what it
    prints is kept in ``stdout.txt`` / ``stderr.txt`` beside the run folder."""
    root = tmp_path_factory.mktemp("notebooks")
    with captured_output(root):
        return run_pipeline(
            root / "run",
            preset="ci",
            params={"data_root": str(root / "data")},
            notebooks_dir=NOTEBOOKS_DIR,
            verbose=True,
        )


@pytest.mark.notebooks
@pytest.mark.parametrize("step", [step.name for step in DEFAULT_STEPS])
def test_every_step_writes_its_metrics(ci_run: PipelineResult, step: str) -> None:
    metrics = json.loads((ci_run.run_dir / step / "metrics.json").read_text())
    assert EXPECTED_KEYS[step] <= set(metrics), f"missing: {EXPECTED_KEYS[step] - set(metrics)}"
    assert ci_run.metrics[step] == json.loads(json.dumps(metrics))
    figures = list((ci_run.run_dir / step / "figures").glob("*.png"))
    assert figures and all((f.with_suffix(".html")).is_file() for f in figures)
    executed = nbformat.read(str(ci_run.run_dir / f"{step}.ipynb"), as_version=4)
    errors = [out for cell in _code_cells(executed) for out in cell.outputs if out.output_type == "error"]
    assert not errors
    html = (ci_run.run_dir / f"{step}.html").read_text(encoding="utf-8")
    assert "Plotly.newPlot" in html, "figures are embedded in the HTML export"
    assert html.count(f'src="{PLOTLY_JS_NAME}"') == 1, "plotly.js is loaded once, from the run folder"
    assert "* plotly.js v" not in html, "the copy the notebook's first figure embeds is left out of the page"


@pytest.mark.notebooks
def test_step_contents(ci_run: PipelineResult) -> None:
    m = ci_run.metrics
    assert m["01_data_exploration"]["card"]["passed"] is True
    assert m["01_data_exploration"]["statistics"]["num_train_ids"] == PRESETS["ci"]["synthetic_ids"]
    assert m["02_train"]["loss_preset"] == "small_batch" and m["02_train_baseline"]["loss_preset"] == "baseline"
    assert set(m["02_train_baseline"]["loss_weights"]) == {"id", "id_sp", "tri_sh", "tri_sp"}
    assert (ci_run.run_dir / "02_train" / "checkpoint.pth").is_file()
    assert (ci_run.run_dir / "02_train_baseline" / "checkpoint.pth").is_file()
    assert m["02_train"]["epochs_run"] == PRESETS["ci"]["epochs"]
    # the resolved recipe: the synthetic dataset's (the CPU demo's) with the ci preset's sizes
    recipe, config = m["02_train"]["recipe"], m["02_train"]["train_config"]
    assert (recipe["height"], recipe["p"], recipe["lr"], recipe["arch"]) == (64, 2, 0.01, "resnet18")
    assert all(config[name] == value for name, value in recipe.items())
    assert set(m["02_train"]["recipe_changes"]) == {"height", "width", "p", "k", "epochs"}
    protocols = m["03_evaluate"]["protocols"]
    assert m["03_evaluate"]["cmc_mode"] == "unique_ids"
    assert set(protocols) == {
        f"sysu/{mode}-search/{shot}" for mode in ("all", "indoor") for shot in ("single-shot", "multi-shot")
    }
    assert all(METRIC_NAMES <= set(row) for row in protocols.values())
    assert m["03_evaluate"]["checkpoint"] == str(ci_run.run_dir / "02_train" / "checkpoint.pth")
    assert set(m["03_evaluate"]["untrained"]) == {f"untrained · {name}" for name in protocols}
    assert set(m["04_gradcam"]["views"]) == {"shared (w/o distillation)", "specific (IDKL)", "enhanced shared (IDKL)"}
    assert m["04_gradcam"]["baseline_checkpoint"] == str(ci_run.run_dir / "02_train_baseline" / "checkpoint.pth")
    assert set(m["05_embeddings"]["views"]) == {"shared", "specific", "enhanced"}
    assert all("silhouette_modality" in v and "cross_ratio" in v for v in m["05_embeddings"]["views"].values())


@pytest.mark.notebooks
def test_evaluation_compares_idkl_with_the_baseline(ci_run: PipelineResult) -> None:
    m = ci_run.metrics["03_evaluate"]
    protocols, baseline = m["protocols"], m["baseline"]
    assert baseline["checkpoint"] == str(ci_run.run_dir / "02_train_baseline" / "checkpoint.pth")
    assert list(baseline["protocols"]) == list(protocols) == list(m["vs_baseline"])
    for name, diff in m["vs_baseline"].items():
        assert set(diff) == {"R1", "mAP", "mINP"}
        assert all(diff[k] == pytest.approx(protocols[name][k] - baseline["protocols"][name][k]) for k in diff)
        assert baseline["protocols"][name]["num_queries"] == protocols[name]["num_queries"], "the same queries"
    assert (ci_run.run_dir / "03_evaluate" / "figures" / "vs_baseline.html").is_file()
    executed = nbformat.read(str(ci_run.run_dir / "03_evaluate.ipynb"), as_version=4)
    (cell,) = [c for c in _code_cells(executed) if "compare_checkpoints" in c.source]
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    assert "IDKL vs baseline: R1" in text and "This is one training seed" in text


@pytest.mark.notebooks
def test_evaluation_without_a_baseline_says_it_skips_the_comparison(ci_run: PipelineResult, tmp_path: Path) -> None:
    """A sweep cell trains only 02_train: its 03 evaluates IDKL alone and says once how to get the comparison."""
    run_dir = tmp_path / "cell"
    (run_dir / "02_train").mkdir(parents=True)
    (run_dir / "02_train" / "checkpoint.pth").symlink_to(ci_run.run_dir / "02_train" / "checkpoint.pth")
    declared = _declared(nbformat.read(str(NOTEBOOKS_DIR / "03_evaluate.ipynb"), as_version=4))
    params = {name: value for name, value in PRESETS["ci"].items() if name in declared}  # the ci run's 03
    result = run_pipeline(
        run_dir, preset=None, params={**params, "data_root": str(ci_run.run_dir.parent / "data")},
        steps=[Step("03_evaluate")], notebooks_dir=NOTEBOOKS_DIR, verbose=False,
    )  # fmt: skip
    m = result.metrics["03_evaluate"]
    assert EXPECTED_KEYS["03_evaluate"] <= set(m) and "baseline" not in m and "vs_baseline" not in m
    assert m["protocols"] == ci_run.metrics["03_evaluate"]["protocols"]
    executed = nbformat.read(str(run_dir / "03_evaluate.ipynb"), as_version=4)
    (cell,) = [c for c in _code_cells(executed) if "compare_checkpoints" in c.source]
    lines = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream").splitlines()
    assert len(lines) == 1 and "comparison is skipped" in lines[0] and "02_train_baseline" in lines[0]


@pytest.mark.notebooks
def test_training_shows_live_and_final_loss_curves(ci_run: PipelineResult) -> None:
    def raw_total(figure: dict) -> np.ndarray:  # the faint raw "total" curve (the EMA curve follows it)
        y = next(t for t in figure["data"] if t["name"] == "total")["y"]
        if isinstance(y, dict):  # plotly >= 6 stores arrays as base64 typed arrays
            return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
        return np.asarray(y)

    executed = nbformat.read(str(ci_run.run_dir / "02_train.ipynb"), as_version=4)
    (cell,) = [c for c in _code_cells(executed) if "LiveLossPlot" in c.source]
    history = json.loads((ci_run.run_dir / "02_train" / "history.json").read_text())
    totals = [row["total"] for row in history]
    # the live plot: one Output widget (the progress bars are widgets too), emptied when training ends
    views = [o.data for o in cell.outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    live = [v["application/vnd.jupyter.widget-view+json"]["model_id"] for v in views if v["text/plain"] == "Output()"]
    assert len(live) == 1, "the live plot is one Output widget"
    state = executed.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"][live[0]]["state"]
    assert state["outputs"] == [], "the live drawing gives way to the final figure"
    # the final curves: the one loss figure of the run, a panel per term group
    figures = [o.data["application/vnd.plotly.v1+json"] for o in cell.outputs if "data" in o and
               "application/vnd.plotly.v1+json" in o.data]  # fmt: skip
    assert len(figures) == 1 and figures[0]["layout"]["title"]["text"].startswith("Losses (idkl)")
    assert np.allclose(raw_total(figures[0]), totals), "the shown figure holds the logged totals"
    axes = {trace.get("yaxis", "y") for trace in figures[0]["data"]}
    assert len(axes) == 8, "total, identity, triplet, purifier, TGSA, CSA1, CSA2, modality"
    printed = "".join(o.get("text", "") for c in _code_cells(executed) for o in c.outputs if o.output_type == "stream")
    recipe = [line for line in printed.splitlines() if line.startswith("recipe ")]
    assert recipe == [recipe[0]] and recipe[0].startswith("recipe synthetic (sysu layout): 64x32, P 2 x K 2")
    assert "changed from the synthetic recipe" in recipe[0] and "(recipe sysu)" not in recipe[0]
    assert '"run_tag"' not in printed, "no JSON dump at the end"


@pytest.mark.notebooks
def test_report_folder(ci_run: PipelineResult) -> None:
    run = ci_run.run_dir
    assert ci_run.index_html == run / "index.html" and ci_run.index_html.is_file()
    index = ci_run.index_html.read_text(encoding="utf-8")
    environment = json.loads((run / "environment.json").read_text())
    assert environment["idkl_lib_version"] and "git_commit" in environment and environment["preset"] == "ci"
    params = json.loads((run / "params.json").read_text())
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done"
    for step in DEFAULT_STEPS:
        assert (run / f"{step.name}.ipynb").is_file() and (run / f"{step.name}.html").is_file()
        assert step.name in index and status["steps"][step.name]["state"] == "done"
        assert params[step.name]["step_dir"] == str(run / step.name)
        assert params[step.name]["dataset"] == "synthetic" and params[step.name]["seed"] == PRESETS["ci"]["seed"]
    assert params["02_train_baseline"]["run_tag"] == "baseline"
    assert json.loads((run / "metrics.json").read_text()).keys() == {s.name for s in DEFAULT_STEPS}
    assert (run / MATHJAX_DIR / "MathJax.js").is_file()  # the pages' equations render offline
    for step in DEFAULT_STEPS:
        assert f'src="{MATHJAX_DIR}/MathJax.js?config=' in (run / f"{step.name}.html").read_text(encoding="utf-8")


class _Sections(HTMLParser):
    """Counts ``<section>`` elements by nesting depth: reveal.js slides (1) and their vertical subslides (2)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth, self.counts = 0, {1: 0, 2: 0}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.depth += 1
            self.counts[self.depth] = self.counts.get(self.depth, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self.depth -= 1


def _expected_slides(nb: nbformat.NotebookNode) -> tuple[int, int]:
    """(slides, slides + subslides) by the cells' slide types; the first shown cell always opens a slide."""
    types = [cell.metadata.get("slideshow", {}).get("slide_type", "-") for cell in nb.cells]
    first = next(i for i, kind in enumerate(types) if kind not in ("skip", "notes"))
    rest = types[first + 1 :]
    return 1 + rest.count("slide"), 1 + rest.count("slide") + rest.count("subslide")


@pytest.mark.notebooks
@pytest.mark.parametrize("step", DEFAULT_STEPS, ids=[step.name for step in DEFAULT_STEPS])
def test_slide_decks(ci_run: PipelineResult, step: Step) -> None:
    source = nbformat.read(str(NOTEBOOKS_DIR / f"{step.notebook}.ipynb"), as_version=4)
    deck_path = ci_run.run_dir / f"{step.name}.slides.html"
    assert next(s for s in ci_run.steps if s.name == step.name).slides == deck_path
    deck = deck_path.read_text(encoding="utf-8")
    parser = _Sections()
    parser.feed(deck)
    assert parser.depth == 0
    assert (parser.counts[1], parser.counts[2]) == _expected_slides(source)
    assert parser.counts[1] >= 5  # every notebook is a real deck
    assert "Reveal.initialize" in deck and "Plotly.newPlot" in deck  # a presentation, with the figures
    assert (
        f'src="{REVEAL_DIR}/dist/reveal.js"' in deck and (ci_run.run_dir / REVEAL_DIR / "dist" / "reveal.js").is_file()
    )
    assert deck.count('<aside class="notes">') == sum(
        cell.metadata.get("slideshow", {}).get("slide_type") == "notes" for cell in source.cells
    )
    code = [cell.source for cell in _code_cells(source) if "wb." in cell.source]
    assert code and not any(snippet.splitlines()[0] in deck for snippet in code)  # code hidden
    assert f'href="{step.name}.slides.html"' in ci_run.index_html.read_text(encoding="utf-8")


@pytest.mark.notebooks
def test_the_run_prints_one_line_per_step_and_no_kernel_noise(ci_run: PipelineResult) -> None:
    out = (ci_run.run_dir.parent / "stdout.txt").read_text()
    err = (ci_run.run_dir.parent / "stderr.txt").read_text()
    lines = out.splitlines()
    steps = [step.name for step in DEFAULT_STEPS]
    pattern = r"\[(\d+)/(\d+)\] (\S+) \.\.\. done in \d+\.\d s"
    matched = [re.fullmatch(pattern, line) for line in lines[:-1]]
    assert all(matched), lines
    assert [(int(m[1]), int(m[2]), m[3]) for m in matched if m] == [
        (i, len(steps), name) for i, name in enumerate(steps, start=1)
    ]
    assert lines[-1] == f"Report: {ci_run.index_html}"
    assert "without encryption" not in err and "IPKernelApp" not in err, err
    assert not err.strip(), err


@pytest.mark.notebooks
def test_a_failing_notebook_stops_the_pipeline_and_names_the_cell(tmp_path: Path) -> None:
    steps = (Step("01_data_exploration"), Step("02_train"))
    with pytest.raises(PipelineError) as info:
        run_pipeline(
            tmp_path / "run",
            preset=None,
            params={"dataset": "sysu", "data_root": str(tmp_path / "no-such-dataset")},
            steps=steps,
            notebooks_dir=NOTEBOOKS_DIR,
            verbose=False,
        )
    err = info.value
    assert err.step == "01_data_exploration" and err.ename == "FileNotFoundError"
    assert "no-such-dataset" in err.evalue and err.exec_count is not None
    assert err.executed_notebook is not None and err.executed_notebook.is_file()
    partial = nbformat.read(str(err.executed_notebook), as_version=4)
    assert any(out.output_type == "error" for out in partial.cells[err.cell_index].outputs)
    status = json.loads((tmp_path / "run" / "status.json").read_text())
    assert status["state"] == "failed" and status["steps"].get("02_train") is None
