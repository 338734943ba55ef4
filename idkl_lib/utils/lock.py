"""An exclusive lock for a folder being written (a synthetic dataset, a run folder).

The lock is a marker file next to the folder, ``<parent>/.<name>.lock``, so it can guard a folder that does not
exist yet or is about to be renamed into place. It is a :class:`filelock.SoftFileLock`: the marker records the
holder's pid, host name and process start time, a second writer waits for it (up to ``timeout`` seconds) and then
fails with :class:`FolderLockTimeout` naming the folder and the holder, and a marker left behind by a process that
died on this host (its pid is no longer running, or now belongs to another process) is recognised as stale and
reclaimed. The marker's modification time is when the holder took the lock.

    with folder_lock(run_dir, timeout=0, purpose="training"):
        ...  # only one process at a time gets here for run_dir
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from filelock import SoftFileLock, Timeout

__all__ = ["FolderLockTimeout", "LockHolder", "folder_lock", "lock_holder", "lock_path"]


class FolderLockTimeout(TimeoutError):
    """Another live process holds the lock of a folder and did not release it within the timeout."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or last held) a folder lock, read from its marker file.

    Attributes:
        pid: Process id, or None when the marker cannot be read.
        host: Host name recorded by the holder ("" when unknown).
        since: When the marker was written (UTC), or None.
        alive: Whether that process still runs; None when it runs on another host (cannot be checked here).
    """

    pid: int | None
    host: str
    since: _dt.datetime | None
    alive: bool | None

    def describe(self) -> str:
        """``"pid 123 on host vm since 2026-01-01 10:00:00 UTC"`` (unknown parts left out)."""
        parts = [f"pid {self.pid}" if self.pid is not None else "an unknown process"]
        if self.host:
            parts.append(f"on host {self.host}")
        if self.since is not None:
            parts.append(f"since {self.since:%Y-%m-%d %H:%M:%S} UTC")
        return " ".join(parts)


def lock_path(folder: str | os.PathLike[str]) -> Path:
    """The marker file that locks ``folder``: ``<parent>/.<name>.lock``."""
    path = Path(folder).expanduser().resolve()
    return path.parent / f".{path.name}.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def lock_holder(folder: str | os.PathLike[str]) -> LockHolder | None:
    """The holder recorded in ``folder``'s lock marker, or None when the folder is not locked."""
    marker = lock_path(folder)
    try:
        text = marker.read_text(encoding="utf-8", errors="replace")
        mtime = marker.stat().st_mtime
    except OSError:
        return None
    lines = text.splitlines()
    pid = int(lines[0]) if lines and lines[0].strip().isdigit() else None
    host = lines[1].strip() if len(lines) > 1 else ""
    alive = None if host and host != socket.gethostname() else (pid is not None and _pid_alive(pid))
    since = _dt.datetime.fromtimestamp(mtime, tz=_dt.timezone.utc)
    return LockHolder(pid=pid, host=host, since=since, alive=alive)


@contextmanager
def folder_lock(
    folder: str | os.PathLike[str], *, timeout: float = 0.0, purpose: str = "written"
) -> Iterator[LockHolder]:
    """Hold the exclusive lock of ``folder`` for the duration of the ``with`` block.

    Args:
        folder: The folder being written (it need not exist; its parent is created).
        timeout: Seconds to wait for another holder; 0 fails at once, a negative value waits as long as the holder
            lives.
        purpose: What the folder is being used for, used in the error message (``"written"``, ``"trained into"``).

    Yields:
        This process as the :class:`LockHolder`.

    Raises:
        FolderLockTimeout: a live process holds the lock (the message names the folder, the holder's pid, host and
            start time, and the marker file to delete if that process is known to be gone).
        OSError: the parent folder cannot be created or written.
    """
    folder_path = Path(folder).expanduser().resolve()
    marker = lock_path(folder_path)
    marker.parent.mkdir(parents=True, exist_ok=True)
    previous = lock_holder(folder_path)
    if previous is not None and previous.alive is False:
        warnings.warn(
            f"clearing the stale lock of {folder_path} left by {previous.describe()}, which is no longer running",
            stacklevel=3,
        )
    lock = SoftFileLock(str(marker), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        holder = lock_holder(folder_path)
        who = holder.describe() if holder is not None else "another process"
        if holder is not None and holder.pid == os.getpid() and holder.alive:
            who = f"this same process ({who}; the folder is already locked elsewhere in this program)"
        waited = f"after waiting {timeout:g} s" if timeout > 0 else "(no waiting asked for: timeout=0)"
        raise FolderLockTimeout(
            f"{folder_path} is being {purpose} by {who} {waited}. Wait until that process ends and try again, or use "
            f"another folder. If that process is known to be gone (e.g. it ran on another machine), delete the lock "
            f"file {marker}."
        ) from None
    try:
        yield LockHolder(
            pid=os.getpid(), host=socket.gethostname(), since=_dt.datetime.now(_dt.timezone.utc), alive=True
        )
    finally:
        with suppress(OSError):
            lock.release()
