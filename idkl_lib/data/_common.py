"""Helpers shared by the dataset parsers: root and file checks, index-file reading, relabelling, the
training-modality check and :func:`dataset_statistics`.

Modality convention: ``0 = visible``, ``1 = infrared`` (:mod:`idkl_lib.data.records`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from .marker import check_marker
from .records import INFRARED, MODALITY_NAMES, VISIBLE, Sample, VIDataset

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_SHOWN = 5  # names shown per reason in a warning (``meta["skipped"]`` keeps them all)


class DatasetWarning(UserWarning):
    """A dataset parser left out files or identities that look like they belong to the dataset."""


class SkipReport:
    """What a parser leaves out, grouped by reason; :meth:`finish` warns once and returns ``meta["skipped"]``.

    Hidden entries (names starting with ``.``: ``.DS_Store``, ``.ipynb_checkpoints``) are not reported.
    """

    def __init__(self, dataset: str, root: Path) -> None:
        self.dataset, self.root = dataset, root
        self.items: dict[str, list[str]] = {}

    def add(self, reason: str, path: Path | str) -> None:
        """Record one left-out file or folder (a path, shown relative to the root) or identity (a string)."""
        if isinstance(path, Path):
            if path.name.startswith("."):
                return
            path = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
        self.items.setdefault(reason, []).append(path)

    def finish(self) -> dict[str, dict[str, object]]:
        """Emit one :class:`DatasetWarning` listing every reason (count and first names); return
        ``{reason: {"count": n, "items": [names]}}`` (empty when nothing was left out)."""
        if not self.items:
            return {}
        parts = []
        for reason, names in self.items.items():
            more = f", ... ({len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
            parts.append(f"{len(names)} {reason} ({', '.join(names[:_SHOWN])}{more})")
        total = sum(len(names) for names in self.items.values())
        warnings.warn(
            f"{self.dataset} at {self.root}: {total} item(s) left out: {'; '.join(parts)}. They are listed in "
            "dataset.meta['skipped']; remove or fix them if they should be part of the dataset.",
            DatasetWarning,
            stacklevel=3,
        )
        return {reason: {"count": len(names), "items": list(names)} for reason, names in self.items.items()}


def resolve_root(root: str | os.PathLike[str], dataset: str, layout_hint: str) -> Path:
    """Return ``root`` as an absolute path after checking it is an existing folder.

    Args:
        root: Dataset root folder.
        dataset: Dataset name used in messages (``"SYSU-MM01"``...).
        layout_hint: One-line description of what the folder should contain.

    Raises:
        TypeError: ``root`` is not a path.
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: ``root`` is a synthetic dataset that is incomplete or lost files (:func:`.marker.check_marker`).
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{dataset} root must be a str or os.PathLike path, got {type(root).__name__}")
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{dataset} root not found or not a folder: {path}. Pass the folder that holds {layout_hint}."
        )
    check_marker(path, dataset)
    return path


def require_file(root: Path, relative: str, dataset: str, what: str) -> Path:
    """Return ``root / relative`` or raise FileNotFoundError naming the expected file."""
    path = root / relative
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: expected <root>/{relative} ({what}) but {path} does not exist.")
    return path


def require_nonempty_dir(root: Path, relative: str, dataset: str, what: str) -> Path:
    """Return ``root / relative`` after checking it is a folder with at least one entry.

    Raises:
        FileNotFoundError: the folder is missing.
        ValueError: the folder is empty.
    """
    path = root / relative
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: expected folder <root>/{relative} ({what}) but {path} does not exist.")
    if next(path.iterdir(), None) is None:
        raise ValueError(
            f"{dataset}: camera folder {path} is empty; it should hold {what}. Re-copy it from the release."
        )
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files (by suffix) directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def integer_subfolders(folder: Path, skipped: SkipReport | None = None) -> list[tuple[int, Path]]:
    """``(int(name), path)`` for the sub-folders of ``folder`` whose names are integers, sorted by id.

    Other entries (``backup/``, ``notes.txt``...) are left out and recorded in ``skipped`` when given.
    """
    found = []
    for p in folder.iterdir():
        if p.name.isascii() and p.name.isdigit() and p.is_dir():
            found.append((int(p.name), p))
        elif skipped is not None:
            skipped.add("entries that are not integer identity folders", p)
    return sorted(found)


def unlisted_files(root: Path, folders: Iterable[str], listed: Iterable[str], skipped: SkipReport, what: str) -> None:
    """Record in ``skipped`` every file under ``root/<folder>/<ID>/`` that no index file lists.

    Args:
        root: Dataset root.
        folders: Modality folders to walk (``Visible``, ``Thermal``...).
        listed: Absolute paths of the listed images.
        skipped: Where to record the others.
        what: Which index files were read (for the reason text).
    """
    known = set(listed)
    for folder in folders:
        for _, id_dir in integer_subfolders(root / folder, skipped):
            for p in sorted(id_dir.iterdir()):
                if str(p) not in known:
                    skipped.add(f"files not listed in {what}", p)


def read_index_file(path: Path, dataset: str) -> list[tuple[str, int, int]]:
    """Read an index file whose lines are ``<relative path> <label>``.

    Returns:
        ``(relative_path, label, line_number)`` per non-blank line: the path with ``/`` separators and no leading
        ``./``, line numbers 1-based.

    Raises:
        ValueError: a line does not have exactly a path and an integer label, or the file lists no images.
    """
    entries: list[tuple[str, int, int]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.strip().rsplit(None, 1)
        if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
            raise ValueError(f"{dataset}: {path}:{number}: expected '<relative path> <integer label>', got {line!r}")
        relative = fields[0].replace("\\", "/").removeprefix("./")  # Windows separators, "./" prefixes
        entries.append((relative, int(fields[1]), number))
    if not entries:
        raise ValueError(f"{dataset}: index file {path} lists no images; re-copy it from the release.")
    return entries


def identity_from_parent(relative: str, index_file: Path, line: int, dataset: str) -> int:
    """The identity number of an image = its parent folder name, which must be an integer."""
    parent = Path(relative).parent.name
    if not (parent.isascii() and parent.isdigit()):
        raise ValueError(
            f"{dataset}: {index_file}:{line}: the parent folder of {relative!r} is not an integer identity "
            "(expected <modality folder>/<ID>/<file>)"
        )
    return int(parent)


def check_images_exist(samples: Iterable[Sample], dataset: str, source: str) -> None:
    """Raise FileNotFoundError listing (up to five of) the samples whose image file is missing."""
    missing = [s.path for s in samples if not os.path.isfile(s.path)]
    if missing:
        shown = ", ".join(missing[:5])
        raise FileNotFoundError(
            f"{dataset}: {len(missing)} image(s) listed in {source} do not exist, e.g. {shown}. "
            "Check that the index files and image folders come from the same release."
        )


def relabel_map(pids: Iterable[int]) -> dict[int, int]:
    """Map original identity numbers to ``0..N-1`` in sorted original-id order."""
    return {pid: label for label, pid in enumerate(sorted(set(pids)))}


def check_training_modalities(samples: Sequence[Sample], dataset: str, source: str) -> None:
    """Raise ValueError naming the training identities that have images of only one modality.

    Args:
        samples: Training records with their original identity numbers.
        dataset: Dataset name used in messages.
        source: Where the split comes from (file names), used in messages.
    """
    seen: dict[int, set[int]] = {}
    for s in samples:
        seen.setdefault(s.pid, set()).add(s.modality)
    visible_only = sorted(pid for pid, mods in seen.items() if mods == {VISIBLE})
    infrared_only = sorted(pid for pid, mods in seen.items() if mods == {INFRARED})
    if visible_only or infrared_only:
        raise ValueError(
            f"{dataset}: training identities with images of only one modality (from {source}): "
            f"visible-only {visible_only}, infrared-only {infrared_only}. Every training identity needs both "
            "visible and infrared images; fix the split files or remove these identities."
        )


def sorted_samples(samples: Iterable[Sample]) -> tuple[Sample, ...]:
    """Records sorted by path (the order every parser returns)."""
    return tuple(sorted(samples, key=lambda s: s.path))


def _split_statistics(samples: Sequence[Sample]) -> dict[str, object]:
    def describe(subset: Sequence[Sample]) -> dict[str, object]:
        return {
            "ids": len({s.pid for s in subset}),
            "images": len(subset),
            "cameras": sorted({s.camid for s in subset}),
        }

    stats = describe(samples)
    stats["per_modality"] = {
        name: describe([s for s in samples if s.modality == modality]) for modality, name in MODALITY_NAMES.items()
    }
    return stats


def dataset_statistics(ds: VIDataset) -> dict[str, object]:
    """Counts of identities, images and cameras per split and per modality (JSON-serialisable).

    Returns:
        ``{"name", "num_train_ids", "train" | "query" | "gallery": {"ids", "images", "cameras",
        "per_modality": {"visible" | "infrared": {"ids", "images", "cameras"}}}}``.
    """
    if not isinstance(ds, VIDataset):
        raise TypeError(f"dataset_statistics expects a VIDataset, got {type(ds).__name__}")
    return {
        "name": ds.name,
        "num_train_ids": ds.num_train_ids,
        "train": _split_statistics(ds.train),
        "query": _split_statistics(ds.query),
        "gallery": _split_statistics(ds.gallery),
    }
