"""Batch-hard triplet loss (docs/method.md#33-triplet-losses), vectorised with masks (no loop over anchors)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distances import pairwise_distance

TRIPLET_MARGIN: float = 1.3
"""The margin of every reference configuration (``margin: 1.3``)."""


def hard_example_mining(dist: Tensor, pids: Tensor) -> tuple[Tensor, Tensor]:
    """Hardest positive and hardest negative distance of every anchor.

    Args:
        dist: (B, B) distance matrix.
        pids: (B,) identity labels.

    Returns:
        ``(d_ap, d_an)``, each (B,): the largest distance to a same-identity sample (the anchor itself included, as in
        the reference, docs/method.md#33-triplet-losses) and the smallest distance to a sample of another identity.
    """
    same = pids.unsqueeze(0) == pids.unsqueeze(1)
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return d_ap, d_an


def batch_hard_triplet_loss(feat: Tensor, pids: Tensor, margin: float = TRIPLET_MARGIN) -> Tensor:
    """``mean_i max(0, d_ap(i) - d_an(i) + margin)`` over the batch, Euclidean distance clamped at 1e-12.

    Positives and negatives are mined over the whole batch, whatever the modality (docs/method.md#33-triplet-losses).
    Applied to the pre-BN shared and specific features (``Tri(f_sh) + Tri(f_sp)``).

    Args:
        feat: (B, D) features; half precision is upcast to float32.
        pids: (B,) identity labels; at least two identities.
        margin: Ranking margin.
    """
    if feat.dim() != 2 or pids.shape != feat.shape[:1]:
        raise ValueError(
            f"batch_hard_triplet_loss expects feat (B, D) and pids (B,), got {tuple(feat.shape)} and "
            f"{tuple(pids.shape)}"
        )
    if bool((pids == pids[0]).all()):
        raise ValueError("batch_hard_triplet_loss needs at least two identities in the batch (no negatives found)")
    return _batch_hard_triplet(feat, pids, margin)


def _batch_hard_triplet(feat: Tensor, pids: Tensor, margin: float) -> Tensor:
    feat = feat.to(torch.promote_types(feat.dtype, torch.float32))
    d_ap, d_an = hard_example_mining(pairwise_distance(feat, metric="euclidean", eps=1e-12), pids)
    return F.relu(d_ap - d_an + margin).mean()
