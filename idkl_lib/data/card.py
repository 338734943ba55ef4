"""What a dataset should contain and what it does: the dataset card (found vs. expected counts), the expected
counts (published for a release, implied by the generator for a synthetic dataset), the dataset a notebook works on,
and small selections of records for the exploration figures."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .records import INFRARED, Sample
from .registry import DATASETS, dataset_info

__all__ = [
    "CARD_LABELS",
    "EXPECTED_STATISTICS",
    "dataset_card",
    "expected_statistics",
    "identity_camera_rows",
    "image_sizes",
    "subsample",
    "synthetic_root",
]

EXPECTED_STATISTICS: dict[str, dict[str, int]] = {name: dict(info.published) for name, info in DATASETS.items()}
"""Published statistics of the real releases (from the registry; sources in ``DATASETS[name].source``), keyed like
the flattened :func:`idkl_lib.data.dataset_statistics`."""


def expected_statistics(
    dataset: str, synthetic_layout: str = "sysu", synthetic_ids: int = 192, synthetic_images: int = 2
) -> dict[str, int]:
    """What :func:`idkl_lib.data.dataset_statistics` should find: the published numbers for a real dataset, the
    numbers implied by the generator's arguments for the synthetic one (keys as in :data:`EXPECTED_STATISTICS`)."""
    if dataset != "synthetic":
        return dict(dataset_info(dataset).published)
    counts = dataset_info(synthetic_layout).synthetic_counts
    return counts(synthetic_ids, synthetic_images) if counts else {}


def synthetic_root(
    data_root: str | os.PathLike[str], layout: str, num_train_ids: int, images_per_camera: int, evidence: float = 0.0
) -> Path:
    """Folder of a synthetic dataset under ``data_root``; the name encodes its size (and its modality-specific
    evidence level when not 0), so different datasets never collide."""
    suffix = f"-ev{evidence:g}" if evidence else ""
    return Path(data_root) / f"synthetic-{layout}-{num_train_ids}ids-{images_per_camera}img{suffix}"


def _lookup(stats: Mapping[str, Any], dotted: str) -> Any:
    value: Any = stats
    for part in dotted.split("."):
        value = value[part]
    return value


CARD_LABELS: dict[str, str] = {
    "num_train_ids": "training identities",
    "train.per_modality.visible.images": "training images, visible",
    "train.per_modality.infrared.images": "training images, infrared",
    "query.ids": "query identities (infrared)",
    "query.images": "query images (infrared)",
    "gallery.ids": "gallery identities (visible)",
    "gallery.images": "gallery images (visible)",
}
"""Readable names of the dataset-card quantities."""


def dataset_card(statistics: Mapping[str, Any], expected: Mapping[str, int]) -> list[dict[str, Any]]:
    """Compare dataset statistics with the expected numbers.

    Args:
        statistics: Output of :func:`idkl_lib.data.dataset_statistics`.
        expected: ``{dotted key: number}`` (see :func:`expected_statistics`).

    Returns:
        One row per expected number: ``{"key", "quantity" (readable), "found", "expected", "ok"}``.
    """
    rows = []
    for key, value in expected.items():
        found = _lookup(statistics, key)
        rows.append(
            {"key": key, "quantity": CARD_LABELS.get(key, key), "found": found, "expected": value, "ok": found == value}
        )
    return rows


def image_sizes(samples: Sequence[Sample], max_images: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(height, width)`` of the image files (read from the headers) of at most ``max_images`` random records.

    Returns:
        ``(sizes (N, 2) int, modality (N,) int)``.
    """
    from PIL import Image

    chosen = subsample(samples, max_images, seed)
    sizes = np.zeros((len(chosen), 2), dtype=np.int64)
    for i, sample in enumerate(chosen):
        with Image.open(sample.path) as img:
            sizes[i] = (img.size[1], img.size[0])
    return sizes, np.array([s.modality for s in chosen], dtype=np.int64)


def subsample(samples: Sequence[Sample], max_items: int, seed: int = 0) -> list[Sample]:
    """At most ``max_items`` records drawn without replacement (all of them, in order, when there are fewer)."""
    if len(samples) <= max_items:
        return list(samples)
    index = np.sort(np.random.default_rng(seed).choice(len(samples), max_items, replace=False))
    return [samples[i] for i in index]


def identity_camera_rows(
    samples: Sequence[Sample], pid: int, per_camera: int = 4
) -> tuple[list[list[Sample]], list[str]]:
    """Images of one identity grouped by camera (visible cameras first), for :func:`idkl_lib.viz.sample_grid`.

    Returns:
        ``(rows, labels)``: one row of at most ``per_camera`` records per camera and its label ``"cam 3 · IR"``.
    """
    by_cam: dict[tuple[int, int], list[Sample]] = {}
    for s in samples:
        if s.pid == pid:
            by_cam.setdefault((s.modality, s.camid), []).append(s)
    if not by_cam:
        raise ValueError(f"identity {pid} has no images in this split")
    keys = sorted(by_cam)
    labels = [f"cam {cam} · {'IR' if mod == INFRARED else 'VIS'}" for mod, cam in keys]
    return [by_cam[key][:per_camera] for key in keys], labels
