"""Knowledge-alignment losses of IDKL: TGSA (docs/method.md#35-tgsa-graph-alignment), CSA1 and CSA2
(docs/method.md#36-csa-logit-alignment), all built on a symmetric KL.

Every function takes whole-batch tensors in the sampler's layout and splits visible / infrared rows itself, so row j
of the visible set and row j of the infrared set are the same identity. "inter" terms align the shared and specific
branches; "intra" terms align visible and infrared inside the shared branch (this project's "MDR",
docs/method.md#39-term-names-and-groups). Nothing is detached: both sides receive gradients (mutual learning, not
teacher -> student).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distances import off_diagonal, pairwise_distance
from .modality import split_by_modality


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """SKL(a, b) = KL(softmax(b) || softmax(a)) + KL(softmax(a) || softmax(b)), softmax over dim 1.

    Each KL is summed over the columns and averaged over the rows (``KLDivLoss(reduction="batchmean")``), T = 1.

    Args:
        logits_a: (n, C) logits.
        logits_b: (n, C) logits.
    """
    if logits_a.shape != logits_b.shape or logits_a.dim() != 2:
        raise ValueError(
            f"symmetric_kl expects two (n, C) tensors of one shape, got {tuple(logits_a.shape)} and "
            f"{tuple(logits_b.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(logits_a.dtype, logits_b.dtype), torch.float32)
    log_p = F.log_softmax(logits_a.to(dtype), dim=1)
    log_q = F.log_softmax(logits_b.to(dtype), dim=1)
    # sum q (log q - log p) + sum p (log p - log q) = sum (p - q)(log p - log q)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum() / logits_a.size(0)


def distance_logits(feat: Tensor) -> Tensor:
    """D(X): Euclidean distances (clamp 1e-6, sqrt) between all rows of ``feat`` (n, D), diagonal removed: (n, n-1).

    TGSA feeds these RAW distances to the softmax as logits, so a larger distance gets a larger probability. This
    reproduces the reference exactly; it is probably unintended (docs/method.md#6-reference-behaviours-kept-on-purpose).
    """
    feat = feat.to(torch.promote_types(feat.dtype, torch.float32))
    return off_diagonal(pairwise_distance(feat, metric="euclidean", eps=1e-6))


def tgsa_inter_loss(feat_sh: Tensor, feat_sp: Tensor, modality: Tensor) -> Tensor:
    """TGSA inter: ``SKL(D(f_sh[V]), D(f_sp[V])) + SKL(D(f_sh[I]), D(f_sp[I]))`` (``kl_inter_v + kl_inter_i``).

    Args:
        feat_sh: (B, D) pre-BN shared features.
        feat_sp: (B, D) pre-BN specific features.
        modality: (B,) 0 = visible (V), 1 = infrared (I).
    """
    return _tgsa_inter(*split_by_modality(feat_sh, modality), *split_by_modality(feat_sp, modality))


def tgsa_intra_loss(feat_sh: Tensor, modality: Tensor) -> Tensor:
    """TGSA intra (MDR): ``kl_intra1 = SKL(D(f_sh[V]), D(f_sh[I]))``.

    Args:
        feat_sh: (B, D) pre-BN shared features.
        modality: (B,) 0 = visible, 1 = infrared.
    """
    return _tgsa_intra(*split_by_modality(feat_sh, modality))


def tgsa_intra_cross_loss(feat_sh: Tensor, modality: Tensor) -> Tensor:
    """TGSA cross-set terms (MDR): ``kl_intra2 + kl_intra3`` with the mixed set X_cross.

    ``X_cross = [first n/2 rows of f_sh[V]; first n/2 rows of f_sh[I]]`` (n = samples per modality), then
    ``kl_intra2 = SKL(D(f_sh[V]), D(X_cross))`` and ``kl_intra3 = SKL(D(X_cross), D(f_sh[I]))``. Row j of X_cross and
    row j of f_sh[V] are different identities for j >= n/2, as in the reference.

    Args:
        feat_sh: (B, D) pre-BN shared features.
        modality: (B,) 0 = visible, 1 = infrared; n = B/2 must be even.
    """
    return _tgsa_intra_cross(*split_by_modality(feat_sh, modality))


def csa1_inter_loss(logits_sh: Tensor, logits_sp: Tensor, modality: Tensor) -> Tensor:
    """CSA1 inter: ``SKL(z[V], z_sp[V]) + SKL(z[I], z_sp[I])`` (``inter_bg_v + inter_bg_i``).

    Args:
        logits_sh: (B, N) shared identity logits z.
        logits_sp: (B, N) specific identity logits z_sp.
        modality: (B,) 0 = visible, 1 = infrared.
    """
    return _csa1_inter(*split_by_modality(logits_sh, modality), *split_by_modality(logits_sp, modality))


def csa1_intra_loss(logits_sh: Tensor, modality: Tensor) -> Tensor:
    """CSA1 intra (MDR): ``intra_bg = SKL(z[V], z[I])``, row-aligned same-identity visible/infrared pairs.

    Args:
        logits_sh: (B, N) shared identity logits.
        modality: (B,) 0 = visible, 1 = infrared.
    """
    return symmetric_kl(*split_by_modality(logits_sh, modality))


def set_level_logits(logits: Tensor, group_size: int) -> Tensor:
    """The CSA2 reshaping: consecutive groups of ``group_size`` rows (one identity each) laid side by side.

    (n, C) -> (m, (n/m) C) with m = ``group_size``: row j holds the j-th sample of every identity, identity blocks
    in batch order, so one softmax runs over all identities' classes at once.
    """
    n, c = logits.shape
    if group_size < 1 or n % group_size:
        raise ValueError(f"set_level_logits: {n} rows do not split into groups of {group_size} (= K/2 per identity)")
    return logits.reshape(n // group_size, group_size, c).transpose(0, 1).reshape(group_size, (n // group_size) * c)


def csa2_inter_loss(logits_sh: Tensor, logits_sp: Tensor, modality: Tensor, group_size: int) -> Tensor:
    """CSA2 inter: ``inter_Sm = SKL'(z[V], z_sp[V]) + SKL'(z[I], z_sp[I])``, SKL' on :func:`set_level_logits`.

    Args:
        logits_sh: (B, N) shared identity logits.
        logits_sp: (B, N) specific identity logits.
        modality: (B,) 0 = visible, 1 = infrared.
        group_size: Samples per identity per modality (K/2).
    """
    return _csa2_inter(*split_by_modality(logits_sh, modality), *split_by_modality(logits_sp, modality), group_size)


def csa2_intra_loss(logits_sh: Tensor, modality: Tensor, group_size: int) -> Tensor:
    """CSA2 intra (MDR): ``intra_Sm = SKL'(z[V], z[I])`` on :func:`set_level_logits`.

    Args:
        logits_sh: (B, N) shared identity logits.
        modality: (B,) 0 = visible, 1 = infrared.
        group_size: Samples per identity per modality (K/2).
    """
    return _csa2_intra(*split_by_modality(logits_sh, modality), group_size)


# Cores on row-aligned visible (v) / infrared (i) sets, shared by the public functions above and by
# ``compute_losses`` (which splits the batch once, without host-device synchronisation).
def _tgsa_inter(sh_v: Tensor, sh_i: Tensor, sp_v: Tensor, sp_i: Tensor) -> Tensor:
    return symmetric_kl(distance_logits(sh_v), distance_logits(sp_v)) + symmetric_kl(
        distance_logits(sh_i), distance_logits(sp_i)
    )


def _tgsa_intra(sh_v: Tensor, sh_i: Tensor) -> Tensor:
    return symmetric_kl(distance_logits(sh_v), distance_logits(sh_i))


def _tgsa_intra_cross(sh_v: Tensor, sh_i: Tensor) -> Tensor:
    n = sh_v.size(0)
    if n % 2:
        raise ValueError(
            f"the X_cross TGSA terms need an even number of samples per modality, got {n} (= P*K/2); "
            "use an even P or K/2, or set LossWeights.tgsa_intra_cross=0"
        )
    d_cross = distance_logits(torch.cat([sh_v[: n // 2], sh_i[: n // 2]]))
    return symmetric_kl(distance_logits(sh_v), d_cross) + symmetric_kl(d_cross, distance_logits(sh_i))


def _csa1_inter(z_v: Tensor, z_i: Tensor, zsp_v: Tensor, zsp_i: Tensor) -> Tensor:
    return symmetric_kl(z_v, zsp_v) + symmetric_kl(z_i, zsp_i)


def _csa2_inter(z_v: Tensor, z_i: Tensor, zsp_v: Tensor, zsp_i: Tensor, m: int) -> Tensor:
    return symmetric_kl(set_level_logits(z_v, m), set_level_logits(zsp_v, m)) + symmetric_kl(
        set_level_logits(z_i, m), set_level_logits(zsp_i, m)
    )


def _csa2_intra(z_v: Tensor, z_i: Tensor, m: int) -> Tensor:
    return symmetric_kl(set_level_logits(z_v, m), set_level_logits(z_i, m))
