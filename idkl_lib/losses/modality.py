"""Modality discriminator and modality confuser losses (docs/method.md#37-modality-discriminator-and-confuser-losses),
and the modality split used by the alignments.

Modality labels: 0 = visible, 1 = infrared (``idkl_lib.data.records``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.records import INFRARED, VISIBLE


def check_modality(modality: Tensor, batch_size: int) -> Tensor:
    """Validate (B,) modality labels (0 = visible, 1 = infrared) and return them as int64."""
    if modality.shape != (batch_size,):
        raise ValueError(f"modality must have shape ({batch_size},), got {tuple(modality.shape)}")
    modality = modality.long()
    if bool(((modality != VISIBLE) & (modality != INFRARED)).any()):
        raise ValueError(
            f"modality labels must be {VISIBLE} (visible) or {INFRARED} (infrared), got "
            f"{sorted(set(modality.tolist()))}"
        )
    return modality


def split_by_modality(x: Tensor, modality: Tensor) -> tuple[Tensor, Tensor]:
    """Rows of ``x`` (B, ...) split into (visible rows, infrared rows), batch order kept.

    The two sets must have equal size: with the sampler layout row j of each set is the same identity.
    """
    modality = check_modality(modality, x.size(0))
    visible, infrared = x[modality == VISIBLE], x[modality == INFRARED]
    if visible.size(0) != infrared.size(0):
        raise ValueError(
            f"the alignment losses pair visible and infrared rows one to one, but the batch holds {visible.size(0)} "
            f"visible and {infrared.size(0)} infrared samples; use the cross-modality identity sampler (K/2 of each)"
        )
    return visible, infrared


def confuser_pseudo_labels(modality: Tensor) -> Tensor:
    """The reference's pseudo modality labels for the confuser: ``roll(repeat_interleave(first_half(s), 2), -1)``.

    With the sampler's pattern ``s = [1, 0, 1, 0, ...]`` this gives ``[1, 0, 0, 1, 1, 0, 0, 1, ...]``: correct at
    positions 4k and 4k+1, flipped at 4k+2 and 4k+3 (docs/method.md#37-modality-discriminator-and-confuser-losses).

    Args:
        modality: (B,) labels, B even.

    Returns:
        (B,) int64 pseudo labels.
    """
    n = modality.numel()
    if modality.dim() != 1 or n % 2:
        raise ValueError(f"confuser_pseudo_labels needs a 1-D batch of even size, got shape {tuple(modality.shape)}")
    return torch.roll(modality[: n // 2].long().repeat_interleave(2), shifts=-1)


def modality_discriminator_loss(logits: Tensor, modality: Tensor) -> Tensor:
    """L_unad = CE(D_special(bn_sp), s): the specific feature must reveal its TRUE modality
    (docs/method.md#37-modality-discriminator-and-confuser-losses).

    Args:
        logits: (B, 2) discriminator logits on the post-BN specific feature.
        modality: (B,) true labels (0 = visible, 1 = infrared).
    """
    return _modality_ce(logits, check_modality(modality, logits.size(0)))


def modality_confuser_loss(logits: Tensor, modality: Tensor) -> Tensor:
    """L_pse = CE(D_shared_pseu(bn_sh), s_hat) with the half-flipped pseudo labels of :func:`confuser_pseudo_labels`.

    Reproduces the reference: no gradient reversal and no alternating optimisation
    (docs/method.md#37-modality-discriminator-and-confuser-losses,
    docs/method.md#6-reference-behaviours-kept-on-purpose); the confuser cannot fit labels that are wrong for half the
    batch, which pushes the shared feature towards modality-ambiguous outputs.

    Args:
        logits: (B, 2) confuser logits on the post-BN shared feature.
        modality: (B,) true labels in the sampler's layout.
    """
    return _modality_ce(logits, confuser_pseudo_labels(check_modality(modality, logits.size(0))))


def _modality_ce(logits: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)
