"""The pipeline's run folder protects what it holds (``idkl_lib.runs.guard`` via ``run_pipeline``): a training out-dir,
another pipeline run's results, a folder another pipeline is writing, and a real dataset's folder given as the
synthetic data's root are refused with one line; tiny notebooks written with nbformat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from idkl_lib.pipeline import run_pipeline
from idkl_lib.pipeline.cli import main
from idkl_lib.pipeline.steps import Step
from idkl_lib.runs.guard import RunFolderError, claim_run_folder, read_record
from idkl_lib.utils.lock import FolderLockTimeout

from .test_pipeline import standard_params, write_notebook
from .test_run_folders import lock_held_by_another_process


@pytest.fixture()
def notebooks(tmp_path: Path) -> Path:
    nb_dir = tmp_path / "nb"
    write_notebook(nb_dir / "01_data_exploration.ipynb", standard_params(dataset="synthetic", data_root="data"))
    return nb_dir


def run(run_dir: Path, nb_dir: Path, **kwargs: object) -> object:
    return run_pipeline(
        run_dir, preset=None, steps=[Step("01_data_exploration")], notebooks_dir=nb_dir, verbose=False, **kwargs
    )


def cli(run_dir: Path, nb_dir: Path, *extra: str) -> int:
    return main(
        [
            "--run-dir",
            str(run_dir),
            "--notebooks-dir",
            str(nb_dir),
            "--preset",
            "none",
            "--only",
            "01_data_exploration",
            *extra,
        ]
    )


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_training_out_dir_is_never_a_run_dir(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "train_out"
    claim_run_folder(out, "train", {"lr": 1.0})
    (out / "checkpoint.pth").write_bytes(b"weights")
    (out / "metrics.json").write_text('{"final": "training"}')
    for options in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(RunFolderError, match="holds a train run.*not a pipeline run's.*choose a new --run-dir"):
            run(out, notebooks, **options)
    assert json.loads((out / "metrics.json").read_text()) == {"final": "training"}
    assert cli(out, notebooks) == 2
    assert "holds a train run" in one_line(capsys)


def test_another_pipeline_runs_results_need_resume_or_overwrite(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "reports" / "a"
    run(run_dir, notebooks, params={"epochs": 1})
    first = read_record(run_dir)
    assert first is not None and first["kind"] == "pipeline"
    run(run_dir, notebooks, params={"epochs": 1})  # the same run again: its own results are replaced
    with pytest.raises(RunFolderError, match=f"holds a pipeline run, config {first['config_hash']}.*--overwrite"):
        run(run_dir, notebooks, params={"epochs": 2})
    assert json.loads((run_dir / "01_data_exploration" / "metrics.json").read_text())["received"]["epochs"] == 1
    assert cli(run_dir, notebooks, "-p", "epochs", "2") == 2
    assert "pass --resume to continue it" in one_line(capsys)
    assert cli(run_dir, notebooks, "-p", "epochs", "2", "--overwrite") == 0
    assert json.loads((run_dir / "01_data_exploration" / "metrics.json").read_text())["received"]["epochs"] == 2


def test_a_second_pipeline_into_the_same_run_dir_fails_naming_the_first(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "reports" / "b"
    with lock_held_by_another_process(run_dir) as pid:
        with pytest.raises(FolderLockTimeout, match=f"b is being written by a pipeline run by pid {pid}"):
            run(run_dir, notebooks)
        assert cli(run_dir, notebooks) == 2
        assert f"pid {pid}" in one_line(capsys)
    assert not (run_dir / "status.json").exists()
    run(run_dir, notebooks)  # once the first is done
    assert (run_dir / "status.json").is_file()


def test_a_real_datasets_folder_as_synthetic_data_root_stops_before_anything_runs(
    notebooks: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        (real / f"cam{cam}").mkdir(parents=True)
    run_dir = tmp_path / "reports" / "c"
    with pytest.raises(ValueError, match=f"real sysu dataset at {real}.*pass -p dataset sysu"):
        run(run_dir, notebooks, params={"data_root": str(real / "cam1")})
    assert not run_dir.exists() and sorted(p.name for p in real.iterdir()) == [f"cam{c}" for c in range(1, 7)]
    assert cli(run_dir, notebooks, "-p", "data_root", str(real)) == 2
    assert "-p dataset sysu" in one_line(capsys)


def test_a_notebook_given_a_real_datasets_folder_as_synthetic_root_stops_naming_the_dataset(tmp_path: Path) -> None:
    from idkl_lib.notebook.context import prepare_dataset

    real = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        (real / f"cam{cam}").mkdir(parents=True)
    with pytest.raises(ValueError) as caught:
        prepare_dataset("synthetic", real, synthetic_ids=4, synthetic_images=2)
    message = str(caught.value)
    assert "\n" not in message and "SYSU-MM01" in message and "dataset='sysu'" in message
    assert sorted(p.name for p in real.iterdir()) == [f"cam{c}" for c in range(1, 7)]  # nothing written
