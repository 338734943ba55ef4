"""TensorBoard logs of training (``idkl_lib.train.tensorboard``), read back from the event files after tiny runs on the
synthetic SYSU-MM01 fixture."""

from __future__ import annotations

import dataclasses
import errno
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from idkl_lib.checkpoint import load_checkpoint
from idkl_lib.data import VIDataset
from idkl_lib.runs import CHECKPOINT_NAME
from idkl_lib.train.loop import train
from idkl_lib.train.tensorboard import EVAL_METRICS, TENSORBOARD_DIR

from .test_train import tiny_config


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_scalars(out_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of ``<out_dir>/tensorboard`` as TensorBoard reads it (purge markers applied)."""
    acc = EventAccumulator(str(out_dir / TENSORBOARD_DIR), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(event.step, event.value) for event in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_curve(curve: list[tuple[int, float]], steps: list[int], values: list[float]) -> None:
    assert [step for step, _ in curve] == steps
    assert [value for _, value in curve] == pytest.approx(values, rel=1e-6, abs=1e-6)


def test_every_term_lr_throughput_and_evaluation_are_logged(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    cfg = tiny_config(sysu_root, tmp_path / "run", eval_every=1, final_eval=True)
    result = train(cfg, dataset=sysu_dataset, progress=False)
    scalars = read_scalars(tmp_path / "run")

    steps = [int(row["step"]) for row in result.history]
    terms = [name for name in result.history[0] if name not in ("step", "epoch", "lr")]
    assert "total" in terms and len(terms) > 5  # the total and every weighted loss term
    for name in terms:
        assert_curve(scalars[f"loss/{name}"], steps, [row[name] for row in result.history])
    assert_curve(scalars["train/lr"], steps, [row["lr"] for row in result.history])
    assert len({row["lr"] for row in result.history}) == 2  # milestone after epoch 1: the curve shows the drop

    epoch_ends = [max(int(r["step"]) for r in result.history if r["epoch"] == e) for e in (1, 2)]
    throughput = scalars["train/images_per_second"]
    assert [step for step, _ in throughput] == epoch_ends
    assert all(value > 0 and math.isfinite(value) for _, value in throughput)

    # the eval_every evaluation after epoch 1 and the final one, at the steps they were made
    assert [row["epoch"] for row in result.eval_history] == [1]
    evaluations = [result.eval_history[0]["metrics"], result.metrics]
    for protocol in result.metrics:
        for key in EVAL_METRICS:
            expected = [metrics[protocol]["mean"][key] for metrics in evaluations]
            assert_curve(scalars[f"eval/{protocol}/{key}"], epoch_ends, expected)
    assert not [tag for tag in scalars if not tag.startswith(("loss/", "train/", "eval/"))]

    # a fresh run in the same folder (an explicit overwrite) replaces the curves instead of appending to them
    again = train(
        dataclasses.replace(cfg, epochs=1, final_eval=False, eval_every=0, overwrite=True),
        dataset=sysu_dataset,
        progress=False,
    )
    rerun = read_scalars(tmp_path / "run")
    assert_curve(rerun["loss/total"], [int(r["step"]) for r in again.history], [r["total"] for r in again.history])
    assert not [tag for tag in rerun if tag.startswith("eval/")]


def test_resumed_run_continues_the_curves_without_duplicated_steps(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path
) -> None:
    whole = train(tiny_config(sysu_root, tmp_path / "whole"), dataset=sysu_dataset, progress=False)

    cfg = tiny_config(sysu_root, tmp_path / "resumed", epochs=1)
    train(cfg, dataset=sysu_dataset, progress=False)
    checkpoint_step = int(load_checkpoint(tmp_path / "resumed" / CHECKPOINT_NAME)["step"])
    # a process killed in epoch 2 had already logged some of its steps after the checkpoint
    stale = SummaryWriter(str(tmp_path / "resumed" / TENSORBOARD_DIR))
    for step in range(checkpoint_step + 1, checkpoint_step + 4):
        stale.add_scalar("loss/total", 999.0, step)
    stale.close()

    resumed = train(dataclasses.replace(cfg, epochs=2), dataset=sysu_dataset, resume=True, progress=False)
    scalars = read_scalars(tmp_path / "resumed")

    assert resumed.history == whole.history  # deterministic: the resumed run is the uninterrupted one
    steps = [int(row["step"]) for row in whole.history]
    assert steps[0] <= checkpoint_step < steps[-1]
    for name in ("total", "lr"):
        tag = "train/lr" if name == "lr" else f"loss/{name}"
        assert_curve(scalars[tag], steps, [row[name] for row in whole.history])  # one point per step, no 999
    assert [step for step, _ in scalars["train/images_per_second"]] == [checkpoint_step, steps[-1]]


@pytest.mark.parametrize("failure", ["folder_is_a_file", "disk_full"])
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # TensorBoard's writer thread
def test_unwritable_logs_warn_once_and_training_finishes(
    sysu_root: Path, sysu_dataset: VIDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    out_dir = tmp_path / "run"
    if failure == "folder_is_a_file":  # the log folder cannot be created (as with a read-only file system)
        out_dir.mkdir()
        (out_dir / TENSORBOARD_DIR).write_text("not a folder")
    else:  # every write of an event record fails as on a full disk (in TensorBoard's writer thread)
        from tensorboard.summary.writer import record_writer

        def full(self: Any, data: bytes) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(record_writer.RecordWriter, "write", full)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(tiny_config(sysu_root, out_dir), dataset=sysu_dataset, progress=False)
    messages = [str(w.message) for w in caught if "TensorBoard" in str(w.message)]
    assert len(messages) == 1, messages
    assert str(out_dir / TENSORBOARD_DIR) in messages[0]
    assert ("No space left" in messages[0]) == (failure == "disk_full")
    assert result.epochs_run == 2
    assert load_checkpoint(out_dir / CHECKPOINT_NAME)["epoch"] == 2
