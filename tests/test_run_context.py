"""The notebooks' run context (:mod:`idkl_lib.notebook.context`) and notebook 02's step-folder check and baseline switch
(:mod:`idkl_lib.notebook.baseline`): fast checks without a kernel (the JupyterLab-order run of the notebooks is in
``tests/test_notebooks_jupyterlab.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idkl_lib.config import TrainConfig
from idkl_lib.data.card import synthetic_root
from idkl_lib.notebook.baseline import baseline_config, check_train_folder, wants_baseline
from idkl_lib.notebook.context import (
    CURRENT_RUN,
    DEFAULT_RUN_DIR,
    DataMismatchError,
    DataSettings,
    RunFolder,
    checkpoint_data,
    open_run,
    train_step_name,
)
from idkl_lib.pipeline import DEFAULT_STEPS
from idkl_lib.pipeline.steps import _resolve_params
from idkl_lib.runs import CONTEXT_NAME
from idkl_lib.runs.guard import RunFolderError, claim_run_folder
from idkl_lib.viz.gradcam_study import FEATURE_VIEWS, feature_views

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def _fake_synthetic(parent: Path, layout: str = "sysu", ids: int = 8, images: int = 2) -> Path:
    """A folder named and marked as notebook 01 writes a synthetic dataset (only the marker: nothing parses it)."""
    root = synthetic_root(parent, layout, ids, images)
    root.mkdir(parents=True)
    marker = {
        "generator": "idkl_lib.data.synthetic",
        "layout": layout,
        "num_train_ids": ids,
        "images_per_camera": images,
    }
    (root / ".synthetic.json").write_text(json.dumps({**marker, "complete": True}))
    return root


def _cfg(data_root: Path | str, dataset: str = "sysu", **values: object) -> TrainConfig:
    return TrainConfig(dataset=dataset, data_root=str(data_root), **values)  # type: ignore[arg-type]


def test_the_data_of_a_training_config(tmp_path: Path) -> None:
    root = _fake_synthetic(tmp_path / "data", "regdb", ids=8)
    marked = DataSettings.from_train_config(_cfg(root, "regdb", regdb_trial=3))
    assert marked == DataSettings("synthetic", str(tmp_path / "data"), "regdb", 8, 2, 0.0, 3)
    gone = synthetic_root(tmp_path / "elsewhere", "llcm", 16, 3, 0.5)  # deleted since: recognised by its name
    assert DataSettings.from_train_config(_cfg(gone, "llcm")) == DataSettings(
        "synthetic", str(tmp_path / "elsewhere"), "llcm", 16, 3, 0.5
    )
    real = DataSettings.from_train_config(_cfg("/data/SYSU-MM01"))
    assert real == DataSettings("sysu", "/data/SYSU-MM01") and real.identity() == ("sysu", None)
    assert "regdb layout trial 3 (8 ids" in marked.describe()


def test_evaluating_a_checkpoint_on_other_data_is_an_error_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _cfg(_fake_synthetic(tmp_path / "data", "sysu", ids=8), "sysu")
    trained = checkpoint_data(cfg, "ckpt.pth")  # every data parameter None: what it was trained on
    assert (trained.dataset, trained.synthetic_ids, trained.data_root) == ("synthetic", 8, str(tmp_path / "data"))
    assert "what ckpt.pth was trained on" in capsys.readouterr().out
    # the same data named explicitly, or found in another folder: fine
    assert checkpoint_data(cfg, "ckpt.pth", dataset="synthetic", synthetic_ids=8).identity() == trained.identity()
    moved = checkpoint_data(cfg, "ckpt.pth", data_root=str(tmp_path / "copy"))
    assert moved.data_root == str(tmp_path / "copy") and moved.identity() == trained.identity()
    for other in ({"synthetic_ids": 12}, {"synthetic_layout": "regdb"}, {"dataset": "sysu", "data_root": "/d"}):
        with pytest.raises(DataMismatchError) as info:
            checkpoint_data(cfg, "ckpt.pth", **other)
        text = str(info.value)
        assert "ckpt.pth was trained on synthetic sysu layout (8 ids" in text and "allow_other_dataset=True" in text
        assert DataSettings(**{**trained.as_dict(), **other}).describe() in text
    allowed = checkpoint_data(cfg, "ckpt.pth", allow_other_dataset=True, synthetic_ids=12)
    assert allowed.synthetic_ids == 12 and "allow_other_dataset" in capsys.readouterr().out
    regdb = _cfg("/data/RegDB", "regdb", regdb_trial=2)  # another split's test identities were trained on
    with pytest.raises(DataMismatchError, match="regdb trial 2 at /data/RegDB.*regdb trial 5"):
        checkpoint_data(regdb, "r.pth", regdb_trial=5)


def test_the_run_folder_is_set_up_once_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # where every notebook runs
    first = open_run("", "03_evaluate")
    assert first.path == DEFAULT_RUN_DIR and first.step == DEFAULT_RUN_DIR / "03_evaluate" and first.interactive
    assert "the default: no run folder set up yet" in capsys.readouterr().out
    assert first.context() is None

    run = open_run("../reports/mine", "01_data_exploration")
    data = DataSettings(synthetic_ids=8)
    run.set_data(data, "01_data_exploration")
    assert json.loads((tmp_path / "reports/mine" / CONTEXT_NAME).read_text())["synthetic_ids"] == 8
    assert json.loads(CURRENT_RUN.read_text())["run_dir"] == str((tmp_path / "reports/mine").resolve())
    later = open_run("", "02_train")
    assert later.path == (tmp_path / "reports/mine").resolve() and later.step == later.path / "02_train"
    assert later.context() == data and "set up last, by notebook 01_data_exploration" in capsys.readouterr().out

    # the pipeline passes step_dir: it reads and writes the run's context but never the pointer
    piped = open_run(tmp_path / "piped", "01_data_exploration", tmp_path / "piped" / "01_data_exploration")
    piped.set_data(DataSettings(synthetic_ids=4), "01_data_exploration")
    assert not piped.interactive and open_run("", "05_embeddings").path == later.path


def test_notebook_02_defaults_to_the_runs_data_and_refuses_other_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = RunFolder(tmp_path / "run", tmp_path / "run" / "02_train", interactive=False)
    assert run.data_settings() == DataSettings()  # no context yet: the demo's data
    run.set_data(DataSettings(synthetic_layout="regdb", synthetic_ids=8), "01_data_exploration")
    assert run.data_settings(dataset=None, synthetic_ids=None).synthetic_layout == "regdb"
    assert run.data_settings(synthetic_ids=8, data_root="../elsewhere").data_root == "../elsewhere"
    with pytest.raises(DataMismatchError) as info:
        run.data_settings(synthetic_layout="sysu")
    text = str(info.value)
    assert str(run.path) in text and "synthetic regdb layout trial 1 (8 ids" in text and "synthetic sysu" in text
    assert "notebook 01" in text and "overwrite=True" in text
    switched = run.data_settings(synthetic_layout="sysu", overwrite=True)
    run.set_data(switched, "02_train")
    assert run.context() == switched and "its data changes from synthetic regdb" in capsys.readouterr().out
    (run.path / CONTEXT_NAME).write_text("{not json")
    with pytest.raises(ValueError, match=f"{CONTEXT_NAME} cannot be read.*rerun the step that writes it"):
        run.context()


def test_a_trained_step_folder_is_refused_naming_the_ways_out(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data", out_dir=str(tmp_path / "run" / "02_train"), epochs=3)
    check_train_folder(cfg, None)  # empty folder: fine
    claim_run_folder(cfg.out_dir, "train", cfg.to_dict(), ignore=TrainConfig.RESUMABLE_CHANGES)
    (Path(cfg.out_dir) / "checkpoint.pth").write_bytes(b"weights")
    other = TrainConfig.from_dict({**cfg.to_dict(), "lr": 0.02})
    with pytest.raises(RunFolderError) as info:
        check_train_folder(other)
    text = str(info.value)
    assert f"{cfg.out_dir} already holds the checkpoint of another run" in text
    assert "another run_tag" in text and "02_train_<run_tag>" in text and "overwrite=True" in text
    with pytest.raises(RunFolderError, match="a checkpoint of this configuration"):
        check_train_folder(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 9}))  # a resume may change epochs
    check_train_folder(TrainConfig.from_dict({**other.to_dict(), "overwrite": True}))
    check_train_folder(other, resume="auto")
    # the baseline's folder is checked before the IDKL model trains
    run = RunFolder(tmp_path / "run", tmp_path / "run" / "02_train", interactive=True)
    baseline = baseline_config(TrainConfig.from_dict({**cfg.to_dict(), "out_dir": str(tmp_path / "x")}), run)
    assert baseline.out_dir == str(tmp_path / "run" / "02_train_baseline") and baseline.loss_preset == "baseline"
    Path(baseline.out_dir).mkdir()
    (Path(baseline.out_dir) / "checkpoint.pth").write_bytes(b"weights")
    with pytest.raises(RunFolderError, match="02_train_baseline already holds"):
        check_train_folder(TrainConfig.from_dict({**cfg.to_dict(), "out_dir": str(tmp_path / "y")}), baseline)


def test_with_baseline_is_on_for_the_synthetic_demo_in_jupyterlab_only(tmp_path: Path) -> None:
    cfg, synthetic = _cfg(tmp_path), DataSettings()
    lab = RunFolder(tmp_path, tmp_path / "02_train", interactive=True)
    piped = RunFolder(tmp_path, tmp_path / "02_train", interactive=False)
    assert wants_baseline(None, cfg, synthetic, lab) and not wants_baseline(None, cfg, synthetic, piped)
    assert not wants_baseline(None, cfg, DataSettings("sysu", "/data/SYSU"), lab)
    assert wants_baseline(True, cfg, DataSettings("sysu", "/data/SYSU"), piped)
    assert not wants_baseline(True, baseline_config(cfg, lab), synthetic, lab), "the baseline trains no baseline"
    tagged = TrainConfig.from_dict({**cfg.to_dict(), "out_dir": str(tmp_path / "02_train_baseline")})  # run_tag
    assert not wants_baseline(True, tagged, synthetic, lab), "nothing trains twice into one folder"
    assert train_step_name("idkl") == "02_train" and train_step_name("baseline") == "02_train_baseline"
    with pytest.raises(ValueError, match="run_tag='a b'"):
        train_step_name("a b")


def test_the_pipeline_and_every_sweep_cell_pass_with_baseline_off(tmp_path: Path) -> None:
    notebooks = {step.notebook: NOTEBOOKS_DIR / f"{step.notebook}.ipynb" for step in DEFAULT_STEPS}
    sweep_cell = [step for step in DEFAULT_STEPS if step.name in ("02_train", "03_evaluate")]  # the sweeps' steps
    for selected in (DEFAULT_STEPS, sweep_cell):
        params = _resolve_params(DEFAULT_STEPS, selected, notebooks, "demo", {"seed": 1}, tmp_path)
        trains = {name: values["with_baseline"] for name, values in params.items() if "with_baseline" in values}
        assert trains and set(trains.values()) == {False} and "02_train" in trains
    for key in ("with_baseline", "02_train.with_baseline"):
        with pytest.raises(ValueError, match="'with_baseline' is set by the pipeline"):
            _resolve_params(DEFAULT_STEPS, DEFAULT_STEPS, notebooks, "demo", {key: True}, tmp_path)


def test_the_pipeline_fills_the_recipe_of_the_runs_dataset(tmp_path: Path) -> None:
    notebooks = {"02_train": NOTEBOOKS_DIR / "02_train.ipynb"}
    steps = [step for step in DEFAULT_STEPS if step.name == "02_train"]
    demo = _resolve_params(steps, steps, notebooks, "demo", {}, tmp_path)["02_train"]
    assert (demo["height"], demo["arch"]) == (128, "resnet18")  # no context: notebook 01's default, synthetic
    (tmp_path / CONTEXT_NAME).write_text(json.dumps({**DataSettings("regdb", "/data/RegDB").as_dict()}))
    regdb = _resolve_params(steps, steps, notebooks, "demo", {}, tmp_path)["02_train"]
    assert (regdb["height"], regdb["arch"]) == (256, "resnet50")


def test_views_without_a_baseline_are_skipped_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert feature_views({"idkl": object(), "baseline": object()}) == list(FEATURE_VIEWS)  # type: ignore[dict-item]
    assert capsys.readouterr().out == ""
    kept = feature_views({"idkl": object()})  # type: ignore[dict-item]
    assert [view.model for view in kept] == ["idkl", "idkl"]
    (line,) = capsys.readouterr().out.splitlines()
    assert "no baseline model: skipping shared (w/o distillation)" in line and "with_baseline" in line
