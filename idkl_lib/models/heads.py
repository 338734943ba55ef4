"""Pooling, BNNeck and the modality discriminator MLP.

See docs/method.md#23-gem-pooling, docs/method.md#24-bnneck-and-classifiers and
docs/method.md#25-modality-discriminator-and-confuser.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def gem(x: Tensor, p: float = 3.0, eps: float = 1e-6) -> Tensor:
    """Generalised-mean pooling of a map (B, C, H, W) -> (B, C): ``mean(clamp(x, eps)^p)^(1/p)`` over H, W.

    Computed in float32 (``x^3`` can overflow float16), returned in the dtype of ``x``.
    """
    pooled = x.to(torch.promote_types(x.dtype, torch.float32)).clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
    return pooled.to(x.dtype)


class GeM(nn.Module):
    """GeM pooling with a FIXED exponent (p = 3, eps = 1e-6, not learnable): (B, C, H, W) -> (B, C).

    See docs/method.md#23-gem-pooling.
    """

    def __init__(self, p: float = 3.0, eps: float = 1e-6) -> None:
        super().__init__()
        if not p > 0:
            raise ValueError(f"GeM p={p} must be positive")
        self.p, self.eps = float(p), float(eps)

    def forward(self, x: Tensor) -> Tensor:
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, eps={self.eps}"


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose bias is fixed at zero and frozen (the standard re-ID BNNeck): (B, D) -> (B, D).

    See docs/method.md#24-bnneck-and-classifiers.
    """

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(False)


class ModalityDiscriminator(nn.Module):
    """Modality classifier MLP (docs/method.md#25-modality-discriminator-and-confuser): Linear -> BN -> ReLU -> dropout,
    twice, then Linear -> 2 logits.

    Used twice in IDKL: on the specific feature with the true modality labels (``D_special``) and on the shared
    feature with half-flipped pseudo labels (the confuser, ``D_shared_pseu``); no gradient reversal.

    Args:
        in_dim: Input feature width D.
        hidden: Hidden width (reference: 100).
        dropout: Dropout probability after each hidden layer (reference: 0.5).
        num_modalities: Output logits (2: visible = 0, infrared = 1).
    """

    def __init__(self, in_dim: int, hidden: int = 100, dropout: float = 0.5, num_modalities: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_modalities),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, D) -> modality logits (B, num_modalities)."""
        return self.net(x)
