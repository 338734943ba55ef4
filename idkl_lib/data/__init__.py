"""The data layer: dataset parsers and their registry (:mod:`~idkl_lib.data.registry`, the facts of each dataset),
the dataset card (:mod:`~idkl_lib.data.card`), the synthetic generator, the image dataset, the P x K cross-modality
sampler and the transforms.

Modality convention: ``0 = visible``, ``1 = infrared``.
"""

from __future__ import annotations

from ._common import dataset_statistics
from .image_dataset import ImageDataset
from .llcm import parse_llcm
from .records import INFRARED, VISIBLE, Sample, VIDataset
from .regdb import parse_regdb
from .registry import DATASETS, DatasetInfo, build_dataset, dataset_info
from .sampler import CrossModalityIdentitySampler
from .synthetic import write_synthetic
from .sysu import parse_sysu
from .sysu_perm import read_rand_perm_cam, write_rand_perm_cam
from .transforms import build_transforms

__all__ = [
    "DATASETS",
    "INFRARED",
    "VISIBLE",
    "CrossModalityIdentitySampler",
    "DatasetInfo",
    "ImageDataset",
    "Sample",
    "VIDataset",
    "build_dataset",
    "build_transforms",
    "dataset_info",
    "dataset_statistics",
    "parse_llcm",
    "parse_regdb",
    "parse_sysu",
    "read_rand_perm_cam",
    "write_rand_perm_cam",
    "write_synthetic",
]
