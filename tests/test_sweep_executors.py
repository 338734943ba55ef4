"""Where a sweep's cells run (idkl_lib.experiments.executors, .cluster): the local executor one process per cell,
``--jobs N`` at a time with threads and GPUs divided, and the Slurm path through submitit's local executor.

The executed tests use the stand-in notebooks of ``sweep_standins`` (a seeded torch model trained for 3 epochs, a
checkpoint per epoch that ``resume="auto"`` continues): the same cell must give the same numbers, bit for bit,
whether it ran alone, beside another cell or as a submitit job that was preempted and requeued. Slurm itself is not
here: a fake ``sbatch`` stands in for a refused submission.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from idkl_lib.experiments import sweep
from idkl_lib.experiments.cluster import make_executor
from idkl_lib.experiments.executors import ExecutorError, LocalExecutor
from idkl_lib.experiments.grid import load_experiment
from idkl_lib.experiments.sweep import Experiment, run_sweep, sweep_status

from .sweep_standins import NOTEBOOKS_DIR, write_standins

GRID = {"loss_preset": ["baseline", "full"], "seed": [0, 1]}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standins(tmp_path_factory.mktemp("standins"))


def _rows(run: Path) -> dict[str, dict[str, Any]]:
    return {row["cell"]: row for row in json.loads((run / "results.json").read_text())["rows"]}


def _numbers(run: Path) -> dict[str, tuple[float, float, list[Any]]]:
    """Per cell: the trained model's R1 stand-in, the last loss and the whole loss history."""
    return {
        name: (row["02_train.result.R1"], row["02_train.result.loss"],
               json.loads((run / name / "02_train" / "history.json").read_text()))
        for name, row in _rows(run).items()
    }  # fmt: skip


def _base_args(run: Path, nb_dir: Path, *more: str) -> list[str]:
    return ["--run-dir", str(run), "--sweep", "seed=0,1", "--preset", "none", "--only", "02_train", "--no-compare",
            "--notebooks-dir", str(nb_dir), *more]  # fmt: skip


# ---------------------------------------------------------------------------------------------- settings, no cells


def test_bad_executor_settings_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["--run-dir", str(tmp_path / "run"), "--sweep", "seed=0,1", "--notebooks-dir", str(NOTEBOOKS_DIR)]
    for bad, message in ((["--jobs", "0"], "argument --jobs: must be 1 or more, got 0"),
                         (["--executor", "ray"], "argument --executor: invalid choice: 'ray'")):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            sweep.main([*args, *bad])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert sweep.main([*args, "--gpus-per-cell", "99"]) == 2
    err = capsys.readouterr().err
    assert "--gpus-per-cell 99: this machine has" in err and len(err.strip().splitlines()) == 1
    assert sweep.main([*args, "--sbatch", "account"]) == 2
    assert "--sbatch 'account': expected KEY=VALUE" in capsys.readouterr().err
    assert sweep.main(["--status", str(tmp_path)]) == 2
    assert "no sweep folder" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

    with pytest.raises(ExecutorError, match=r"--jobs 3 with --gpus-per-cell 1 needs 3 GPUs; this machine has 2 GPU"):
        LocalExecutor(jobs=3, gpus_per_cell=1, devices=["0", "1"])
    with pytest.raises(ExecutorError, match=r"--gpus-per-cell 2: this machine has 1 GPU\(s\) \(5\) visible"):
        LocalExecutor(gpus_per_cell=2, devices=["5"])
    assert LocalExecutor(devices=["0", "1", "2"]).slots.jobs == 3  # default: one cell per GPU
    assert LocalExecutor(gpus_per_cell=2, devices=["0", "1", "2", "3"]).slots.jobs == 2
    with pytest.raises(ExecutorError, match="--executor local takes --jobs and --gpus-per-cell, not \\['partition'\\]"):
        make_executor("local", partition="gpu")

    monkeypatch.setitem(sys.modules, "submitit", None)  # not installed
    assert sweep.main([*args, "--executor", "slurm"]) == 2
    assert "needs submitit, which is not installed: pip install 'idkl-lib[cluster]'" in capsys.readouterr().err


def test_slurm_needs_sbatch_and_shows_its_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No sbatch here: said so. A partition sbatch refuses: sbatch's own message, exit 2, no cell marked submitted.
    The experiment file's ``executor:`` is used (the command line may override it)."""
    pytest.importorskip("submitit")
    experiment = tmp_path / "exp.yaml"
    executor = "executor: {kind: slurm, partition: nope, time_min: 30, sbatch: {account: lab}}\n"
    experiment.write_text(f"preset: ci\nsteps: [02_train]\ngrid: {{seed: [0, 1]}}\n{executor}")
    args = ["--run-dir", str(tmp_path / "run"), "--experiment", str(experiment), "--notebooks-dir", str(NOTEBOOKS_DIR)]
    assert load_experiment(experiment).executor["partition"] == "nope"
    system_path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert sweep.main(args) == 2
    assert "--executor slurm: no sbatch/srun on PATH" in capsys.readouterr().err

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        '#!/bin/sh\ncp "$1" "$(dirname "$0")/submitted.sh"\n'
        "echo 'sbatch: error: invalid partition specified: nope' >&2\n"
        "echo 'sbatch: error: Batch job submission failed: Invalid partition name specified' >&2\nexit 1\n"
    )
    for name in ("srun", "sbatch"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{system_path}")
    assert sweep.main(args) == 2
    err = capsys.readouterr().err
    assert "sbatch refused the job array: sbatch: error: invalid partition specified: nope" in err
    assert len(err.strip().splitlines()) == 1
    script = (bin_dir / "submitted.sh").read_text()  # one array of both cells, with the file's resources
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --partition=nope" in script
    assert "#SBATCH --account=lab" in script and "#SBATCH --time=30" in script
    cells = json.loads((tmp_path / "run" / "sweep.json").read_text())["cells"]
    assert {entry["state"] for entry in cells.values()} == {"pending"}


# --------------------------------------------------------------------------------------------------- executed


@pytest.mark.slow
@pytest.mark.notebooks
def test_parallel_and_submitit_cells_equal_the_sequential_ones(
    nb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 configurations x 2 seeds: alone, two at a time (each its own GPU and half the threads) and as submitit jobs
    (the coordinator exits after submitting; one job is preempted, requeued and continues its checkpoint)."""
    exp = Experiment(grid=GRID, preset=None, steps=("02_train",), compare=False)
    sequential = run_sweep(tmp_path / "seq", exp, nb_dir, progress=False)
    assert not sequential.failed and len(sequential.rows) == 4
    parallel = LocalExecutor(jobs=2, gpus_per_cell=1, devices=["0", "1"])
    assert not run_sweep(tmp_path / "par", exp, nb_dir, progress=False, executor=parallel).failed
    expected = _numbers(tmp_path / "seq")
    assert _numbers(tmp_path / "par") == expected
    threads = str(max(1, len(os.sched_getaffinity(0)) // 2))
    for name, row in _rows(tmp_path / "par").items():
        assert row["02_train.env.CUDA_VISIBLE_DEVICES"] in ("0", "1") and row["02_train.env.OMP_NUM_THREADS"] == threads
        assert (tmp_path / "par" / name / "cell.log").is_file()
    entries = json.loads((tmp_path / "par" / "sweep.json").read_text())["cells"]
    assert entries["loss_preset-baseline__seed-0"]["devices"] != entries["loss_preset-baseline__seed-1"]["devices"]

    monkeypatch.setenv("IDKL_TEST_CELL_EVENT", "preempt:loss_preset-full__seed-1")
    run = tmp_path / "sub"
    args = ["--run-dir", str(run), "--sweep", "loss_preset=baseline,full", "--sweep", "seed=0,1", "--preset", "none",
            "--only", "02_train", "03_evaluate", "--notebooks-dir", str(nb_dir), "--executor", "submitit-local",
            "--no-wait"]  # fmt: skip
    assert sweep.main(args) == 0
    assert f"--status {run.resolve()}" in capsys.readouterr().out
    result = sweep_status(run, wait=True, poll_s=0.5)
    assert not result.failed and not result.waiting and result.index_html is not None
    assert _numbers(run) == expected
    preempted = run / "loss_preset-full__seed-1"
    assert _rows(run)["loss_preset-full__seed-1"]["02_train.resumed_from"] == 1  # continued after epoch 1
    assert json.loads((preempted / "cell.json").read_text())["resume"] is True
    job = json.loads((run / "sweep.json").read_text())["cells"][preempted.name]["job_id"]
    assert "this job is preempted" in (run / "submitit" / f"{job}_0_log.err").read_text()
    metrics = json.loads((run / "06_compare_runs" / "metrics.json").read_text())  # the comparison, after --wait
    assert metrics["num_runs"] == 4
    assert sweep.main(["--status", str(run)]) == 0
    assert "4 of 4 cells done" in capsys.readouterr().out


@pytest.mark.notebooks
def test_a_killed_cell_is_recorded_with_its_log_and_resume_reruns_it(
    nb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IDKL_TEST_CELL_EVENT", "kill:seed-1")
    run = tmp_path / "run"
    assert sweep.main(_base_args(run, nb_dir, "--jobs", "2")) == 1
    log = run / "seed-1" / "cell.log"
    assert f"failed: seed-1: killed by signal SIGKILL (log: {log.resolve()})" in capsys.readouterr().err
    rows = _rows(run)
    assert rows["seed-0"]["state"] == "done" and rows["seed-1"]["state"] == "failed" and log.is_file()
    stamp = (run / "seed-0" / "02_train.ipynb").stat().st_mtime_ns
    assert sweep.main(_base_args(run, nb_dir, "--jobs", "2", "--resume")) == 0
    assert {row["state"] for row in _rows(run).values()} == {"done"}
    assert (run / "seed-0" / "02_train.ipynb").stat().st_mtime_ns == stamp


def _wait_for(check: Any, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def _cell_states(run: Path) -> dict[str, str]:
    try:
        return {n: e["state"] for n, e in json.loads((run / "sweep.json").read_text())["cells"].items()}
    except (OSError, ValueError):
        return {}


@pytest.mark.notebooks
def test_a_killed_coordinator_loses_no_finished_cell_and_a_second_is_refused(
    nb_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "IDKL_TEST_CELL_EVENT": "sleep:seed-1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "idkl_lib.experiments.sweep", *_base_args(run, nb_dir)]
    coordinator = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: _cell_states(run) == {"seed-0": "done", "seed-1": "running"}, "seed-0 done, seed-1 running")
        _wait_for((run / "seed-1" / "02_train" / "event-done").is_file, "seed-1's notebook")
        assert sweep.main(_base_args(run, nb_dir)) == 2  # a second coordinator on the same folder
        err = capsys.readouterr().err
        assert f"is being run by a sweep coordinator by pid {coordinator.pid}" in err
    finally:
        coordinator.kill()
        coordinator.wait()
    cell = run / "seed-1" / "cell.json"  # the cell process ends with its coordinator and says so
    _wait_for(lambda: json.loads(cell.read_text())["state"] == "interrupted", "seed-1 recorded interrupted", 120)
    assert [row["cell"] for row in _rows(run).values() if row["state"] == "done"] == ["seed-0"]
    stamp = (run / "seed-0" / "02_train.ipynb").stat().st_mtime_ns
    (run / "release").touch()
    with pytest.warns(UserWarning, match=f"clearing the stale lock of {run.resolve()} left by pid {coordinator.pid}"):
        assert sweep.main(_base_args(run, nb_dir, "--resume")) == 0
    assert {row["state"] for row in _rows(run).values()} == {"done"}
    assert (run / "seed-0" / "02_train.ipynb").stat().st_mtime_ns == stamp
