"""Run folders that protect what they hold.

A run folder (a training ``out_dir``, a pipeline ``run_dir``, a sweep cell) records what made it in ``run.json``:
its kind, a hash of its configuration, when it was created and the command line. :func:`claim_run_folder` is called
before anything is written: a folder that holds another run's results is refused with one message naming both runs
and the choices (``--resume``, a new folder, or ``--overwrite``); a folder made by another kind of run (a training
out-dir given to the pipeline) is always refused. :func:`guard_run_folder` also holds the folder's lock
(:func:`~idkl_lib.utils.lock.folder_lock`) while the run writes it, so a second writer fails naming the holder.

    with guard_run_folder(out_dir, "train", cfg.to_dict(), resume=resume, overwrite=cfg.overwrite):
        ...  # write checkpoints and metrics
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from idkl_lib.runs.layout import CHECKPOINT_NAME, METRICS_NAME, RUN_RECORD_NAME, STATUS_NAME, jsonable
from idkl_lib.runs.read import read_record
from idkl_lib.utils.errors import ShortMessage
from idkl_lib.utils.io import atomic_write_json
from idkl_lib.utils.lock import folder_lock

__all__ = ["RUN_RECORD_NAME", "RunFolderError", "claim_run_folder", "config_hash", "guard_run_folder", "read_record"]


RESULT_FILES: Mapping[str, tuple[str, ...]] = {
    "train": (CHECKPOINT_NAME, METRICS_NAME),
    "pipeline": (STATUS_NAME, METRICS_NAME),
}
"""The files that make a folder of each kind hold results (a folder without them may be reused freely)."""


class RunFolderError(ShortMessage, ValueError):
    """A run folder holds another run's results (or another kind of run) and this run would overwrite them (in a
    notebook: the message alone, no traceback)."""


def config_hash(config: Mapping[str, Any], ignore: Iterable[str] = ()) -> str:
    """A short hash of a configuration (keys in ``ignore`` left out), stable across processes."""
    skip = set(ignore)
    text = json.dumps(jsonable({k: v for k, v in config.items() if k not in skip}), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _infer_kind(folder: Path) -> str | None:
    """The kind of run whose results ``folder`` holds without a ``run.json`` (made by an older version)."""
    if (folder / CHECKPOINT_NAME).is_file():
        return "train"
    if (folder / STATUS_NAME).is_file():
        return "pipeline"
    return None


def _describe(record: Mapping[str, Any]) -> str:
    parts = [f"a {record.get('kind', '?')} run"]
    if record.get("config_hash"):
        parts.append(f"config {record['config_hash']}")
    if record.get("created"):
        parts.append(f"created {record['created']}")
    if record.get("command"):
        parts.append(f"by `{record['command']}`")
    return ", ".join(parts)


def claim_run_folder(
    folder: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    same_config_reuses: bool = False,
    ignore: Iterable[str] = (),
) -> dict[str, Any]:
    """Check that a run of ``kind`` may write into ``folder`` and record it there (``run.json``).

    Args:
        folder: The run folder (created if missing).
        kind: ``"train"``, ``"pipeline"``, ``"sweep_cell"``, ...
        config: What makes this run (hashed into ``config_hash``).
        resume: This run continues the folder's run (the caller checks the configuration itself).
        overwrite: Replace the folder's results: its old result files of this kind are deleted, so none outlives the
            run it belonged to.
        same_config_reuses: A folder holding results of the same kind and configuration hash may be written again
            (the pipeline re-running its own steps).
        ignore: Config keys that do not make a different run (paths, workers, ...).

    Returns:
        The record written.

    Raises:
        RunFolderError: the folder holds results of another kind of run, or another run's results without
            ``resume``/``overwrite``. Nothing is written then.
        NotADirectoryError: ``folder`` is a file.
    """
    path = Path(folder).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"run folder {path} is a file, not a folder; choose a folder path")
    digest = config_hash(config, ignore)
    this = {"kind": kind, "config_hash": digest}
    record = read_record(path)
    holds = [name for name in RESULT_FILES.get(kind, ()) if (path / name).is_file()]
    old_kind = (record or {}).get("kind") or _infer_kind(path)
    flag = "--run-dir" if kind == "pipeline" else "--out-dir"
    if old_kind is not None and old_kind != kind:
        raise RunFolderError(
            f"{path} holds {_describe(record or {'kind': old_kind})}, not a {kind} run's; this {kind} run "
            f"(config {digest}) would overwrite its files: choose a new {flag}"
        )
    if holds and not (resume or overwrite or (same_config_reuses and (record or {}).get("config_hash") == digest)):
        before = _describe(record) if record else f"an unrecorded {kind} run's results"
        notebook = " (notebook 02: resume='auto', another run_tag, or overwrite=True)" if kind == "train" else ""
        raise RunFolderError(
            f"{path} holds {before} ({', '.join(holds)}); this run (config {digest}) would overwrite them: pass "
            f"--resume to continue it, choose a new {flag}, or pass --overwrite to replace it{notebook}"
        )
    path.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = shlex.join([os.path.basename(sys.executable), *sys.argv]) if sys.argv and sys.argv[0] else ""
    if record and record.get("kind") == kind and not overwrite:
        new = {**record, **this, "resumed": [*record.get("resumed", []), {"at": now, "command": command}]}
    else:
        if overwrite:
            for name in holds:
                (path / name).unlink(missing_ok=True)
        new = {**this, "created": now, "command": command}
    atomic_write_json(path / RUN_RECORD_NAME, new)
    return new


@contextmanager
def guard_run_folder(
    folder: str | os.PathLike[str],
    kind: str,
    config: Mapping[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
    same_config_reuses: bool = False,
    ignore: Iterable[str] = (),
    timeout: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """Hold ``folder``'s lock and claim it (:func:`claim_run_folder`) for the ``with`` block.

    Raises:
        idkl_lib.utils.lock.FolderLockTimeout: another process writes the folder (named in the message).
        RunFolderError: see :func:`claim_run_folder`.
    """
    path = Path(folder).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"run folder {path} is a file, not a folder; choose a folder path")
    with folder_lock(path, timeout=timeout, purpose=f"written by a {kind} run"):
        yield claim_run_folder(
            path,
            kind,
            config,
            resume=resume,
            overwrite=overwrite,
            same_config_reuses=same_config_reuses,
            ignore=ignore,
        )
