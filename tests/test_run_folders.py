"""Run folders that protect what they hold, checks before the first training step, the divergence stop and the
resume that follows its advice, and the command line's one-line errors (``idkl_lib.runs.guard``,
``idkl_lib.train.checks``, ``idkl_lib.train``, ``idkl_lib.train.cli``). Tiny sizes: a few 32 x 32 steps each."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

import idkl_lib.train.epoch as epoch_module
from idkl_lib.checkpoint import load_checkpoint
from idkl_lib.data import VIDataset, parse_sysu
from idkl_lib.data.validate import DatasetCheckError
from idkl_lib.runs.guard import RunFolderError, claim_run_folder, read_record
from idkl_lib.train.checks import DIVERGENCE_WARMUP, divergent_row
from idkl_lib.train.cli import main
from idkl_lib.train.loop import (
    CHECKPOINT_NAME,
    DivergedLossError,
    NonFiniteLossError,
    build_loader,
    lr_factor,
    train,
)
from idkl_lib.utils.lock import FolderLockTimeout

from .test_train import _one_thread_and_restored_torch_state, cli_args, file_hash, tiny_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]


def count_steps(monkeypatch: pytest.MonkeyPatch, scale_at: int | None = None, factor: float = 1.0) -> list[int]:
    """Count the training steps (loss computations); with ``scale_at``, multiply that step's ``id`` term."""
    original, calls = epoch_module.compute_losses, [0]

    def compute_losses(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        terms = original(*args, **kwargs)
        calls[0] += 1
        if calls[0] == scale_at:
            terms["id"] = terms["id"] * factor
        return terms

    monkeypatch.setattr(epoch_module, "compute_losses", compute_losses)
    return calls


@contextmanager
def lock_held_by_another_process(folder: Path) -> Iterator[int]:
    """A second process holding ``folder``'s lock until the block ends; yields its pid."""
    code = (
        "import sys; from idkl_lib.utils.lock import folder_lock\n"
        f"with folder_lock({str(folder)!r}, purpose='written by a test'):\n"
        "    print('locked', flush=True); sys.stdin.readline()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def cli_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ----------------------------------------------------------------------------------------------- the guard


def test_claim_records_the_run_and_refuses_another_runs_results(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    record = claim_run_folder(folder, "train", {"lr": 1.0})
    assert read_record(folder) == record and record["kind"] == "train" and record["created"]
    claim_run_folder(folder, "train", {"lr": 2.0})  # no results yet: free to reuse
    (folder / CHECKPOINT_NAME).write_bytes(b"x")
    with pytest.raises(
        RunFolderError, match=r"holds a train run, config \w+.*this run \(config \w+\).*--resume.*--overwrite"
    ):
        claim_run_folder(folder, "train", {"lr": 3.0})
    assert claim_run_folder(folder, "train", {"lr": 2.0}, resume=True)["resumed"]
    (folder / "metrics.json").write_text("{}")
    claim_run_folder(folder, "train", {"lr": 3.0}, overwrite=True)
    assert not (folder / CHECKPOINT_NAME).exists() and not (folder / "metrics.json").exists()  # no stale results
    # another kind of run is refused whatever the options
    with pytest.raises(RunFolderError, match="holds a train run.*not a pipeline run's.*choose a new --run-dir"):
        claim_run_folder(folder, "pipeline", {}, resume=True, overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        claim_run_folder(tmp_path / "file", "train", {})


# ----------------------------------------------------------------------------------------------- training


def test_out_dir_of_a_finished_run_is_refused_without_resume_or_overwrite(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(sysu_root, tmp_path, epochs=1)
    train(cfg, dataset=sysu_dataset, progress=False)
    record, before = read_record(tmp_path), file_hash(tmp_path / CHECKPOINT_NAME)
    assert record is not None and record["kind"] == "train"
    (tmp_path / "metrics.json").write_text('{"final": "of the first run"}')
    with pytest.raises(RunFolderError, match=f"holds a train run, config {record['config_hash']}.*--resume"):
        train(dataclasses.replace(cfg, seed=5), dataset=sysu_dataset, progress=False)
    assert main([*cli_args(cfg), "--no-progress"]) == 2
    assert "--overwrite to replace it" in cli_error(capsys)
    assert file_hash(tmp_path / CHECKPOINT_NAME) == before and "first run" in (tmp_path / "metrics.json").read_text()

    train(dataclasses.replace(cfg, seed=5, overwrite=True), dataset=sysu_dataset, progress=False)
    assert file_hash(tmp_path / CHECKPOINT_NAME) != before
    assert not (tmp_path / "metrics.json").exists()  # the old run's metrics went with its checkpoint
    assert read_record(tmp_path)["config_hash"] != record["config_hash"]  # type: ignore[index]


def test_a_second_trainer_into_the_same_out_dir_fails_naming_the_first(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_steps(monkeypatch)
    with lock_held_by_another_process(tmp_path / "out") as pid:
        with pytest.raises(FolderLockTimeout, match=f"out is being written by a train run by pid {pid}"):
            train(tiny_config(sysu_root, tmp_path / "out"), dataset=sysu_dataset, progress=False)
    assert calls[0] == 0 and not (tmp_path / "out" / CHECKPOINT_NAME).exists()


def test_resume_with_fewer_epochs_than_done_stops_naming_both(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny_config(sysu_root, tmp_path, epochs=2)
    train(cfg, dataset=sysu_dataset, progress=False)
    with pytest.raises(ValueError, match="trained 2 epochs, more than the 1 asked for"):
        train(dataclasses.replace(cfg, epochs=1), dataset=sysu_dataset, resume=True, progress=False)
    assert main([*cli_args(dataclasses.replace(cfg, epochs=1)), "--resume", "--no-progress"]) == 2
    assert "trained 2 epochs, more than the 1 asked for (--epochs=1)" in cli_error(capsys)


def test_divergence_stops_keeps_the_last_good_checkpoint_and_an_allowed_lr_change_resumes(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_config(sysu_root, tmp_path, epochs=2, log_every=1)
    per_epoch = len(build_loader(cfg, sysu_dataset, epoch=0))
    explode = per_epoch + 2  # in epoch 2, after the warm-up of logged steps
    assert explode > DIVERGENCE_WARMUP
    count_steps(monkeypatch, scale_at=explode, factor=1e6)  # finite, but a million times the loss
    with pytest.raises(DivergedLossError) as caught:
        train(cfg, dataset=sysu_dataset, progress=False)
    error, ckpt = caught.value, tmp_path / CHECKPOINT_NAME
    assert isinstance(error, NonFiniteLossError) and error.step == explode and error.checkpoint == ckpt
    assert error.value > 1e3 * error.median and "divergence_factor" in str(error) and str(ckpt) in str(error)
    assert load_checkpoint(ckpt)["epoch"] == 1
    monkeypatch.undo()

    lower = dataclasses.replace(cfg, lr=1e-4, grad_clip=5.0)
    refused = "cannot resume.*lr: 0.00035 -> 0.0001; grad_clip: 0.0 -> 5.0.*resume_changes names them"
    with pytest.raises(ValueError, match=refused):
        train(lower, dataset=sysu_dataset, resume=True, progress=False)
    with pytest.warns(UserWarning, match="resuming .* with .*'lr': \\[0.00035, 0.0001\\].* at epoch 1"):
        result = train(
            dataclasses.replace(lower, resume_changes="lr,grad_clip"), dataset=sysu_dataset, resume=True, progress=False
        )
    saved = load_checkpoint(ckpt)
    assert saved["epoch"] == 2 and saved["config"]["lr"] == 1e-4 and saved["config"]["grad_clip"] == 5.0
    assert saved["extra"]["resume_changes"] == [
        {"epoch": 1, "changes": {"lr": [3.5e-4, 1e-4], "grad_clip": [0.0, 5.0]}}
    ]
    epoch2 = [row for row in result.history if row["epoch"] == 2]
    assert epoch2 and all(row["lr"] == pytest.approx(1e-4 * lr_factor(1, cfg)) for row in epoch2)
    assert saved["scheduler_state"]["base_lrs"] == [1e-4]


def test_divergence_rule_by_hand() -> None:
    history = [{"total": v} for v in [2.0, 3.0, 4.0] * 4]  # median 3
    assert divergent_row(history, [2999.0, 10.0], 1e3) is None
    assert divergent_row(history, [10.0, 3001.0], 1e3) == (1, 3001.0, 3.0)
    assert divergent_row(history[: DIVERGENCE_WARMUP - 1], [1e9], 1e3) is None  # warm-up
    assert divergent_row([{"total": 1e-4}] * 20, [999.0], 1e3) is None  # the median counts as at least 1
    assert divergent_row(history, [1e9], 0.0) is None  # off


# ----------------------------------------------------------------------------------------------- pre-checks


@pytest.fixture()
def damaged_sysu(sysu_root: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the tiny SYSU-MM01 with one training image cut short."""
    root = tmp_path / "sysu"
    shutil.copytree(sysu_root, root)
    victim = parse_sysu(root).train[0].path
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: len(data) // 3])
    return root, victim


def test_a_damaged_image_fails_before_any_training_step_and_can_be_skipped(
    damaged_sysu: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, victim = damaged_sysu
    dataset = parse_sysu(root)
    calls = count_steps(monkeypatch)
    cfg = tiny_config(root, tmp_path / "out", epochs=1)
    with pytest.raises(DatasetCheckError, match=f"1 of .* images are damaged: {victim}"):
        train(cfg, dataset=dataset, progress=False)
    assert calls[0] == 0 and not (tmp_path / "out" / CHECKPOINT_NAME).exists()
    assert main([*cli_args(cfg), "--no-progress"]) == 2
    err = cli_error(capsys)
    assert victim in err and "skip_corrupt" in err and calls[0] == 0

    with pytest.warns(UserWarning, match=f"skipping 1 damaged image.*{victim}"):
        result = train(dataclasses.replace(cfg, skip_corrupt=True), dataset=dataset, progress=False)
    assert calls[0] == len(result.history) > 0


def test_sysu_trials_are_checked_against_the_evaluation_before_training(
    sysu_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from idkl_lib.data.sysu_perm import read_rand_perm_cam, write_rand_perm_cam

    root = tmp_path / "sysu"
    shutil.copytree(sysu_root, root)
    table = read_rand_perm_cam(root / "exp" / "rand_perm_cam.mat")
    write_rand_perm_cam(root / "exp" / "rand_perm_cam.mat", {key: rows[:3] for key, rows in table.items()})
    calls = count_steps(monkeypatch)
    with pytest.raises(DatasetCheckError, match="rand_perm_cam"):
        train(tiny_config(root, tmp_path / "out", final_eval=True), dataset=parse_sysu(root), progress=False)
    assert calls[0] == 0


@pytest.mark.parametrize(
    ("case", "named"),
    [
        ("out_dir_is_a_file", "is a file, not a folder"),
        ("absurd_lr", "--lr=1e+38: the learning rate must be a positive number <= 10"),
        ("random_pretrained", "not a readable torch state dict"),
        ("bad_data_root", "--data-root"),
        ("bad_resume_changes", "--resume-changes='lr,margin': unknown name(s) margin"),
    ],
)
def test_cli_user_errors_are_one_line_and_exit_2(
    case: str, named: str, sysu_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli_args(tiny_config(sysu_root, tmp_path / "out", epochs=1))
    if case == "out_dir_is_a_file":
        (tmp_path / "out").write_text("not a folder")
    elif case == "absurd_lr":
        args += ["--lr", "1e38"]
    elif case == "random_pretrained":
        (tmp_path / "weights.pth").write_bytes(os.urandom(4096))
        args += ["--pretrained", str(tmp_path / "weights.pth"), "--base-width", "none"]
    elif case == "bad_data_root":
        args += ["--data-root", str(tmp_path / "nowhere")]
    else:
        args += ["--resume-changes", "lr,margin"]
    assert run_cli([*args, "--no-progress"]) == 2
    assert named in cli_error(capsys)


def run_cli(argv: list[str]) -> int:
    """``main(argv)``'s exit code, also when argparse exits."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_cli_debug_shows_the_traceback(sysu_root: Path, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("not a folder")
    with pytest.raises(NotADirectoryError):
        main([*cli_args(tiny_config(sysu_root, tmp_path / "out", epochs=1)), "--no-progress", "--debug"])


def test_read_only_out_dir_fails_before_training(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    calls = count_steps(monkeypatch)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            train(tiny_config(sysu_root, out), dataset=sysu_dataset, progress=False)
    finally:
        out.chmod(0o700)
    assert calls[0] == 0


def test_cli_flags_of_the_new_fields() -> None:
    from idkl_lib.train.cli import build_arg_parser

    parser = build_arg_parser()
    args = parser.parse_args(
        ["--overwrite", "--skip-corrupt", "--resume-changes", "lr,amp", "--divergence-factor", "0"]
    )
    assert (args.overwrite, args.skip_corrupt, args.resume_changes, args.divergence_factor) == (True, True, "lr,amp", 0)
    assert parser.parse_args(["--overwrite", "false"]).overwrite is False
    assert parser.parse_args([]).overwrite is False
