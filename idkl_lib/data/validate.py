"""Checks that take seconds and save an epoch: every image of a dataset, SYSU-MM01's evaluation table, and the
out-dir a run will write to. Run them before the first training step.

* :func:`check_dataset` opens every train/query/gallery image's header (PIL ``open`` + ``verify``; JPEG files must
  also end with their end-of-image marker, which catches interrupted copies, and BMP files, uncompressed, are read
  whole; ``full=True`` decodes every image) and,
  for SYSU-MM01, checks ``exp/rand_perm_cam.mat`` against the gallery and the requested number of trials. Damaged
  images are an error naming them, or, with ``skip_corrupt=True``, are left out and listed.
* :func:`check_writable` checks that an out-dir can be created and written and has room for a checkpoint.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ._common import DatasetWarning, check_training_modalities
from .records import Sample, VIDataset
from .sysu_perm import read_rand_perm_cam

__all__ = ["DatasetCheck", "DatasetCheckError", "check_dataset", "check_image", "check_writable"]

_SHOWN = 5
_JPEG_TAIL = 1024  # an end-of-image marker must appear in the last bytes of a complete JPEG


class DatasetCheckError(ValueError):
    """The dataset has damaged images or evaluation files that do not fit it."""


@dataclass(frozen=True)
class DatasetCheck:
    """Result of :func:`check_dataset`.

    Attributes:
        dataset: The dataset checked; with ``skip_corrupt=True``, without the damaged images (and with them listed in
            ``meta["skipped"]["damaged images"]``).
        images_checked: Distinct image files opened.
        damaged: ``(path, reason)`` of every damaged image.
    """

    dataset: VIDataset
    images_checked: int
    damaged: tuple[tuple[str, str], ...]


def check_image(path: str | os.PathLike[str], full: bool = False) -> str | None:
    """Why the image at ``path`` cannot be used, or None when it looks intact.

    Args:
        path: Image file.
        full: Decode the whole image instead of checking the header (and a JPEG's end marker) only.
    """
    try:
        with Image.open(path) as image:
            if full:
                image.load()
            else:
                image.verify()
            fmt = image.format
        if fmt == "JPEG" and not full:
            with open(path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(path) - _JPEG_TAIL))
                if b"\xff\xd9" not in fh.read():
                    return "truncated JPEG (no end-of-image marker)"
        elif fmt == "BMP" and not full:  # uncompressed: decoding costs no more than reading, and finds truncation
            with Image.open(path) as image:
                image.load()
    except FileNotFoundError:
        return "missing"
    except Exception as exc:  # PIL raises many types for damaged files
        return f"{type(exc).__name__}: {exc}"
    return None


def _shown(items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _image_number(path: str) -> int | None:
    stem = Path(path).stem
    return int(stem) if stem.isascii() and stem.isdigit() else None


def _sysu_trial_problems(dataset: VIDataset, num_trials: int, fewer_trials: str) -> list[str]:
    """What in ``exp/rand_perm_cam.mat`` does not fit the gallery or ``num_trials``."""
    path = dataset.meta.get("rand_perm_cam")
    if path is None:
        return ["dataset.meta has no 'rand_perm_cam' path (parse the dataset with parse_sysu)"]
    try:
        table = read_rand_perm_cam(str(path))
    except (OSError, ValueError) as exc:
        return [str(exc)]
    numbers: dict[tuple[int, int], set[int]] = {}
    for s in dataset.gallery:
        number = _image_number(s.path)
        if number is not None:
            numbers.setdefault((s.camid, s.pid), set()).add(number)
    problems = []
    unlisted = sorted(pair for pair in numbers if pair not in table)
    if unlisted:
        problems.append(
            f"{path} has no entry for {len(unlisted)} (camera, identity) pairs with gallery images "
            f"({_shown([str(p) for p in unlisted])}); re-copy exp/ from the same release as the images"
        )
    listed = [pair for pair in numbers if pair in table]
    if listed:
        fewest = min(listed, key=lambda pair: table[pair].shape[0])
        trials = int(table[fewest].shape[0])
        if trials < num_trials:
            problems.append(
                f"{path} holds {trials} trials (camera {fewest[0]}, identity {fewest[1]}) but the evaluation asks for "
                f"{num_trials}; {fewer_trials.format(trials=trials)} or re-copy exp/rand_perm_cam.mat from the release"
            )
    absent = [
        f"cam{cam}/{pid:04d}/{int(n):04d}.jpg"
        for cam, pid in listed
        for n in sorted({int(v) for v in table[(cam, pid)][:num_trials].ravel()})
        if int(n) not in numbers[(cam, pid)]
    ]
    if absent:
        problems.append(
            f"{len(absent)} gallery images that {path} picks for the {num_trials} trials are missing or were left out "
            f"({_shown(absent)}); restore them from the release"
        )
    return problems


def check_dataset(
    dataset: VIDataset,
    *,
    num_trials: int | None = None,
    skip_corrupt: bool = False,
    full: bool = False,
    fewer_trials: str = "use num_trials <= {trials}",
) -> DatasetCheck:
    """Check every image of ``dataset`` and, for SYSU-MM01, the evaluation table, before training.

    Args:
        dataset: A parsed dataset.
        num_trials: SYSU-MM01 evaluation trials that will be run (checked against ``exp/rand_perm_cam.mat``); None
            skips that check.
        skip_corrupt: Leave damaged images out (listed in a :class:`DatasetWarning` and in the returned dataset's
            ``meta["skipped"]``) instead of raising. Damaged SYSU-MM01 gallery images cannot be left out (the official
            trials pick them).
        full: Decode every image completely (slower) instead of checking headers.
        fewer_trials: The caller's advice when the table holds fewer trials than ``num_trials`` (``{trials}`` is
            replaced by the number it holds): name only options the caller has.

    Returns:
        A :class:`DatasetCheck`.

    Raises:
        TypeError: ``dataset`` is not a :class:`VIDataset`.
        DatasetCheckError: damaged images (without ``skip_corrupt``), an evaluation table that does not fit, or a
            training identity left with one modality after skipping.
    """
    if not isinstance(dataset, VIDataset):
        raise TypeError(
            f"check_dataset expects a VIDataset (from idkl_lib.data.build_dataset), got {type(dataset).__name__}"
        )
    if num_trials is not None and (isinstance(num_trials, bool) or not isinstance(num_trials, int) or num_trials < 1):
        raise ValueError(f"check_dataset: num_trials must be a positive int or None, got {num_trials!r}")
    paths = sorted({s.path for s in (*dataset.train, *dataset.query, *dataset.gallery)})
    damaged = [(p, why) for p in paths if (why := check_image(p, full)) is not None]
    bad = {p for p, _ in damaged}
    described = [f"{p} ({why})" for p, why in damaged]
    problems = _sysu_trial_problems(dataset, num_trials, fewer_trials) if dataset.name == "sysu" and num_trials else []
    if dataset.name == "sysu" and skip_corrupt:
        in_gallery = [p for p in (s.path for s in dataset.gallery) if p in bad]
        if in_gallery:
            problems.append(
                f"{len(in_gallery)} damaged gallery images ({_shown(in_gallery)}) cannot be skipped: the official "
                "SYSU-MM01 trials (exp/rand_perm_cam.mat) pick them; restore them from the release"
            )
    if damaged and not skip_corrupt:
        problems.append(
            f"{len(damaged)} of {len(paths)} images are damaged: {_shown(described)}; restore them from the release, "
            "or skip them (skip_corrupt=True) and they are listed"
        )
    if problems:
        raise DatasetCheckError(f"{dataset.name} at {dataset.root}: " + "; ".join(problems))
    if damaged:

        def keep(samples: Iterable[Sample]) -> tuple[Sample, ...]:
            return tuple(s for s in samples if s.path not in bad)

        train = keep(dataset.train)
        try:
            check_training_modalities(train, dataset.name, "the training split after skipping damaged images")
        except ValueError as exc:
            raise DatasetCheckError(str(exc)) from None
        skipped = dict(dataset.meta.get("skipped") or {})  # type: ignore[call-overload]
        skipped["damaged images"] = {"count": len(damaged), "items": described}
        dataset = dataclasses.replace(
            dataset,
            train=train,
            query=keep(dataset.query),
            gallery=keep(dataset.gallery),
            meta={**dataset.meta, "skipped": skipped},
        )
        warnings.warn(
            f"{dataset.name} at {dataset.root}: skipping {len(damaged)} damaged image(s): {_shown(described)} "
            "(listed in dataset.meta['skipped']['damaged images'])",
            DatasetWarning,
            stacklevel=2,
        )
    return DatasetCheck(dataset=dataset, images_checked=len(paths), damaged=tuple(damaged))


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def check_writable(out_dir: str | os.PathLike[str], needed_bytes: int = 0) -> Path:
    """Check that ``out_dir`` can be created and written and that its file system has ``needed_bytes`` free.

    Nothing is created: a missing ``out_dir`` is checked through its nearest existing parent.

    Args:
        out_dir: The folder a run will write to.
        needed_bytes: Room needed (e.g. two checkpoints: the new one is written before the old one is replaced).

    Returns:
        ``out_dir`` as an absolute path.

    Raises:
        TypeError: ``out_dir`` is not a path.
        NotADirectoryError: ``out_dir`` (or a parent) is a file.
        PermissionError: the folder cannot be written (read-only file system or permissions).
        OSError: too little free space (``errno.ENOSPC``).
    """
    if not isinstance(out_dir, (str, os.PathLike)):
        raise TypeError(f"out_dir must be a str or os.PathLike path, got {type(out_dir).__name__}")
    path = Path(out_dir).expanduser().resolve()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing == path else f"cannot be created: {existing} is a file"
        raise NotADirectoryError(f"out-dir {path} {what}, not a folder; choose a folder path")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        where = "" if existing == path else f" (checked in {existing}, the nearest existing parent)"
        raise PermissionError(
            f"out-dir {path} is not writable{where}: {exc.strerror or exc}; fix its permissions or choose another "
            "folder"
        ) from None
    free = shutil.disk_usage(existing).free
    if needed_bytes > free:
        raise OSError(
            errno.ENOSPC,
            f"out-dir {path}: only {_size(free)} free on its file system, about {_size(needed_bytes)} needed for the "
            "checkpoints; free some space or choose a folder on another disk",
        )
    return path
