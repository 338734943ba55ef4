"""A decoded-image cache: every training image decoded and resized once into one memory-mapped uint8 file.

JPEG decoding and resizing are the costly, deterministic part of the training transform (``Resize((H, W))`` is its
first step); the random part (flip, pad + crop, random erasing) is cheap on a GPU in batches
(:mod:`idkl_lib.data.gpu_augment`). The cache lives in a folder of the run (``<out_dir>/decoded_cache/``):

* ``images.u8``: a raw ``(N, H, W, 3)`` uint8 array (row ``i`` = ``samples[i]`` as RGB, resized to ``H x W`` with the
  same PIL resize as :func:`idkl_lib.data.transforms.build_transforms`), read through ``numpy.memmap``;
* ``index.json``: ``H``, ``W``, the number of images and a fingerprint of the dataset (every file's path, size in
  bytes and modification time in ns), plus the list itself so a mismatch can name the file.

:meth:`DecodedImageCache.build` reuses a cache whose fingerprint matches and rebuilds one that does not (with a
warning naming the first file that differs); :meth:`DecodedImageCache.open` raises :class:`CacheMismatchError`
naming the file instead. Both files are written atomically (temporary file, then rename), so an interrupted build
leaves the previous cache or nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..utils.io import atomic_write_json
from .image_dataset import load_rgb
from .records import Sample

CACHE_VERSION = 1
IMAGES_FILE = "images.u8"
INDEX_FILE = "index.json"


class CacheMismatchError(ValueError):
    """The decoded cache does not match the dataset (or the image size) it is used with."""


def _file_table(samples: Sequence[Sample]) -> list[list[object]]:
    table: list[list[object]] = []
    for s in samples:
        try:
            st = os.stat(s.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"decoded cache: image {s.path} does not exist; check the dataset folder") from None
        table.append([str(s.path), int(st.st_size), int(st.st_mtime_ns)])
    return table


def _fingerprint(table: list[list[object]], height: int, width: int) -> str:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, height, width, table]).encode())
    return digest.hexdigest()


def _first_difference(saved: list[list[object]], current: list[list[object]]) -> str:
    for i, (a, b) in enumerate(zip(saved, current, strict=False)):
        if a != b:
            what = "path" if a[0] != b[0] else "size" if a[1] != b[1] else "modification time"
            return f"image {i} ({b[0]}): {what} changed (cache: {a}, now: {b})"
    return f"the dataset has {len(current)} images, the cache {len(saved)}"


class DecodedImageCache:
    """Read-only view of a built cache; ``cache.read(rows)`` -> ``(len(rows), 3, H, W)`` uint8 tensor.

    Build it with :meth:`build` (or open an existing one with :meth:`open`); ``len(cache)`` is the number of images.
    """

    def __init__(self, folder: Path, height: int, width: int, count: int) -> None:
        self.folder, self.height, self.width = folder, height, width
        self.images = np.memmap(folder / IMAGES_FILE, dtype=np.uint8, mode="r", shape=(count, height, width, 3))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getstate__(self) -> dict[str, object]:  # worker processes reopen the file instead of copying the array
        return {"folder": self.folder, "height": self.height, "width": self.width, "count": len(self)}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["folder"], state["height"], state["width"], state["count"])  # type: ignore[misc,arg-type]

    def read(self, rows: np.ndarray | Sequence[int]) -> torch.Tensor:
        """The images of ``rows`` (dataset indices) as a ``(B, 3, H, W)`` uint8 tensor (channels-first view)."""
        return torch.from_numpy(np.ascontiguousarray(self.images[np.asarray(rows)])).permute(0, 3, 1, 2)

    @classmethod
    def open(
        cls, samples: Sequence[Sample], folder: str | os.PathLike[str], height: int, width: int
    ) -> DecodedImageCache:
        """Open the cache in ``folder``; :class:`CacheMismatchError` (naming the file) if it does not match."""
        folder = Path(folder)
        index_path = folder / INDEX_FILE
        if not index_path.is_file() or not (folder / IMAGES_FILE).is_file():
            raise CacheMismatchError(f"no decoded cache in {folder}; build it with DecodedImageCache.build")
        index = json.loads(index_path.read_text())
        if (index.get("height"), index.get("width")) != (height, width):
            raise CacheMismatchError(
                f"decoded cache {folder} holds {index.get('height')}x{index.get('width')} images, the run uses "
                f"{height}x{width}; delete the folder or build the cache again"
            )
        table = _file_table(samples)
        if index.get("fingerprint") != _fingerprint(table, height, width):
            raise CacheMismatchError(
                f"decoded cache {folder} does not match the dataset: {_first_difference(index['files'], table)}; "
                "build it again (DecodedImageCache.build rebuilds it)"
            )
        expected = len(table) * height * width * 3
        if (folder / IMAGES_FILE).stat().st_size != expected:
            raise CacheMismatchError(f"{folder / IMAGES_FILE} is truncated; build the cache again")
        return cls(folder, height, width, len(table))

    @classmethod
    def build(
        cls, samples: Sequence[Sample], folder: str | os.PathLike[str], height: int, width: int
    ) -> DecodedImageCache:
        """The cache of ``samples`` at ``height x width`` in ``folder``: reused when it matches, else (re)built."""
        folder = Path(folder)
        try:
            return cls.open(samples, folder, height, width)
        except CacheMismatchError as exc:
            if (folder / INDEX_FILE).exists():
                warnings.warn(f"rebuilding the decoded cache: {exc}", RuntimeWarning, stacklevel=2)
        if not samples:
            raise ValueError("decoded cache: no images to cache")
        table = _file_table(samples)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{IMAGES_FILE}.{os.getpid()}.tmp"
        try:
            images = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(samples), height, width, 3))
            for i, s in enumerate(samples):
                images[i] = np.asarray(load_rgb(s.path).resize((width, height), Image.Resampling.BILINEAR))
            images.flush()
            del images
            os.replace(tmp, folder / IMAGES_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        atomic_write_json(
            folder / INDEX_FILE,
            {
                "version": CACHE_VERSION,
                "height": height,
                "width": width,
                "count": len(table),
                "fingerprint": _fingerprint(table, height, width),
                "files": table,
            },
        )
        return cls(folder, height, width, len(table))


class CachedImageDataset(Dataset):
    """``dataset[i]`` -> ``(uint8 image (3, H, W), pid, camid, modality, i)`` from a :class:`DecodedImageCache`.

    The training loop augments the collated uint8 batch on its device (:class:`~idkl_lib.data.gpu_augment.
    BatchAugment`). The cache's memory map is reopened in each worker process (it is never pickled).
    """

    def __init__(self, samples: Sequence[Sample], cache: DecodedImageCache) -> None:
        if len(samples) != len(cache):
            raise CacheMismatchError(
                f"decoded cache {cache.folder} has {len(cache)} images, the dataset {len(samples)}"
            )
        self.samples, self.cache = list(samples), cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int, int]:
        s = self.samples[index]
        return self.cache.read([index])[0], s.pid, s.camid, s.modality, index
