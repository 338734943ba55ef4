"""Information purifier losses L_ip (docs/method.md#34-information-purifier-losses): an entropy margin and an IN
modality-centroid margin.

The reference weights their sum by 0.1 (``LossWeights.ip_entropy`` and ``ip_centroid``). Inputs are the pre-BN GeM
vectors of the purifier maps (``IDKLOutput.ip_*``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.records import INFRARED, VISIBLE
from .modality import check_modality


def sample_entropy(logits: Tensor) -> Tensor:
    """Shannon entropy ``H = -sum_c p_c log p_c`` of ``softmax(logits)`` per row: (B, N) -> (B,)."""
    log_p = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    return -(log_p.exp() * log_p).sum(dim=1)


def entropy_margin_loss(logits_raw: Tensor, logits_gated: Tensor, margin: float = 0.0) -> Tensor:
    """L_F = ``mean_i [exp(max(0, H(gated_i) - H(raw_i) + margin)) - 1]``.

    Pushes the purified raw feature GeM(m_F * F) to give a more confident (lower-entropy) identity prediction than
    GeM(F), both through the auxiliary classifier ``C_sp_f``.

    Args:
        logits_raw: (B, N) auxiliary logits of GeM(F).
        logits_gated: (B, N) auxiliary logits of GeM(m_F * F).
        margin: Entropy margin (reference: 0).
    """
    if logits_raw.shape != logits_gated.shape or logits_raw.dim() != 2:
        raise ValueError(
            f"entropy_margin_loss expects two (B, N) logits of one shape, got {tuple(logits_raw.shape)} "
            f"and {tuple(logits_gated.shape)}"
        )
    return torch.expm1(F.relu(sample_entropy(logits_gated) - sample_entropy(logits_raw) + margin)).mean()


def modality_centroid_distance(feat: Tensor, pids: Tensor, modality: Tensor) -> Tensor:
    """Per identity, the Euclidean distance between its visible centroid and its infrared centroid.

    Centroids are computed for all identities at once with ``index_add`` over (identity, modality) cells. The
    distance is ``F.pairwise_distance(c_visible, c_infrared)`` (eps 1e-6 added to the difference, as the reference).

    Args:
        feat: (B, D) features.
        pids: (B,) identity labels; every identity needs at least one visible and one infrared sample.
        modality: (B,) 0 = visible, 1 = infrared.

    Returns:
        (U,) distances, one per distinct identity in ascending label order.
    """
    if feat.dim() != 2 or pids.shape != feat.shape[:1]:
        raise ValueError(
            f"modality_centroid_distance expects feat (B, D) and pids (B,), got {tuple(feat.shape)} and "
            f"{tuple(pids.shape)}"
        )
    modality = check_modality(modality, feat.size(0))
    feat = feat.to(torch.promote_types(feat.dtype, torch.float32))
    ids, inverse = torch.unique(pids, return_inverse=True)
    cells = inverse * 2 + modality  # cell (identity u, modality m) -> 2 u + m
    sums = feat.new_zeros(2 * ids.numel(), feat.size(1)).index_add(0, cells, feat)
    counts = torch.bincount(cells, minlength=2 * ids.numel())
    if bool((counts == 0).any()):
        lonely = ids[(counts.view(-1, 2) == 0).any(dim=1)].tolist()
        raise ValueError(
            f"identities {lonely} lack a visible or an infrared sample in the batch; the centroid loss needs both "
            "modalities for every identity (use the cross-modality identity sampler)"
        )
    centroids = (sums / counts.unsqueeze(1).to(feat.dtype)).view(ids.numel(), 2, -1)
    return F.pairwise_distance(centroids[:, VISIBLE], centroids[:, INFRARED])


def modality_centroid_loss(
    feat_in: Tensor, feat_in_gated: Tensor, pids: Tensor, modality: Tensor, margin: float = 0.0
) -> Tensor:
    """L_mIN = ``mean_c max(0, d_gated(c) - d_in(c) + margin)``, d = visible/infrared centroid distance per identity.

    Pushes the purified IN feature GeM(m_IN * IN(F)) to have a smaller cross-modality gap than GeM(IN(F)).

    Args:
        feat_in: (B, D) GeM(IN(F)).
        feat_in_gated: (B, D) GeM(m_IN * IN(F)).
        pids: (B,) identity labels.
        modality: (B,) 0 = visible, 1 = infrared.
        margin: Distance margin (reference: 0).
    """
    d_in = modality_centroid_distance(feat_in, pids, modality)
    d_gated = modality_centroid_distance(feat_in_gated, pids, modality)
    return F.relu(d_gated - d_in + margin).mean()


def _layout_centroid_distance(feat: Tensor, num_ids: int) -> Tensor:
    """:func:`modality_centroid_distance` for a batch already known to follow the sampler layout (identity blocks,
    infrared / visible interleaved): a reshape and a mean, no host-device synchronisation. (P,) in batch order."""
    feat = feat.to(torch.promote_types(feat.dtype, torch.float32))
    centroids = feat.view(num_ids, -1, 2, feat.size(1)).mean(dim=1)  # (P, [infrared, visible], D)
    return F.pairwise_distance(centroids[:, 1], centroids[:, 0])
