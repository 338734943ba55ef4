"""Frozen configuration objects: the model (:class:`ModelConfig`), the weighted loss terms (:class:`LossWeights`)
and a training run (:class:`TrainConfig`).

Configuration objects never reach ``nn.Module`` constructors: :func:`idkl_lib.models.build_model` translates a
:class:`ModelConfig` into explicit keyword arguments, and :func:`idkl_lib.losses.compute_losses` reads a
:class:`LossWeights`. Both validate their values on construction and raise a ``ValueError`` that names the field.
"""

from .model import ARCHS, ModelConfig
from .train import AMP_MODES, TrainConfig, format_loss_overrides, parse_loss_overrides
from .weights import LossWeights

__all__ = [
    "AMP_MODES",
    "ARCHS",
    "LossWeights",
    "ModelConfig",
    "TrainConfig",
    "format_loss_overrides",
    "parse_loss_overrides",
]
