"""The data layer: dataset parsers and their registry, the synthetic generator, the image dataset, the P x K
cross-modality sampler and the transforms.

Modality convention: ``0 = visible``, ``1 = infrared``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from ._common import dataset_statistics
from .image_dataset import ImageDataset
from .llcm import parse_llcm
from .records import INFRARED, VISIBLE, Sample, VIDataset
from .regdb import parse_regdb
from .sampler import CrossModalityIdentitySampler
from .synthetic import write_synthetic
from .sysu import parse_sysu
from .sysu_perm import read_rand_perm_cam, write_rand_perm_cam
from .transforms import build_transforms

DATASETS: dict[str, Callable[..., VIDataset]] = {"sysu": parse_sysu, "regdb": parse_regdb, "llcm": parse_llcm}


def build_dataset(name: str, root: str | os.PathLike[str], **kwargs: object) -> VIDataset:
    """Parse the dataset ``name`` found at ``root``.

    Args:
        name: A key of :data:`DATASETS`: ``"sysu"``, ``"regdb"`` or ``"llcm"`` (a folder written by
            :func:`write_synthetic` is parsed with the name of its layout).
        root: The dataset folder in its official layout.
        **kwargs: Passed to the parser (``trial=`` for RegDB).

    Raises:
        TypeError: ``name`` is not a str, or an option the parser does not take (the message lists those it takes).
        ValueError: unknown name (the message lists the valid ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"build_dataset: name must be a str ({', '.join(sorted(DATASETS))}), got {type(name).__name__}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    parser = DATASETS[name]
    accepted = [p for p in inspect.signature(parser).parameters if p != "root"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise TypeError(
            f"build_dataset({name!r}): unknown option(s) {', '.join(unknown)}; {parser.__name__} takes {takes}"
        )
    return parser(root, **kwargs)


__all__ = [
    "DATASETS",
    "INFRARED",
    "VISIBLE",
    "CrossModalityIdentitySampler",
    "ImageDataset",
    "Sample",
    "VIDataset",
    "build_dataset",
    "build_transforms",
    "dataset_statistics",
    "parse_llcm",
    "parse_regdb",
    "parse_sysu",
    "read_rand_perm_cam",
    "write_rand_perm_cam",
    "write_synthetic",
]
