"""A training run's configuration: :class:`TrainConfig`, whose fields carry their default, help text and rule
(the command line and the notebooks' parameter checks are derived from them)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

from .fields import (
    _at_least,
    _device,
    _loss_overrides,
    _milestones,
    _model_field,
    _non_negative,
    _resume_changes,
    _side,
    format_loss_overrides,
    option,
    parse_loss_overrides,
)
from .model import ARCHS, ModelConfig
from .weights import LossWeights

AMP_MODES: tuple[str, ...] = ("auto", "bf16", "fp16", "off")
"""Mixed-precision modes :class:`TrainConfig` accepts."""

IDENTITY_CHOICES: tuple[str, ...] = ("uniform", "proportional")
"""How the sampler picks a batch's identities (:attr:`TrainConfig.identity_choice`)."""


DISTRIBUTED_BATCHES: tuple[str, ...] = ("global", "per_process")
"""How a multi-process run forms its batch (:attr:`TrainConfig.distributed_batch`)."""


def _dataset_names() -> tuple[str, ...]:
    from idkl_lib.data.registry import DATASETS

    return tuple(DATASETS)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, validated on construction (errors name the field and the fix).

    Defaults reproduce the reference SYSU-MM01 recipe (``docs/method.md``); :meth:`for_dataset` starts from the recipe
    of another dataset (RegDB: 256 x 128, P = 6, ``regdb`` weights), as the command line
    (``python -m idkl_lib.train --help``, one ``--option`` per field), the notebooks and the pipeline do; the values
    the user sets override the recipe. Each field carries its help text
    and its rule in its metadata (:meth:`help`, :meth:`field_problem`): the command-line help and the notebooks'
    parameter checks are derived from them.
    """

    DATASETS: ClassVar[tuple[str, ...]] = _dataset_names()
    AMP_MODES: ClassVar[tuple[str, ...]] = AMP_MODES
    IDENTITY_CHOICES: ClassVar[tuple[str, ...]] = IDENTITY_CHOICES
    RESUMABLE_CHANGES: ClassVar[tuple[str, ...]] = (
        "epochs",
        "data_root",
        "out_dir",
        "num_workers",
        "device",
        "deterministic",
        "eval_every",
        "final_eval",
        "eval_batch_size",
        "log_every",
        "overwrite",
        "skip_corrupt",
        "divergence_factor",
        "resume_changes",
    )
    """Fields that may differ between a run and its resumption (they steer the run, not the arithmetic of training);
    all others must match the checkpoint's."""
    # field annotation (a string under ``from __future__ import annotations``) -> the accepted value types
    _FIELD_KINDS: ClassVar[Mapping[str, tuple[type, ...]]] = MappingProxyType(
        {
            "str": (str,),
            "int": (int,),
            "float": (int, float),
            "bool": (bool,),
            "int | None": (int, type(None)),
            "bool | str": (bool, str),
            "tuple[int, ...]": (tuple,),
            "dict[str, float]": (dict, str),
        }
    )
    _KIND_WORDS: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"int": " (an integer)", "float": " (a number)", "bool": " (True or False)", "str": " (text)"}
    )

    dataset: str = option(
        "sysu", "Dataset layout (a synthetic folder is named by its layout).", choices=_dataset_names()
    )
    data_root: str = option("data/SYSU-MM01", "Folder holding the dataset in its official layout.")
    regdb_trial: int = option(
        1,
        "RegDB split 1..10 (ignored for the other datasets).",
        lambda v: None if 1 <= v <= 10 else "RegDB has splits 1..10",
    )
    arch: str = option("resnet50", "Backbone, resnet50 (the paper) or resnet18.", _model_field("arch"), ARCHS)
    base_width: int | None = option(
        None,
        "Stem width of a narrow, randomly initialised variant for CPU runs (e.g. 16); None = 64.",
        _model_field("base_width"),
    )
    pretrained: bool | str = option(
        True,
        "ImageNet initialisation: true, false or the path of a torchvision state dict (.pth).",
        _model_field("pretrained"),
    )
    height: int = option(
        384, "Training and test image height (multiple of 16, >= 32; reference SYSU/LLCM 384, RegDB 256).", _side
    )
    width: int = option(144, "Image width (multiple of 16, >= 32; reference 144 / 128).", _side)
    p: int = option(
        12,
        "Identities per batch: the global batch, whose identity blocks are split among the processes of a "
        "distributed run (see distributed_batch).",
        lambda v: None if v >= 2 else "P identities per batch must be >= 2 (the triplet loss needs negatives)",
    )
    k: int = option(
        10,
        "Images per identity per batch, K/2 infrared + K/2 visible (even).",
        lambda v: (
            None
            if v >= 2 and v % 2 == 0
            else "K images per identity must be even (an even integer >= 2: K/2 visible + K/2 infrared)"
        ),
    )
    identity_choice: str = option(
        "uniform",
        "How the sampler picks the P identities of a batch: uniform (the reference) or proportional to their "
        "remaining chunks.",
        choices=IDENTITY_CHOICES,
    )
    epochs: int = option(
        160,
        "Total number of training epochs (resuming continues up to this number).",
        _at_least(1, " (train for at least one epoch)"),
    )
    lr: float = option(
        3.5e-4,
        "Adam learning rate.",
        lambda v: (
            None
            if 0 < v <= 10
            else "the learning rate must be a positive number"
            + (" <= 10 (Adam's weights explode far below that; the recipe uses 3.5e-4)" if v > 10 else "")
        ),
    )
    weight_decay: float = option(5e-3, "Adam's (coupled, L2) weight decay on every parameter.", _non_negative)
    milestones: tuple[int, ...] = option(
        (55, 95),
        "Epochs (0-based epoch index) from which the learning rate is multiplied by gamma once more.",
        _milestones,
    )
    gamma: float = option(
        0.1,
        "Learning-rate factor per milestone.",
        lambda v: None if 0 < v <= 1 else "the learning-rate factor per milestone must lie in (0, 1]",
    )
    warmup_epochs: int = option(
        0, "Linear warm-up: epoch e < warmup_epochs uses (e + 1) / warmup_epochs of the rate.", _at_least(0)
    )
    loss_preset: str = option(
        "sysu",
        "LossWeights.preset name (sysu, llcm, regdb, small_batch, baseline, no_distill).",
        choices=LossWeights.PRESETS,
    )
    loss_overrides: dict[str, float] = option(
        {},
        "Weights on top of the preset, {name: weight}; on the command line a comma-separated name=weight list, "
        "e.g. 'tgsa_inter=0,csa2_inter=0'.",
        _loss_overrides,
    )
    margin: float = option(1.3, "Triplet margin (reference 1.3).", _non_negative)
    amp: str = option(
        "auto",
        "Mixed precision: auto (bf16 on CUDA, off on CPU), bf16, fp16 (with a GradScaler) or off.",
        choices=AMP_MODES,
    )
    channels_last: bool = option(True, "Run the model in channels-last memory format (faster convolutions on GPUs).")
    grad_clip: float = option(0.0, "Clip the global gradient norm to this value; 0 = no clipping.", _non_negative)
    augment: bool = option(
        True, "Training augmentation (flip, pad + crop, random erasing); false = the test transform."
    )
    random_erasing: float = option(
        0.5,
        "Probability of random erasing (with augment).",
        lambda v: None if 0.0 <= v <= 1.0 else "a probability in [0, 1]",
    )
    channel_augment: bool = option(False, "Channel augmentation of visible images (with augment).")
    decoded_cache: bool = option(
        False,
        "Decode and resize every training image once into <out_dir>/decoded_cache/ (a memory-mapped uint8 file, "
        "rebuilt when the dataset changes) and apply flip, pad + crop and random erasing to whole batches on the "
        "training device (same distribution as the PIL path): for GPUs that JPEG decoding cannot feed. Not with "
        "channel_augment.",
    )
    distributed_batch: str = option(
        "global",
        "Multi-process runs: 'global' keeps the recipe's P x K batch, each process forwarding P/N identity blocks "
        "and every process computing the losses on the gathered global batch (the one-process objective); "
        "'per_process' gives every process its own P x K batch and losses (a global batch N times the recipe's: a "
        "deviation from the method).",
        choices=DISTRIBUTED_BATCHES,
    )
    sync_batchnorm: bool = option(
        True,
        "Multi-process runs: BatchNorm statistics over the global batch (SyncBatchNorm); false keeps per-process "
        "statistics (a deviation from the one-process objective).",
    )
    num_workers: int = option(4, "DataLoader worker processes (0 = load in the training process).", _at_least(0))
    seed: int = option(
        1,
        "Base seed in [0, 2**32); every epoch re-seeds from (seed, epoch, rank).",
        lambda v: None if 0 <= v < 2**32 else "must lie in [0, 2**32)",
    )
    deterministic: bool = option(
        False, "Ask torch for deterministic algorithms (bit-reproducible runs and resumes, slower on GPU)."
    )
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", _device)
    out_dir: str = option(
        "runs/default", "Run folder: the checkpoint (rewritten atomically after every epoch) and the metrics."
    )
    eval_every: int = option(
        0,
        "Also evaluate on the test protocol every N epochs (0 = never), for learning curves only: the result is "
        "recorded in the metrics' 'during_training' and never used to select a checkpoint (the checkpoint is "
        "always the last epoch's, so no test data leaks into training).",
        _at_least(0),
    )
    final_eval: bool = option(
        True, "Evaluate the final model with the dataset's standard protocols and write the metrics."
    )
    eval_batch_size: int = option(64, "Batch size of feature extraction.", _at_least(1))
    log_every: int = option(
        10,
        "Move the loss values to the host, check them for NaN/inf and log them every N steps (and at the end of "
        "every epoch).",
        _at_least(1),
    )

    overwrite: bool = option(
        False,
        "Replace the results of another run in out_dir (its checkpoint and metrics); without it (or --resume) "
        "an out_dir holding a run's results is refused.",
    )
    skip_corrupt: bool = option(
        False,
        "Leave damaged images out of the dataset (found before training, listed in a warning) instead of stopping.",
    )
    divergence_factor: float = option(
        1e3,
        "Stop like a NaN when the total loss exceeds this many times the median of the last 50 logged losses (after "
        "10 logged steps; the median counts as at least 1); 0 = off.",
        lambda v: None if v == 0 or (v > 1 and math.isfinite(v)) else "must be 0 (off) or a finite number > 1",
    )
    resume_changes: str = option(
        "",
        "On resume, allow these fields to differ from the checkpoint (comma-separated subset of lr,grad_clip,amp: a "
        "diverged run's remedies); the change and its epoch are recorded in the checkpoint.",
        _resume_changes,
    )

    def allowed_resume_changes(self) -> tuple[str, ...]:
        """The fields :attr:`resume_changes` names."""
        return tuple(n.strip() for n in self.resume_changes.split(",") if n.strip())

    def __post_init__(self) -> None:
        for name in ("data_root", "out_dir", "pretrained"):
            if isinstance(getattr(self, name), os.PathLike):  # paths are stored as str: the config is saved as JSON
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        if isinstance(self.milestones, list):
            object.__setattr__(self, "milestones", tuple(self.milestones))
        for f in fields(self):
            value = getattr(self, f.name)
            problem = self._type_problem(f.name, value) or (f.metadata["check"] or _no_check)(value)
            if problem:
                raise ValueError(f"TrainConfig.{f.name}={value!r}: {problem}")
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and self._FIELD_KINDS[str(f.type)] == (int, float)
            ):
                object.__setattr__(self, f.name, float(value))  # 1 -> 1.0: one type per field in configs and JSON
        if isinstance(self.loss_overrides, str):  # the command line's (and older checkpoints') text form
            object.__setattr__(self, "loss_overrides", parse_loss_overrides(self.loss_overrides))
        object.__setattr__(self, "loss_overrides", {k: float(v) for k, v in self.loss_overrides.items()})
        if self.decoded_cache and self.channel_augment:
            raise ValueError(
                "TrainConfig.decoded_cache=True: the decoded cache's batched augmentation has no channel_augment; "
                "switch one of them off"
            )
        self.model_config(2)  # validates arch / base_width / pretrained together

    @classmethod
    def _type_problem(cls, name: str, value: Any) -> str | None:
        kind = str(cls.__dataclass_fields__[name].type)
        kinds = cls._FIELD_KINDS[kind]
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            return f"must be of type {kind}{cls._KIND_WORDS.get(kind, '')}"
        return None

    @classmethod
    def field_problem(cls, name: str, value: Any) -> str | None:
        """What is wrong with ``value`` for the field ``name`` on its own (type and rule), or None if it is fine.

        The notebooks' parameter checks call this, so every rule is written once, here."""
        if isinstance(value, list) and str(cls.__dataclass_fields__[name].type).startswith("tuple"):
            value = tuple(value)
        return cls._type_problem(name, value) or (cls.__dataclass_fields__[name].metadata["check"] or _no_check)(value)

    @classmethod
    def for_dataset(cls, dataset: str, **overrides: Any) -> TrainConfig:
        """A config starting from the reference recipe of ``dataset`` (``DatasetInfo.recipe`` in the registry:
        image size, P x K, loss preset, optimiser, schedule, epochs, backbone, augmentation); ``overrides`` (any
        field) win over it, e.g. ``TrainConfig.for_dataset("regdb", k=4, data_root="/data/RegDB")``.

        Raises:
            ValueError: An unknown dataset (naming the valid ones) or a bad value (naming the field).
        """
        from idkl_lib.data.registry import dataset_info

        return cls(**{**dataset_info(dataset).recipe, **overrides, "dataset": dataset})

    @classmethod
    def help(cls) -> dict[str, str]:
        """``{field: help text}`` (the command line's ``--help``)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrainConfig:
        """A config from :meth:`to_dict` output, e.g. a checkpoint's ``config``: unknown keys (from other versions)
        are dropped and older forms (milestones as a list, loss overrides as text) are accepted."""
        return cls(**{key: value for key, value in config.items() if key in cls.__dataclass_fields__})

    def model_config(self, num_classes: int) -> ModelConfig:
        """The :class:`ModelConfig` for a dataset with ``num_classes`` training identities."""
        try:
            return ModelConfig(
                arch=self.arch, num_classes=num_classes, pretrained=self.pretrained, base_width=self.base_width
            )
        except ValueError as exc:
            message = str(exc)
            if any(message.startswith(f"ModelConfig.{name}=") for name in ("arch", "base_width", "pretrained")):
                raise ValueError("TrainConfig." + message.removeprefix("ModelConfig.")) from None  # name our field
            raise

    def loss_weights(self) -> LossWeights:
        """``LossWeights.preset(loss_preset)`` with ``loss_overrides`` applied."""
        weights = LossWeights.preset(self.loss_preset)
        return weights.replace(**self.loss_overrides) if self.loss_overrides else weights

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (stored in checkpoints and reports); ``loss_overrides`` in its command-line
        text form (``"tgsa_inter=0.3"``), so a checkpoint's config reads the same as in earlier versions."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["loss_overrides"] = format_loss_overrides(self.loss_overrides)
        return d

    def resume_mismatches(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields whose value differs from ``saved`` (a checkpoint's ``config``) and may not change on resume.

        Fields missing from ``saved`` (older checkpoints) and :attr:`RESUMABLE_CHANGES` are not compared.
        Returns ``["name: saved value -> this value", ...]``.
        """

        def plain(name: str, value: object) -> object:  # tuples come back from a checkpoint as lists
            if name == "loss_overrides" and isinstance(value, str):  # older checkpoints stored the text form
                return parse_loss_overrides(value)
            return list(value) if isinstance(value, tuple | list) else value

        return [
            f"{name}: {saved[name]!r} -> {value!r}"
            for name, value in self.to_dict().items()
            if name in saved
            and name not in self.RESUMABLE_CHANGES
            and name not in self.allowed_resume_changes()
            and plain(name, saved[name]) != plain(name, value)
        ]


def _no_check(value: Any) -> None:
    return None
