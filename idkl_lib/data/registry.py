"""The dataset registry: one entry per dataset holding its facts (parser, published statistics and their source, the
evaluation protocol, the camera rule, the published training recipe and the synthetic generator's counts).

Everything that differs between SYSU-MM01, RegDB and LLCM is read from :data:`DATASETS`; no other module switches
on a dataset name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .llcm import parse_llcm
from .records import VIDataset
from .regdb import parse_regdb
from .sysu import parse_sysu

__all__ = [
    "DATASETS",
    "RECIPE_FIELDS",
    "SYNTHETIC_RECIPE",
    "DatasetInfo",
    "build_dataset",
    "dataset_info",
    "training_recipe",
]


def _frozen(mapping: Mapping[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class DatasetInfo:
    """The facts of one dataset.

    Attributes:
        name: Registry key and :attr:`VIDataset.name` (``"sysu"``, ``"regdb"``, ``"llcm"``).
        title: Display name.
        parser: ``parser(root, **options)`` -> :class:`VIDataset`.
        options: The keyword options :func:`build_dataset` passes to this parser (``("trial",)`` for RegDB; every
            dataset accepts the same keywords and ignores the others).
        published: Counts of the official release, keyed like the flattened
            :func:`idkl_lib.data.dataset_statistics` (``"train.per_modality.visible.images"``).
        source: Where :attr:`published` comes from.
        protocol: The standard evaluation protocol, in words.
        main_view: Result name of the protocol a rank list shows (trial number appended).
        camera_alias: Camera ids the protocol's camera rule treats as another camera (SYSU-MM01: camera 3 is at
            the same location as camera 2).
        recipe: The reference training recipe as :class:`~idkl_lib.config.TrainConfig` field values, one per
            :data:`RECIPE_FIELDS` (docs/method.md#41-recipe-per-dataset); ``TrainConfig.for_dataset``, the command
            line, the notebooks and the pipeline start from it and the user's values override it.
        synthetic_counts: ``(num_train_ids, images_per_camera) -> {key: count}`` of the synthetic generator in this
            layout (:func:`idkl_lib.data.write_synthetic`), keyed like :attr:`published`.
    """

    name: str
    title: str
    parser: Callable[..., VIDataset]
    options: tuple[str, ...]
    published: Mapping[str, int]
    source: str
    protocol: str
    main_view: str
    camera_alias: Mapping[int, int] = field(default_factory=dict)
    recipe: Mapping[str, Any] = field(default_factory=dict)
    synthetic_counts: Callable[[int, int], dict[str, int]] | None = None

    def __post_init__(self) -> None:
        for name in ("published", "camera_alias", "recipe"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        if self.recipe and set(self.recipe) != set(RECIPE_FIELDS):
            raise ValueError(f"{self.name}: a recipe sets exactly the fields {RECIPE_FIELDS}, got {tuple(self.recipe)}")

    def __call__(self, root: str | os.PathLike[str], **options: Any) -> VIDataset:
        """Parse the dataset at ``root`` (only this dataset's :attr:`options` are passed to the parser)."""
        return self.parser(root, **{key: value for key, value in options.items() if key in self.options})

    def num_test_ids(self, num_train_ids: int) -> int:
        """Test identities of a synthetic dataset in this layout with ``num_train_ids`` training identities."""
        counts = self.synthetic_counts(num_train_ids, 1) if self.synthetic_counts else {}
        return int(counts.get("query.ids", max(1, num_train_ids // 2)))


def _sysu_synthetic(ids: int, images: int) -> dict[str, int]:
    test = max(1, ids // 2)  # every person in all six cameras: four visible, two infrared
    return {
        "num_train_ids": ids,
        "query.ids": test,
        "gallery.ids": test,
        "train.per_modality.visible.images": ids * 4 * images,
        "train.per_modality.infrared.images": ids * 2 * images,
        "query.images": test * 2 * images,
        "gallery.images": test * 4 * images,
    }


def _regdb_synthetic(ids: int, images: int) -> dict[str, int]:
    per_split = ids * images  # one visible and one thermal camera; train and test are equally large
    return {
        "num_train_ids": ids,
        "query.ids": ids,
        "gallery.ids": ids,
        "train.per_modality.visible.images": per_split,
        "train.per_modality.infrared.images": per_split,
        "query.images": per_split,
        "gallery.images": per_split,
    }


def _llcm_synthetic(ids: int, images: int) -> dict[str, int]:
    test = max(1, ids // 2)  # cameras record one or both modalities at random: only the identities are fixed
    return {"num_train_ids": ids, "query.ids": test, "gallery.ids": test}


RECIPE_FIELDS: tuple[str, ...] = (
    "arch",
    "base_width",
    "pretrained",
    "height",
    "width",
    "p",
    "k",
    "loss_preset",
    "margin",
    "lr",
    "weight_decay",
    "milestones",
    "gamma",
    "warmup_epochs",
    "epochs",
    "augment",
    "random_erasing",
)
"""The :class:`~idkl_lib.config.TrainConfig` fields a recipe sets (every recipe sets all of them)."""

# the reference's optimiser, schedule and augmentation are the same for the three datasets (no warm-up)
_RECIPE_COMMON: dict[str, Any] = {
    "arch": "resnet50",
    "base_width": None,
    "pretrained": True,
    "margin": 1.3,
    "lr": 3.5e-4,
    "weight_decay": 5e-3,
    "milestones": (55, 95),
    "gamma": 0.1,
    "warmup_epochs": 0,
    "epochs": 160,
    "augment": True,
    "random_erasing": 0.5,
}

SYNTHETIC_RECIPE: Mapping[str, Any] = _frozen(
    {
        **_RECIPE_COMMON,
        "arch": "resnet18",
        "base_width": 8,
        "pretrained": False,
        "height": 128,
        "width": 64,
        "p": 8,
        "k": 4,
        "loss_preset": "small_batch",  # the reference's weights for a batch other than 120 (here 32)
        "lr": 0.01,
        "milestones": (16,),
        "epochs": 20,
        "augment": False,
        "random_erasing": 0.0,
    }
)
"""The recipe of the synthetic dataset (any layout): the CPU demo of ``make demo`` and the notebooks, a narrow randomly
initialised ResNet-18 at 128 x 64 that learns in minutes (not a published recipe). Its batch is 32, so it takes the
reference's own weight rule for that batch: the ``small_batch`` weights (the ``sysu`` ones are made for P 12 x K 10)."""

DATASETS: Mapping[str, DatasetInfo] = _frozen(
    {
        "sysu": DatasetInfo(
            name="sysu",
            title="SYSU-MM01",
            parser=parse_sysu,
            options=(),
            published={
                "num_train_ids": 395,
                "train.per_modality.visible.images": 22258,
                "train.per_modality.infrared.images": 11909,
                "query.ids": 96,
                "query.images": 3803,
                "gallery.ids": 96,
            },
            source="Wu et al., RGB-Infrared Cross-Modality Person Re-Identification, ICCV 2017",
            protocol="infrared queries (cameras 3, 6) against visible galleries sampled per trial from "
            "exp/rand_perm_cam.mat; all-search (cameras 1, 2, 4, 5) and indoor-search (1, 2), single- and multi-shot; "
            "gallery images of the query's camera location are removed",
            main_view="sysu/all-search/single-shot",
            camera_alias={3: 2},
            recipe={**_RECIPE_COMMON, "height": 384, "width": 144, "p": 12, "k": 10, "loss_preset": "sysu"},
            synthetic_counts=_sysu_synthetic,
        ),
        "regdb": DatasetInfo(
            name="regdb",
            title="RegDB",
            parser=parse_regdb,
            options=("trial",),
            published={
                "num_train_ids": 206,
                "train.per_modality.visible.images": 2060,
                "train.per_modality.infrared.images": 2060,
                "query.ids": 206,
                "query.images": 2060,
                "gallery.ids": 206,
                "gallery.images": 2060,
            },
            source="Nguyen et al., Person Recognition System Based on a Combination of Body Images from Visible "
            "Light and Thermal Cameras, Sensors 2017 (one of the ten splits)",
            protocol="thermal -> visible and visible -> thermal over the whole test split; ten splits averaged",
            main_view="regdb/thermal-to-visible",
            recipe={**_RECIPE_COMMON, "height": 256, "width": 128, "p": 6, "k": 10, "loss_preset": "regdb"},
            synthetic_counts=_regdb_synthetic,
        ),
        "llcm": DatasetInfo(
            name="llcm",
            title="LLCM",
            parser=parse_llcm,
            options=(),
            published={
                "num_train_ids": 713,
                "train.per_modality.visible.images": 16946,
                "train.per_modality.infrared.images": 13975,
                "query.ids": 351,
                "gallery.ids": 351,
            },
            source="Zhang & Wang, Diverse Embedding Expansion Network and Low-Light Cross-Modality Benchmark, "
            "CVPR 2023",
            protocol="infrared -> visible and visible -> infrared; galleries of one random image per identity and "
            "camera, ten trials; only same-identity same-camera gallery images are removed",
            main_view="llcm/ir-to-vis",
            recipe={**_RECIPE_COMMON, "height": 384, "width": 144, "p": 12, "k": 10, "loss_preset": "llcm"},
            synthetic_counts=_llcm_synthetic,
        ),
    }
)
"""Every supported dataset, by name."""


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry of ``name``; ``TypeError``/``ValueError`` naming the valid names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str ({', '.join(sorted(DATASETS))}), got {type(name).__name__}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def training_recipe(name: str) -> Mapping[str, Any]:
    """The training recipe of ``name``: a key of :data:`DATASETS` (its :attr:`DatasetInfo.recipe`) or
    ``"synthetic"`` (:data:`SYNTHETIC_RECIPE`); ``ValueError`` naming the valid names otherwise."""
    if name == "synthetic":
        return SYNTHETIC_RECIPE
    if isinstance(name, str) and name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: synthetic, {', '.join(sorted(DATASETS))}")
    return dataset_info(name).recipe


def build_dataset(name: str, root: str | os.PathLike[str], *, trial: int = 1) -> VIDataset:
    """Parse the dataset ``name`` found at ``root``.

    Args:
        name: A key of :data:`DATASETS`: ``"sysu"``, ``"regdb"`` or ``"llcm"`` (a folder written by
            :func:`~idkl_lib.data.write_synthetic` is parsed with the name of its layout).
        root: The dataset folder in its official layout.
        trial: The split of a dataset that has several (RegDB: 1..10); ignored by the others.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    return dataset_info(name)(root, trial=trial)
