"""A checkpoint save that runs out of room (a file-size limit, a full file system) ends in a CheckpointError that
names the file, the real cause and the free space; the previous checkpoint survives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from idkl_lib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

_LIMITED = """
import resource, signal, sys, torch
from idkl_lib.checkpoint import CheckpointError, save_checkpoint
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    save_checkpoint(sys.argv[1], model_state={"w": torch.zeros(100_000)}, epoch=2, step=20, config={})
except CheckpointError as exc:
    print(exc)
    sys.exit(3)
"""


def _first(path: Path) -> None:
    save_checkpoint(path, model_state={"w": torch.ones(10)}, epoch=1, step=10, config={"lr": 0.1})


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "run" / "checkpoint.pt"
    _first(path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    proc = subprocess.run([sys.executable, "-c", _LIMITED, str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode == 3, proc.stderr[-2000:]
    message = proc.stdout
    assert f"could not write checkpoint {path}: File too large" in message
    assert f"The file system of {path.parent} has " in message and " MiB free" in message
    assert "ulimit -f: 100000 bytes" in message and "inline_container" not in message
    assert load_checkpoint(path)["epoch"] == 1  # the previous checkpoint survives
    assert sorted(p.name for p in path.parent.iterdir()) == ["checkpoint.pt"]  # no temporary file left


def test_full_file_system(tmp_path: Path) -> None:
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        path = mount / "checkpoint.pt"
        _first(path)
        with pytest.raises(
            CheckpointError, match=rf"could not write checkpoint {path}: No space left on device"
        ) as info:
            save_checkpoint(path, model_state={"w": torch.zeros(1_000_000)}, epoch=2, step=20, config={})
        assert "MiB free" in str(info.value) and "another disk" in str(info.value)
        assert load_checkpoint(path)["epoch"] == 1
        assert sorted(p.name for p in mount.iterdir()) == ["checkpoint.pt"]
    finally:
        subprocess.run(["umount", str(mount)], check=False)
