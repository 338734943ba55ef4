"""Which images to embed: folders, image files and list files, with identities, cameras and modalities read from the
path where the image sits in a dataset layout (SYSU-MM01, RegDB, LLCM; :func:`idkl_lib.data.layout.detect_layout`).

Labels follow the parsers' conventions (original identity numbers, SYSU-MM01 cameras 1..6, RegDB camera 2 visible /
3 thermal, LLCM the ``_cNN_`` camera of the file name); an image outside a layout gets ``-1`` for each
(:data:`UNKNOWN`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ._common import IMAGE_SUFFIXES
from .layout import detect_layout
from .llcm import camera_from_name
from .records import INFRARED, VISIBLE, Sample
from .registry import build_dataset
from .sysu import INFRARED_CAMERAS
from .validate import check_image

__all__ = ["SPLITS", "UNKNOWN", "ImageInputError", "ImageSet", "collect_images", "label_image"]

UNKNOWN = -1
"""Identity, camera or modality of an image whose path does not follow a dataset layout."""

SPLITS = ("all", "test", "query", "gallery", "train")
"""What to take from a dataset root: every image, or one split of the parser (RegDB: trial 1)."""

LIST_SUFFIXES = frozenset({".txt", ".lst"})
_REGDB = {"Visible": (2, VISIBLE), "Thermal": (3, INFRARED)}
_LLCM = {"vis": VISIBLE, "nir": INFRARED}


class ImageInputError(ValueError):
    """An image source cannot be used: empty folder, missing or undecodable image, unreadable list."""


@dataclass(frozen=True)
class ImageSet:
    """The images to embed, in order, as records (labels :data:`UNKNOWN` where the layout does not say).

    Attributes:
        samples: One record per image (absolute paths).
        layout: The dataset layout every image sits in (``"sysu"``, ``"regdb"``, ``"llcm"``), or None.
        root: That layout's root folder, or None.
        skipped: ``(path, reason)`` of the unreadable images left out (``skip_corrupt``).
    """

    samples: tuple[Sample, ...]
    layout: str | None
    root: str | None
    skipped: tuple[tuple[str, str], ...] = ()


@lru_cache(maxsize=4096)
def _layout_of(folder: str) -> tuple[str, str] | None:
    """``(layout, root)`` of the nearest of ``folder`` and its parents that holds a dataset layout."""
    path = Path(folder)
    for candidate in (path, *path.parents):
        layout = detect_layout(candidate)
        if layout is not None:
            return layout, str(candidate)
    return None


def _labels(layout: str, parts: tuple[str, ...]) -> tuple[int, int, int] | None:
    """``(pid, camid, modality)`` from a path relative to the layout's root, or None when it does not fit."""
    if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    top, pid, name = parts[0], int(parts[1]), parts[2]
    if layout == "sysu" and top.startswith("cam") and top[3:].isdigit():
        cam = int(top[3:])
        return pid, cam, INFRARED if cam in INFRARED_CAMERAS else VISIBLE
    if layout == "regdb" and top in _REGDB:
        return pid, *_REGDB[top]
    if layout == "llcm" and top in _LLCM:
        try:
            return pid, camera_from_name(name), _LLCM[top]
        except ValueError:
            return None
    return None


def label_image(path: str | os.PathLike[str]) -> tuple[Sample, str | None, str | None]:
    """The record of one image (absolute path; labels from its dataset layout, else :data:`UNKNOWN`) with the
    layout and its root (None, None outside a layout)."""
    absolute = Path(path).expanduser().resolve()
    found = _layout_of(str(absolute.parent))
    if found is not None:
        layout, root = found
        labels = _labels(layout, absolute.relative_to(root).parts)
        if labels is not None:
            return Sample(str(absolute), *labels), layout, root
    return Sample(str(absolute), UNKNOWN, UNKNOWN, UNKNOWN), None, None


def _walk(folder: Path) -> list[Path]:
    """Image files (by suffix) under ``folder``, recursively, sorted by path; hidden entries are left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if Path(f).suffix.lower() in IMAGE_SUFFIXES and f[0] != "."]
    return sorted(found)


def _split_paths(root: Path, layout: str, split: str) -> list[Path]:
    dataset = build_dataset(layout, root)
    records = {
        "test": dataset.query + dataset.gallery,
        "query": dataset.query,
        "gallery": dataset.gallery,
        "train": dataset.train,
    }[split]
    return [Path(s.path) for s in records]


def _read_list(path: Path) -> list[Path]:
    """Image paths listed one per line (relative ones from the list's folder); blank and ``#`` lines ignored."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [p if p.is_absolute() else path.parent / p for p in (Path(e) for e in lines if e and e[0] != "#")]


def _expand(source: Path, split: str) -> list[Path]:
    if not source.exists():
        raise FileNotFoundError(f"image source {source} does not exist; pass image files, folders or a .txt list")
    if source.is_dir():
        layout = detect_layout(source)
        if split != "all":
            if layout is None:
                raise ImageInputError(
                    f"--split {split} needs a dataset root (SYSU-MM01, RegDB or LLCM layout), but {source} is not one; "
                    "use --split all"
                )
            return _split_paths(source, layout, split)
        images = _walk(source)
        if not images:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            raise ImageInputError(f"folder {source} holds no images ({suffixes}); point --images at images")
        return images
    if source.suffix.lower() in LIST_SUFFIXES:
        listed = _read_list(source)
        if not listed:
            raise ImageInputError(f"list file {source} lists no images; write one image path per line")
        missing = [str(p) for p in listed if not p.is_file()]
        if missing:
            raise ImageInputError(
                f"list file {source} names {len(missing)} missing image(s), e.g. {missing[0]}; fix the list"
            )
        return listed
    return [source]


def collect_images(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    split: str = "all",
    skip_corrupt: bool = False,
    modality: int | None = None,
) -> ImageSet:
    """The images of ``sources``, each an image file, a folder (searched recursively) or a ``.txt`` list of paths.

    Args:
        sources: One source or several, taken in order; an image reached twice is kept once.
        split: For a dataset root: ``"all"`` its images, or a split of its parser (``"test"`` = query + gallery).
        skip_corrupt: Leave out images that cannot be decoded (listed in :attr:`ImageSet.skipped`) instead of failing.
        modality: Set the modality of every image whose layout does not give one (0 visible, 1 infrared).

    Raises:
        FileNotFoundError: a source does not exist.
        ImageInputError: an empty folder or list, a list naming missing files, ``split`` without a dataset root, an
            image that cannot be decoded (without ``skip_corrupt``), or no readable image at all.
    """
    if split not in SPLITS:
        raise ImageInputError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    items = [sources] if isinstance(sources, str | os.PathLike) else list(sources)
    if not items:
        raise ImageInputError("no image source given; pass image files, folders or a .txt list")
    paths: list[Path] = []
    for source in items:
        paths += _expand(Path(source).expanduser(), split)
    seen: set[str] = set()
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    layouts: set[tuple[str | None, str | None]] = set()
    for path in paths:
        sample, layout, root = label_image(path)
        if sample.path in seen:
            continue
        seen.add(sample.path)
        problem = check_image(sample.path)
        if problem is not None:
            if not skip_corrupt:
                raise ImageInputError(
                    f"{sample.path} is not a readable image ({problem}); remove it or pass --skip-corrupt"
                )
            skipped.append((sample.path, problem))
            continue
        if modality is not None and sample.modality == UNKNOWN:
            sample = Sample(sample.path, sample.pid, sample.camid, int(modality))
        samples.append(sample)
        layouts.add((layout, root))
    if not samples:
        raise ImageInputError(
            f"none of the {len(paths)} image(s) could be read (e.g. {skipped[0][0]}: {skipped[0][1]})"
        )
    layout, root = layouts.pop() if len(layouts) == 1 else (None, None)
    return ImageSet(tuple(samples), layout, root, tuple(skipped))
