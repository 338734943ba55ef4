"""The folder lock: a second writer fails naming the holder or waits for it, and a dead holder's lock is reclaimed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from idkl_lib.utils.lock import FolderLockTimeout, folder_lock, lock_holder, lock_path

_HOLD = """
import sys, time
from idkl_lib.utils.lock import folder_lock
with folder_lock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # hold until told to go (or killed)
"""


def _holder(folder: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_fails_naming_folder_and_holder_then_gets_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        holder = lock_holder(folder)
        assert holder is not None and holder.pid == proc.pid and holder.alive is True
        with pytest.raises(
            FolderLockTimeout, match=rf"{folder}.*pid {proc.pid} on host .*timeout=0.*{lock_path(folder)}"
        ):
            with folder_lock(folder, timeout=0):
                pass
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        with folder_lock(folder, timeout=60) as me:  # waits until the holder lets go
            assert me.pid == os.getpid() and lock_holder(folder).pid == os.getpid()  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()
    assert lock_holder(folder) is None and not lock_path(folder).exists()


def test_stale_lock_of_a_killed_process_is_reclaimed_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "dataset"
    proc = _holder(folder)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert lock_path(folder).exists()  # left behind
    holder = lock_holder(folder)
    assert holder is not None and holder.pid == proc.pid and holder.alive is False
    with pytest.warns(UserWarning, match=rf"stale lock of {folder} left by pid {proc.pid}"):
        with folder_lock(folder, timeout=0):
            assert lock_holder(folder).pid == os.getpid()  # type: ignore[union-attr]
    assert not lock_path(folder).exists()


def test_nested_lock_in_one_process_is_refused_clearly(tmp_path: Path) -> None:
    with folder_lock(tmp_path / "x", timeout=0):
        with pytest.raises(FolderLockTimeout, match="this same process"):
            with folder_lock(tmp_path / "x", timeout=0):
                pass
