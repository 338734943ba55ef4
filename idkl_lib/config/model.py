"""The network's configuration: :class:`ModelConfig` (translated into keyword arguments by
:func:`idkl_lib.models.build_model`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

ARCHS: tuple[str, ...] = ("resnet50", "resnet18")
"""Backbone architectures :class:`ModelConfig` accepts."""


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """The IDKL network (docs/method.md#2-architecture): one ResNet stem + layer1 + layer2, then shared and specific
    layer3/4 tails.

    Attributes:
        num_classes: Number of training identities (size of the identity classifiers).
        arch: ``"resnet50"`` (the paper) or ``"resnet18"``.
        pretrained: ``False`` (random init), ``True`` (torchvision ImageNet ``IMAGENET1K_V1`` weights from the torch
            hub cache, downloaded if absent, width 64 only) or the path of a local torchvision-keyed state dict
            (``.pth``) of the model's own arch and width (``python -m idkl_lib.pretrain`` makes a CPU stand-in).
            ImageNet layer3/layer4 weights are copied into both tails.
        base_width: Channel width of the stem (64 in the standard ResNet). A smaller value (e.g. 16 or 32) builds a
            narrow, randomly initialised variant for CPU demos and tests; ``None`` means the standard 64.
        last_stride: Stride of layer4 in both tails (1 in the reference: ``drop_last_stride``).
        gem_p: Fixed (not learnable) GeM exponent (docs/method.md#23-gem-pooling).
        purifier_reduction: Channel reduction ``r`` of the purifier's per-pixel gating nets
            (docs/method.md#22-in-guided-information-purifier).
        disc_hidden: Hidden width of the modality discriminator / confuser MLPs
            (docs/method.md#25-modality-discriminator-and-confuser).
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
        if self.pretrained is True and self.base_width not in (None, 64):  # a local file may be of any width
            raise ValueError(
                f"ModelConfig.base_width={self.base_width} builds a narrow network that no ImageNet checkpoint fits; "
                "use pretrained=False or a local state dict of that width (python -m idkl_lib.pretrain makes one), "
                "or base_width=None for the ImageNet weights"
            )

    @property
    def width(self) -> int:
        """The stem width actually used (``base_width`` or 64)."""
        return 64 if self.base_width is None else self.base_width


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
