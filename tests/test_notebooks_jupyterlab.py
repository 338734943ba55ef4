"""Notebooks 01 -> 05 run in order the way a JupyterLab user runs them, then 06: from a copy of ``notebooks/`` (so
``../reports/dev`` and ``../data`` land in a temporary folder), each with its own defaults except a few size
parameters; the run context set in 01 carries the run folder and the data to 02-05, 02 trains the baseline that 04 and
05 compare with, and a rerun of 02 with other parameters into the same step folder is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from idkl_lib.checkpoint import load_trained_model
from idkl_lib.notebook.context import DataMismatchError, DataSettings, checkpoint_data
from idkl_lib.pipeline.execute import _kernel_manager_class

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
SIZES: dict[str, dict[str, object]] = {  # only sizes: everything else is each notebook's default
    "01_data_exploration": {"synthetic_ids": 8, "max_size_images": 50, "num_identities": 1},
    "02_train": {"height": 64, "width": 32, "p": 2, "k": 2, "epochs": 1, "log_every": 1},
    "03_evaluate": {"num_trials": 2},
    "04_gradcam": {"num_queries": 1},
    "05_embeddings": {"max_points": 100, "umap_neighbors": 5},
}


def _execute(lab: Path, stem: str, **params: object) -> Path:
    """Run ``lab/notebooks/<stem>.ipynb`` in its own folder, as JupyterLab does; the executed copy goes to
    ``lab/executed/``."""
    executed = lab / "executed" / f"{stem}.ipynb"
    executed.parent.mkdir(exist_ok=True)
    papermill.execute_notebook(
        str(lab / "notebooks" / f"{stem}.ipynb"),
        str(executed),
        parameters=params,
        kernel_name="python3",
        cwd=str(lab / "notebooks"),
        progress_bar=False,
        kernel_manager_class=_kernel_manager_class(),  # the pipeline's: no "running over TCP without encryption"
    )
    return executed


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS_DIR, root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for stem, sizes in SIZES.items():
        _execute(root, stem, **sizes)
    return root


def _metrics(lab: Path, step: str) -> dict:
    return json.loads((lab / "reports" / "dev" / step / "metrics.json").read_text())


@pytest.mark.slow  # five kernels and two small trainings: about 4 min on an idle 2-core CPU
@pytest.mark.notebooks
def test_01_to_05_in_order_with_their_defaults(lab: Path) -> None:
    dev = lab / "reports" / "dev"
    assert json.loads((lab / "reports" / "current_run.json").read_text())["run_dir"] == str(dev.resolve())
    context = json.loads((dev / "context.json").read_text())
    data = {**DataSettings().as_dict(), "synthetic_ids": 8}  # 01's defaults with its size parameter
    assert {name: context[name] for name in data} == data and context["written_by"] == "02_train"
    assert (lab / "data" / "synthetic-sysu-8ids-2img" / ".synthetic.json").is_file()

    assert _metrics(lab, "01_data_exploration")["statistics"]["num_train_ids"] == 8
    trained = _metrics(lab, "02_train")
    assert trained["data"] == data and trained["epochs_run"] == 1 and trained["loss_preset"] == "small_batch"
    checkpoint = dev / "02_train" / "checkpoint.pth"
    assert Path(trained["checkpoint"]).resolve() == checkpoint.resolve()
    # 02 trained the baseline too (the synthetic demo in JupyterLab), same recipe, ID + triplet losses only
    baseline = dev / "02_train_baseline" / "checkpoint.pth"
    assert Path(trained["baseline"]["checkpoint"]).resolve() == baseline.resolve()
    _, idkl_cfg, _ = load_trained_model(checkpoint)
    _, baseline_cfg, _ = load_trained_model(baseline)
    assert baseline_cfg.loss_preset == "baseline" and set(baseline_cfg.loss_weights().active()) == {
        "id",
        "id_sp",
        "tri_sh",
        "tri_sp",
    }
    same = {"height", "width", "p", "k", "epochs", "lr", "seed", "arch", "data_root", "dataset"}
    assert {n: getattr(baseline_cfg, n) for n in same} == {n: getattr(idkl_cfg, n) for n in same}

    # 03-05 used 02's checkpoint (and 04/05 its baseline) and the data it was trained on
    for step in ("03_evaluate", "04_gradcam", "05_embeddings"):
        metrics = _metrics(lab, step)
        assert Path(metrics["checkpoint"]).resolve() == checkpoint.resolve(), step
        used = DataSettings(**metrics["data"])  # the checkpoint's data: its folder resolved from the checkpoint
        assert used.identity() == DataSettings(**data).identity(), step
        assert Path(used.data_root).resolve() == (lab / "data").resolve(), step
    assert all(name.startswith("sysu/") for name in _metrics(lab, "03_evaluate")["protocols"])
    for step in ("04_gradcam", "05_embeddings"):
        assert Path(_metrics(lab, step)["baseline_checkpoint"]).resolve() == baseline.resolve()
        assert len(_metrics(lab, step)["views"]) == 3
    for stem in SIZES:
        executed = nbformat.read(str(lab / "executed" / f"{stem}.ipynb"), as_version=4)
        text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
        assert "run folder ../reports/dev" in text or f"run folder {dev.resolve()}" in text, stem
    # 05 wrote the run's report, summary first, as the pipeline does
    page = (dev / "index.html").read_text(encoding="utf-8")
    assert page.index('id="summary"') < page.index("<h2>Steps</h2>") and "badge interactive" in page
    assert all(f'href="#step-{step}"' in page for step in (*SIZES, "02_train_baseline"))
    assert "IDKL and the baseline evaluated side by side in 03_evaluate" in page


@pytest.mark.slow
@pytest.mark.notebooks
def test_rerunning_02_with_other_parameters_is_refused_before_training(lab: Path) -> None:
    checkpoint = lab / "reports" / "dev" / "02_train" / "checkpoint.pth"
    before = checkpoint.stat().st_mtime_ns
    with pytest.raises(PapermillExecutionError) as info:
        _execute(lab, "02_train", **{**SIZES["02_train"], "k": 4})  # another batch layout: another run
    assert info.value.ename == "RunFolderError"
    message = info.value.evalue
    assert "02_train already holds the checkpoint of another run" in message
    assert "another run_tag" in message and "overwrite=True" in message
    assert checkpoint.stat().st_mtime_ns == before, "nothing was overwritten"
    executed = nbformat.read(str(lab / "executed" / "02_train.ipynb"), as_version=4)
    failed = [c.source for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert len(failed) == 1 and "wb.check_train_folder(" in failed[0], "refused in the parameters cell, before training"
    (error,) = [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    shown = "\n".join(error.traceback)  # what JupyterLab shows: the message, not a traceback through the library
    assert 1 <= len(error.traceback) <= 5 and "Traceback" not in shown and "File " not in shown, shown
    assert shown.startswith("\x1b[0;31mRunFolderError\x1b[0m: ") and "overwrite=True" in shown


@pytest.mark.slow
@pytest.mark.notebooks
def test_evaluating_on_other_data_names_both(lab: Path) -> None:
    checkpoint = lab / "reports" / "dev" / "02_train" / "checkpoint.pth"
    _, cfg, _ = load_trained_model(checkpoint)
    with pytest.raises(DataMismatchError, match=r"trained on synthetic sysu layout \(8 ids.*asks for synthetic sysu "):
        checkpoint_data(cfg, checkpoint, synthetic_ids=192)  # 03-05 with the demo's size: not what 02 trained on


@pytest.mark.slow
@pytest.mark.notebooks
def test_06_after_05_compares_the_run_with_its_baseline_or_says_what_is_missing(lab: Path) -> None:
    _execute(lab, "06_compare_runs")  # its defaults: the run of 01-05
    executed = nbformat.read(str(lab / "executed" / "06_compare_runs.ipynb"), as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "Comparing IDKL with its baseline in the run folder" in text and "side by side by notebook 03" in text
    metrics = _metrics(lab, "06_compare_runs")
    assert metrics["num_runs"] == 2 and metrics["baseline"] == "baseline"
    assert [c["config"] for c in metrics["configs"]] == ["IDKL (small_batch)", "baseline"]
    r1 = next(row for row in metrics["paired"] if row["metric"] == "R1")
    evaluated = _metrics(lab, "03_evaluate")
    assert r1["mean_diff"] == pytest.approx(evaluated["vs_baseline"][metrics["protocol"]]["R1"])
    figures = lab / "reports" / "dev" / "06_compare_runs" / "figures"
    assert {"summary", "paired", "cmc", "loss_curves", "loss_terms"} <= {p.stem for p in figures.glob("*.html")}

    empty = lab / "reports" / "empty"
    empty.mkdir()
    _execute(lab, "06_compare_runs", run_dir=str(empty))  # a folder with nothing to compare: a message, no error
    executed = nbformat.read(str(lab / "executed" / "06_compare_runs.ipynb"), as_version=4)
    assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert f"Nothing to compare in {empty}" in text and "python -m idkl_lib.experiments.sweep" in text
    assert json.loads((empty / "06_compare_runs" / "metrics.json").read_text())["num_runs"] == 0
