"""Frozen configuration objects: the model (:class:`ModelConfig`), the weighted loss terms (:class:`LossWeights`)
and a training run (:class:`TrainConfig`).

Configuration objects never reach ``nn.Module`` constructors: :func:`idkl_lib.models.build_model` translates a
:class:`ModelConfig` into explicit keyword arguments, and :func:`idkl_lib.losses.compute_losses` reads a
:class:`LossWeights`. Both validate their values on construction and raise a ``ValueError`` that names the field.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, ClassVar

ARCHS: tuple[str, ...] = ("resnet50", "resnet18")
"""Backbone architectures :class:`ModelConfig` accepts."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The IDKL network (SPEC §0, §1): one ResNet stem + layer1 + layer2, then shared and specific layer3/4 tails.

    Attributes:
        num_classes: Number of training identities (size of the identity classifiers).
        arch: ``"resnet50"`` (the paper) or ``"resnet18"``.
        pretrained: ``False`` (random init), ``True`` (torchvision ImageNet ``IMAGENET1K_V1`` weights from the torch
            hub cache, downloaded if absent) or the path of a local torchvision-keyed state dict (``.pth``).
            ImageNet layer3/layer4 weights are copied into both tails.
        base_width: Channel width of the stem (64 in the standard ResNet). A smaller value (e.g. 16 or 32) builds a
            narrow, randomly initialised variant for CPU demos and tests; ``None`` means the standard 64.
        last_stride: Stride of layer4 in both tails (1 in the reference: ``drop_last_stride``).
        gem_p: Fixed (not learnable) GeM exponent (SPEC §1.4).
        purifier_reduction: Channel reduction ``r`` of the purifier's per-pixel gating nets (SPEC §1.3).
        disc_hidden: Hidden width of the modality discriminator / confuser MLPs (SPEC §1.6).
        disc_dropout: Dropout probability inside those MLPs.
    """

    num_classes: int
    arch: str = "resnet50"
    pretrained: bool | str | os.PathLike[str] = False
    base_width: int | None = None
    last_stride: int = 1
    gem_p: float = 3.0
    purifier_reduction: int = 16
    disc_hidden: int = 100
    disc_dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"ModelConfig.arch={self.arch!r} is unknown; valid architectures: {', '.join(ARCHS)}")
        if not _is_int(self.num_classes) or self.num_classes < 1:
            raise ValueError(f"ModelConfig.num_classes={self.num_classes!r} must be a positive int (training ids)")
        if self.base_width is not None and (not _is_int(self.base_width) or self.base_width < 1):
            raise ValueError(f"ModelConfig.base_width={self.base_width!r} must be a positive int or None (= 64)")
        if self.last_stride not in (1, 2) or not _is_int(self.last_stride):
            raise ValueError(f"ModelConfig.last_stride={self.last_stride!r} must be 1 (reference) or 2")
        if not _is_real(self.gem_p) or not self.gem_p > 0:
            raise ValueError(f"ModelConfig.gem_p={self.gem_p!r} must be a positive number (reference: 3.0)")
        if not _is_int(self.purifier_reduction) or self.purifier_reduction < 1:
            raise ValueError(f"ModelConfig.purifier_reduction={self.purifier_reduction!r} must be a positive int")
        if not _is_int(self.disc_hidden) or self.disc_hidden < 1:
            raise ValueError(f"ModelConfig.disc_hidden={self.disc_hidden!r} must be a positive int")
        if not _is_real(self.disc_dropout) or not 0.0 <= self.disc_dropout < 1.0:
            raise ValueError(f"ModelConfig.disc_dropout={self.disc_dropout!r} must lie in [0, 1)")
        if isinstance(self.pretrained, os.PathLike):
            object.__setattr__(self, "pretrained", os.fspath(self.pretrained))
        if not isinstance(self.pretrained, bool | str):
            raise ValueError(f"ModelConfig.pretrained={self.pretrained!r} must be True, False or a path to a .pth file")
        if isinstance(self.pretrained, str) and not self.pretrained:
            raise ValueError("ModelConfig.pretrained='' is empty; pass a path to a .pth file, True or False")
        if self.pretrained is not False and self.base_width not in (None, 64):
            raise ValueError(
                f"ModelConfig.base_width={self.base_width} builds a narrow network that no ImageNet checkpoint fits; "
                "use pretrained=False with a narrow width, or base_width=None for pretrained weights"
            )

    @property
    def width(self) -> int:
        """The stem width actually used (``base_width`` or 64)."""
        return 64 if self.base_width is None else self.base_width


# Loss terms, SPEC §2. Groups name sets of terms for ablations (``LossWeights.without``); "mdr" is this project's name
# for the cross-modality (visible <-> infrared) alignment terms inside the shared branch (SPEC §0 "Names").
_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "identity": ("id", "id_sp"),
        "triplet": ("tri_sh", "tri_sp"),
        "ip": ("ip_entropy", "ip_centroid"),
        "tgsa": ("tgsa_inter", "tgsa_intra", "tgsa_intra_cross"),
        "csa1": ("csa1_inter", "csa1_intra"),
        "csa2": ("csa2_inter", "csa2_intra"),
        "csa": ("csa1_inter", "csa1_intra", "csa2_inter", "csa2_intra"),
        "distill": (
            "tgsa_inter",
            "tgsa_intra",
            "tgsa_intra_cross",
            "csa1_inter",
            "csa1_intra",
            "csa2_inter",
            "csa2_intra",
        ),
        "inter": ("tgsa_inter", "csa1_inter", "csa2_inter"),
        "mdr": ("tgsa_intra", "tgsa_intra_cross", "csa1_intra", "csa2_intra"),
        "modality": ("disc", "confuser"),
    }
)


@dataclass(frozen=True)
class LossWeights:
    """Weight of every named IDKL loss term (SPEC §2); a zero weight switches the term off and it is not computed.

    The defaults are the reference's SYSU-MM01 / LLCM configuration (its ``batch == 120`` branch), so
    ``sum(compute_losses(...).values())`` equals the total objective of SPEC §2.8. Use :meth:`preset` for the other
    configurations and :meth:`replace` / :meth:`without` for overrides and ablations.

    Attributes:
        id: L_id, cross-entropy of the shared-branch logits (§2.1).
        id_sp: L_id_sp, cross-entropy of the specific-branch logits (§2.1).
        tri_sh: Batch-hard triplet loss on the pre-BN shared feature (§2.2).
        tri_sp: Batch-hard triplet loss on the pre-BN specific feature (§2.2).
        ip_entropy: Information purifier, entropy-margin term L_F (§2.3; the reference weights L_F + L_mIN by 0.1).
        ip_centroid: Information purifier, IN modality-centroid term L_mIN (§2.3).
        tgsa_inter: TGSA shared <-> specific distance-graph alignment, ``kl_inter_v + kl_inter_i`` (§2.4).
        tgsa_intra: TGSA visible <-> infrared alignment in the shared branch, ``kl_intra1`` (§2.4; MDR).
        tgsa_intra_cross: TGSA alignment with the mixed set X_cross, ``kl_intra2 + kl_intra3`` (§2.4; MDR).
        csa1_inter: CSA1 shared <-> specific logit alignment, ``inter_bg_v + inter_bg_i`` (§2.5).
        csa1_intra: CSA1 visible <-> infrared logit alignment in the shared branch, ``intra_bg`` (§2.5; MDR).
        csa2_inter: CSA2 set-level shared <-> specific alignment, ``inter_Sm`` (§2.5).
        csa2_intra: CSA2 set-level visible <-> infrared alignment, ``intra_Sm`` (§2.5; MDR).
        disc: L_unad, modality discriminator on the specific feature with the true labels (§2.6).
        confuser: L_pse, modality confuser on the shared feature with the half-flipped pseudo labels (§2.6).
    """

    id: float = 1.0
    id_sp: float = 1.0
    tri_sh: float = 1.0
    tri_sp: float = 1.0
    ip_entropy: float = 0.1
    ip_centroid: float = 0.1
    tgsa_inter: float = 0.6
    tgsa_intra: float = 1.0
    tgsa_intra_cross: float = 1.0
    csa1_inter: float = 0.8
    csa1_intra: float = 1.0
    csa2_inter: float = 0.8
    csa2_intra: float = 1.0
    disc: float = 1.0
    confuser: float = 1.0

    PRESETS: ClassVar[tuple[str, ...]] = ("sysu", "llcm", "regdb", "small_batch", "baseline", "no_distill")
    GROUPS: ClassVar[Mapping[str, tuple[str, ...]]] = _GROUPS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"LossWeights.{f.name}={value!r} must be a finite number")
            if value < 0:
                raise ValueError(f"LossWeights.{f.name}={value!r} is negative; use 0 to switch the term off")
            object.__setattr__(self, f.name, float(value))
        if not any(getattr(self, f.name) for f in fields(self)):
            raise ValueError("LossWeights has every weight at 0; at least one loss term must be switched on")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The term names, in the order :func:`~idkl_lib.losses.compute_losses` returns them."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def preset(cls, name: str) -> LossWeights:
        """The weights of a named configuration.

        * ``"sysu"`` / ``"llcm"``: the reference's ``batch == 120`` branch with TGSA on (the defaults).
        * ``"regdb"``: the RegDB config, where ``distalign`` is off, so every TGSA term is 0 (the reference's other
          branch then only lowers the CSA inter weights to 0.3). Note the reference picks these weights from the batch
          size (pitfall 6); here they are explicit.
        * ``"small_batch"``: the reference's ``batch != 120`` branch *with* TGSA on (e.g. SYSU trained with another
          P x K): ``0.1 * (kl_intra1 + kl_inter_v + kl_inter_i)``, no X_cross terms, CSA inter weights 0.3.
        * ``"baseline"``: identity + triplet losses on both streams only (no purifier, no distillation, no modality
          losses); the comparison model for the Grad-CAM study.
        * ``"no_distill"``: ``"sysu"`` without TGSA, CSA1 and CSA2.
        """
        if name in ("sysu", "llcm"):
            return cls()
        if name == "regdb":
            return cls(tgsa_inter=0.0, tgsa_intra=0.0, tgsa_intra_cross=0.0, csa1_inter=0.3, csa2_inter=0.3)
        if name == "small_batch":
            return cls(tgsa_inter=0.1, tgsa_intra=0.1, tgsa_intra_cross=0.0, csa1_inter=0.3, csa2_inter=0.3)
        if name == "baseline":
            return cls().only("identity", "triplet")
        if name == "no_distill":
            return cls().without("distill")
        raise ValueError(f"unknown LossWeights preset {name!r}; valid presets: {', '.join(cls.PRESETS)}")

    def replace(self, **overrides: float) -> LossWeights:
        """A copy with some weights changed, e.g. ``weights.replace(tgsa_inter=0.3)``; the result is validated."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown loss term(s) {', '.join(unknown)}; valid names: {', '.join(self.names())}")
        return dataclasses.replace(self, **overrides)

    def without(self, *names: str) -> LossWeights:
        """A copy with the given terms or groups set to 0 (groups: see :attr:`GROUPS`, e.g. ``"tgsa"``, ``"mdr"``)."""
        return self.replace(**dict.fromkeys(self._expand(names), 0.0))

    def only(self, *names: str) -> LossWeights:
        """A copy keeping only the given terms or groups (others set to 0)."""
        keep = set(self._expand(names))
        return self.replace(**{n: 0.0 for n in self.names() if n not in keep})

    def active(self) -> dict[str, float]:
        """The switched-on terms, ``{name: weight}`` for every non-zero weight, in :meth:`names` order."""
        return {n: getattr(self, n) for n in self.names() if getattr(self, n) != 0.0}

    def as_dict(self) -> dict[str, float]:
        """Every weight, ``{name: weight}``."""
        return {n: getattr(self, n) for n in self.names()}

    @classmethod
    def _expand(cls, names: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for name in names:
            if name in cls.GROUPS:
                out.extend(cls.GROUPS[name])
            elif name in cls.names():
                out.append(name)
            else:
                raise ValueError(
                    f"unknown loss term or group {name!r}; terms: {', '.join(cls.names())}; "
                    f"groups: {', '.join(cls.GROUPS)}"
                )
        return out


_AMP_MODES = ("auto", "bf16", "fp16", "off")
_DATASET_NAMES = ("sysu", "regdb", "llcm")
_IDENTITY_CHOICES = ("uniform", "proportional")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs, validated on construction (errors name the field and the fix).

    Defaults reproduce the reference SYSU-MM01 recipe (SPEC.md §3); the notebooks and the CLI
    (``python -m idkl_lib.train --help``, one ``--option`` per field) override them.

    Attributes:
        dataset: Dataset layout: ``sysu``, ``regdb`` or ``llcm`` (a synthetic folder is named by its layout).
        data_root: Folder holding the dataset in its official layout.
        regdb_trial: RegDB split 1..10 (ignored for the other datasets).
        arch: Backbone, ``resnet50`` (the paper) or ``resnet18``.
        base_width: Stem width of a narrow, randomly initialised variant for CPU runs (e.g. 16); None = 64.
        pretrained: ImageNet initialisation: true, false or the path of a torchvision state dict (``.pth``).
        height: Training and test image height (multiple of 16, >= 32; reference SYSU/LLCM 384, RegDB 256).
        width: Image width (multiple of 16, >= 32; reference 144 / 128).
        p: Identities per batch (the global batch; divided among the processes of a distributed run).
        k: Images per identity per batch, K/2 infrared + K/2 visible (even).
        identity_choice: How the sampler picks the P identities of a batch: ``uniform`` (the reference) or
            ``proportional`` to their remaining chunks.
        epochs: Total number of training epochs (resuming continues up to this number).
        lr: Adam learning rate.
        weight_decay: Adam's (coupled, L2) weight decay on every parameter.
        milestones: Epochs (0-based epoch index) from which the learning rate is multiplied by ``gamma`` once more.
        gamma: Learning-rate factor per milestone.
        warmup_epochs: Linear warm-up: epoch ``e < warmup_epochs`` uses ``(e + 1) / warmup_epochs`` of the rate.
        loss_preset: :meth:`LossWeights.preset` name (sysu, llcm, regdb, small_batch, baseline, no_distill).
        loss_overrides: Comma-separated ``name=weight`` list on top of the preset, e.g. ``"tgsa_inter=0,csa2_inter=0"``.
        margin: Triplet margin (reference 1.3).
        amp: Mixed precision: ``auto`` (bf16 on CUDA, off on CPU), ``bf16``, ``fp16`` (with a GradScaler) or ``off``.
        channels_last: Run the model in channels-last memory format (faster convolutions on GPUs).
        grad_clip: Clip the global gradient norm to this value; 0 = no clipping.
        augment: Training augmentation (flip, pad + crop, random erasing); false = the test transform.
        random_erasing: Probability of random erasing (with ``augment``).
        channel_augment: Channel augmentation of visible images (with ``augment``).
        decoded_cache: Decode and resize every training image once into ``<out_dir>/decoded_cache/`` (a memory-mapped
            uint8 file, rebuilt when the dataset changes) and apply flip, pad + crop and random erasing to whole
            batches on the training device (same distribution as the PIL path); for GPUs the JPEG decoding cannot
            feed. Not with ``channel_augment``.
        num_workers: DataLoader worker processes (0 = load in the training process).
        seed: Base seed in [0, 2**32); every epoch re-seeds from ``(seed, epoch, rank)``.
        deterministic: Ask torch for deterministic algorithms (bit-reproducible runs and resumes, slower on GPU).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        out_dir: Run folder: ``checkpoint.pth`` (rewritten atomically after every epoch) and ``metrics.json``.
        eval_every: Also evaluate on the test protocol every N epochs (0 = never), for learning curves only:
            the result is recorded in ``metrics.json["during_training"]`` and never used to select a checkpoint
            (the checkpoint is always the last epoch's, so no test data leaks into training, SPEC §8 pitfall 18).
        final_eval: Evaluate the final model with the dataset's standard protocols and write ``metrics.json``.
        eval_batch_size: Batch size of feature extraction.
        log_every: Move the loss values to the host, check them for NaN/inf and log them every N steps
            (and at the end of every epoch).
    """

    DATASETS: ClassVar[tuple[str, ...]] = _DATASET_NAMES
    AMP_MODES: ClassVar[tuple[str, ...]] = _AMP_MODES
    IDENTITY_CHOICES: ClassVar[tuple[str, ...]] = _IDENTITY_CHOICES
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
        }
    )

    dataset: str = "sysu"
    data_root: str = "data/SYSU-MM01"
    regdb_trial: int = 1
    arch: str = "resnet50"
    base_width: int | None = None
    pretrained: bool | str = True
    height: int = 384
    width: int = 144
    p: int = 12
    k: int = 10
    identity_choice: str = "uniform"
    epochs: int = 160
    lr: float = 3.5e-4
    weight_decay: float = 5e-3
    milestones: tuple[int, ...] = (55, 95)
    gamma: float = 0.1
    warmup_epochs: int = 0
    loss_preset: str = "sysu"
    loss_overrides: str = ""
    margin: float = 1.3
    amp: str = "auto"
    channels_last: bool = True
    grad_clip: float = 0.0
    augment: bool = True
    random_erasing: float = 0.5
    channel_augment: bool = False
    decoded_cache: bool = False
    num_workers: int = 4
    seed: int = 1
    deterministic: bool = False
    device: str = "auto"
    out_dir: str = "runs/default"
    eval_every: int = 0
    final_eval: bool = True
    eval_batch_size: int = 64
    log_every: int = 10

    def __post_init__(self) -> None:
        def bad(name: str, value: object, what: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={value!r}: {what}")

        for name in ("data_root", "out_dir", "pretrained"):
            if isinstance(getattr(self, name), os.PathLike):  # paths are stored as str: the config is saved as JSON
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        if isinstance(self.milestones, list):
            object.__setattr__(self, "milestones", tuple(self.milestones))
        for f in fields(self):
            value = getattr(self, f.name)
            kinds = self._FIELD_KINDS[str(f.type)]
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise bad(f.name, value, f"must be of type {f.type}")
            if float in kinds and isinstance(value, int):  # 1 -> 1.0: one type per field in configs and JSON
                object.__setattr__(self, f.name, float(value))
        if self.dataset not in _DATASET_NAMES:
            raise bad("dataset", self.dataset, f"must be one of {', '.join(_DATASET_NAMES)}")
        if not 1 <= self.regdb_trial <= 10:
            raise bad("regdb_trial", self.regdb_trial, "RegDB has splits 1..10")
        if self.k < 2 or self.k % 2:
            raise bad("k", self.k, "K images per identity must be even and >= 2 (K/2 visible + K/2 infrared)")
        if self.p < 2:
            raise bad("p", self.p, "P identities per batch must be >= 2 (the triplet loss needs negatives)")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 16:
                raise bad(name, value, "image sides must be multiples of 16 and >= 32 (the backbone's stride is 16)")
        if self.epochs < 1:
            raise bad("epochs", self.epochs, "train for at least one epoch")
        if self.lr <= 0 or not math.isfinite(self.lr):
            raise bad("lr", self.lr, "the learning rate must be a positive number")
        for name in ("weight_decay", "grad_clip", "margin"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise bad(name, value, "must be a finite number >= 0 (0 switches it off)")
        if not 0 < self.gamma <= 1:
            raise bad("gamma", self.gamma, "the learning-rate factor per milestone must lie in (0, 1]")
        if self.identity_choice not in _IDENTITY_CHOICES:
            raise bad("identity_choice", self.identity_choice, f"must be one of {', '.join(_IDENTITY_CHOICES)}")
        if self.amp not in _AMP_MODES:
            raise bad("amp", self.amp, f"must be one of {', '.join(_AMP_MODES)}")
        for name, low in (("num_workers", 0), ("eval_every", 0), ("warmup_epochs", 0), ("log_every", 1)):
            if getattr(self, name) < low:
                raise bad(name, getattr(self, name), f"must be an integer >= {low}")
        if self.eval_batch_size < 1:
            raise bad("eval_batch_size", self.eval_batch_size, "must be an integer >= 1")
        if not 0 <= self.seed < 2**32:
            raise bad("seed", self.seed, "must lie in [0, 2**32)")
        if any(not _is_int(m) or m < 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise bad("milestones", self.milestones, "milestones must be increasing epoch numbers >= 0")
        if self.decoded_cache and self.channel_augment:
            raise bad("decoded_cache", True, "the decoded cache's batched augmentation has no channel_augment")
        if not 0.0 <= self.random_erasing <= 1.0:
            raise bad("random_erasing", self.random_erasing, "a probability in [0, 1]")
        self.model_config(2)  # validates arch / base_width / pretrained
        self.loss_weights()  # validates loss_preset / loss_overrides

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
        try:
            weights = LossWeights.preset(self.loss_preset)
        except ValueError as exc:
            raise ValueError(f"TrainConfig.loss_preset={self.loss_preset!r}: {exc}") from None
        overrides: dict[str, float] = {}
        for item in filter(None, (s.strip() for s in self.loss_overrides.split(","))):
            name, sep, value = item.partition("=")
            try:
                overrides[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise ValueError(
                    f"TrainConfig.loss_overrides={self.loss_overrides!r}: {item!r} is not 'name=weight' "
                    "(e.g. 'tgsa_inter=0')"
                )
        try:
            return weights.replace(**overrides) if overrides else weights
        except ValueError as exc:
            raise ValueError(f"TrainConfig.loss_overrides={self.loss_overrides!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields (stored in checkpoints and reports)."""
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        return d

    def resume_mismatches(self, saved: Mapping[str, Any]) -> list[str]:
        """The fields whose value differs from ``saved`` (a checkpoint's ``config``) and may not change on resume.

        Fields missing from ``saved`` (older checkpoints) and :attr:`RESUMABLE_CHANGES` are not compared.
        Returns ``["name: saved value -> this value", ...]``.
        """

        def plain(value: object) -> object:  # tuples come back from a checkpoint as lists
            return list(value) if isinstance(value, tuple | list) else value

        return [
            f"{name}: {saved[name]!r} -> {value!r}"
            for name, value in self.to_dict().items()
            if name in saved and name not in self.RESUMABLE_CHANGES and plain(saved[name]) != plain(value)
        ]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
