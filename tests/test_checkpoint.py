"""Tests for idkl_lib.checkpoint: round trip, RNG restore, corrupt/foreign/newer files, key diffs, atomicity."""

# ruff: noqa: NPY002 - these tests exercise numpy's legacy global generator on purpose

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
import torch
from torch import nn

import idkl_lib
from idkl_lib.checkpoint import (
    CHECKPOINT_FORMAT_VERSION,
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
    save_checkpoint,
)


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 5, width: int = 8, neck: bool = False) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, width)
        self.neck = nn.BatchNorm1d(width) if neck else None
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)
        if self.neck is not None:
            x = self.neck(x)
        return self.classifier(x)


def draw() -> tuple[float, float, list[float], list[float]]:
    cpu = torch.rand(3).tolist()
    return random.random(), float(np.random.rand()), np.random.randn(2).tolist(), cpu


def save_small(path: Path, epoch: int, model: nn.Module | None = None, **kw: Any) -> Path:
    model = model or TinyNet()
    return save_checkpoint(path, model_state=model.state_dict(), epoch=epoch, step=10 * epoch, config={"lr": 0.1}, **kw)


def test_round_trip_restores_model_optimizer_and_rng(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TinyNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(6, 4)).sum().backward()
    optimizer.step()
    np.random.randn()  # leave a cached gaussian in numpy's state
    rng = capture_rng_state()
    expected = draw()

    path = save_checkpoint(
        tmp_path / "run" / "ckpt.pt",
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        epoch=3,
        step=42,
        rng_state=rng,
        config={"dataset": "synthetic", "lr": 1e-3, "milestones": [55, 95]},
        extra={"best_r1": np.float64(0.5), "history": [{"loss": 1.0}], "dist": np.eye(2)},
    )
    assert path == tmp_path / "run" / "ckpt.pt"
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)

    ckpt = load_checkpoint(path)
    assert ckpt["format_version"] == CHECKPOINT_FORMAT_VERSION
    assert ckpt["idkl_lib_version"] == idkl_lib.__version__
    assert (ckpt["epoch"], ckpt["step"]) == (3, 42)
    assert ckpt["config"] == {"dataset": "synthetic", "lr": 1e-3, "milestones": [55, 95]}
    assert ckpt["extra"]["history"] == [{"loss": 1.0}] and ckpt["scheduler_state"] is None
    assert type(ckpt["extra"]["best_r1"]) is float
    assert torch.equal(ckpt["extra"]["dist"], torch.eye(2, dtype=torch.float64))

    fresh = TinyNet(neck=False)
    load_model_state(fresh, ckpt["model_state"])
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(ckpt["optimizer_state"])
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])

    restore_rng_state(ckpt["rng_state"])
    assert draw() == expected


def test_missing_truncated_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.pt does not exist"):
        load_checkpoint(tmp_path / "nope.pt")

    good = save_small(tmp_path / "good.pt", epoch=1)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt is truncated or not a checkpoint.*delete it or pick"):
        load_checkpoint(truncated)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="truncated or not a checkpoint"):
        load_checkpoint(empty)

    bare = tmp_path / "bare.pt"
    torch.save(TinyNet().state_dict(), bare)
    with pytest.raises(CheckpointError, match="bare state_dict, not an idkl_lib checkpoint"):
        load_checkpoint(bare)
    pickled = tmp_path / "pickled.pt"
    torch.save({"format_version": 1, "obj": np.zeros(2)}, pickled)
    with pytest.raises(CheckpointError, match=r"holds pickled Python objects such as numpy"):
        load_checkpoint(pickled)
    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format_version": 1, "epoch": 1}, incomplete)
    with pytest.raises(CheckpointError, match=r"missing keys \['model_state', 'step', 'config'\]"):
        load_checkpoint(incomplete)


def test_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    payload = {"format_version": CHECKPOINT_FORMAT_VERSION + 1, "idkl_lib_version": "9.0.0", "model_state": {}}
    torch.save(payload | {"epoch": 1, "step": 1, "config": {}}, path)
    with pytest.raises(CheckpointError, match=rf"format version {CHECKPOINT_FORMAT_VERSION + 1}.*9\.0\.0.*upgrade"):
        load_checkpoint(path)


def test_key_and_shape_mismatches_are_listed() -> None:
    trained = TinyNet(num_classes=395, width=8, neck=True)
    model = TinyNet(num_classes=206, width=8, neck=False)
    with pytest.raises(ValueError) as info:
        load_model_state(model, trained.state_dict())
    message = str(info.value)
    assert "classifier.weight: (395, 8) vs (206, 8)" in message
    assert "checkpoint was trained with 395 classes" in message
    assert "classifier.bias: (395,) vs (206,)" in message
    assert "unexpected keys (5): neck.weight, neck.bias, neck.running_mean" in message
    assert "missing keys" not in message

    narrow = TinyNet(num_classes=5, width=6)
    with pytest.raises(ValueError, match=r"backbone\.weight: \(8, 4\) vs \(6, 4\)"):
        load_model_state(narrow, TinyNet(num_classes=5, width=8).state_dict())
    with pytest.raises(ValueError, match=r"missing keys \(5\): neck\.weight"):
        load_model_state(TinyNet(neck=True), TinyNet().state_dict())

    # strict=False: key differences are returned, shape differences still raise
    result = load_model_state(TinyNet(neck=True), TinyNet().state_dict(), strict=False)
    assert "neck.weight" in result.missing_keys
    with pytest.raises(ValueError, match="classifier.weight"):
        load_model_state(TinyNet(num_classes=3), TinyNet(num_classes=5).state_dict(), strict=False)
    with pytest.raises(TypeError, match=r"checkpoint\['model_state'\]"):
        load_model_state(TinyNet(), {"format_version": 1, "model_state": {}})  # type: ignore[dict-item]


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_small(tmp_path / "checkpoint.pth", epoch=1)
    before = path.read_bytes()

    def half_then_crash(obj: Any, fh: IO[bytes]) -> None:
        fh.write(before[: len(before) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(CheckpointError, match=r"could not write checkpoint .*checkpoint\.pth: disk full"):
        save_small(path, epoch=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pth"], "the temporary file must be removed"


def test_save_validates_arguments(tmp_path: Path) -> None:
    state = TinyNet().state_dict()
    with pytest.raises(TypeError, match=r"config\['root'\] is a pathlib\.\w*Path; .*str\(path\)"):
        save_checkpoint(tmp_path / "a.pt", model_state=state, epoch=0, step=0, config={"root": Path("x")})
    with pytest.raises(TypeError, match="config must be JSON-serialisable"):
        save_checkpoint(tmp_path / "a.pt", model_state=state, epoch=0, step=0, config={"w": torch.ones(1)})
    with pytest.raises(TypeError, match=r"extra\['h'\]\[1\] is a builtins\.object"):
        save_checkpoint(tmp_path / "a.pt", model_state=state, epoch=0, step=0, config={}, extra={"h": [1, object()]})
    with pytest.raises(ValueError, match="epoch must be a non-negative integer"):
        save_checkpoint(tmp_path / "a.pt", model_state=state, epoch=-1, step=0, config={})
    with pytest.raises(TypeError, match="model_state must be a state dict"):
        save_checkpoint(tmp_path / "a.pt", model_state=TinyNet(), epoch=0, step=0, config={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="capture_rng_state"):
        restore_rng_state({"python": random.getstate()})
    assert not (tmp_path / "a.pt").exists()


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "missing") is None
    assert latest_checkpoint(tmp_path) is None
    for epoch, step in ((2, None), (10, None), (10, 5), (9, 999)):
        checkpoint_path(tmp_path, epoch, step).write_bytes(b"x")
    (tmp_path / ".epoch_0099.pt.abc.tmp").write_bytes(b"x")  # an interrupted atomic write
    assert checkpoint_path(tmp_path, 2).name == "epoch_0002.pt"
    assert latest_checkpoint(tmp_path) == tmp_path / "epoch_0010_step_000005.pt"

    other = tmp_path / "other"
    other.mkdir()
    old, new = other / "a.pth", other / "checkpoint.pth"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    assert latest_checkpoint(other) == new
