"""Naive per-sample transcriptions of the IDKL losses (docs/method.md#3-losses), the reference the vectorised losses are
checked against: ``tests/test_losses.py`` asserts agreement, ``benchmarks/bench_losses.py`` times them against
:func:`idkl_lib.losses.compute_losses`.

Each function follows the reference code's wording as literally as possible (explicit loops over samples and
identities, ``nn.KLDivLoss(reduction="batchmean")``, explicit differences for distances), so it is slow on purpose.
Batches follow the sampler layout (docs/method.md#31-notation-and-batch-layout); ``sub`` is the modality vector
(0 = visible, 1 = infrared).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

if TYPE_CHECKING:
    from idkl_lib.models import IDKLOutput

__all__ = [
    "naive_ce",
    "naive_centroid_dist",
    "naive_centroid_loss",
    "naive_dist",
    "naive_entropy_margin",
    "naive_objective",
    "naive_pseudo",
    "naive_skl",
    "naive_sm_skl",
    "naive_soft_dist",
    "naive_tgsa",
    "naive_triplet",
    "rows",
]


def naive_dist(x: Tensor, eps: float) -> Tensor:
    """sqrt(max(|x_i - x_j|^2, eps)) from explicit differences (the losses use the |a|^2 + |b|^2 - 2ab expansion)."""
    return ((x.unsqueeze(1) - x.unsqueeze(0)) ** 2).sum(-1).clamp(min=eps).sqrt()


def naive_triplet(x: Tensor, pids: Tensor, margin: float) -> Tensor:
    d = naive_dist(x, 1e-12)
    total = x.new_zeros(())
    for i in range(len(pids)):
        pos = [d[i, j] for j in range(len(pids)) if pids[j] == pids[i]]  # includes the anchor itself
        neg = [d[i, j] for j in range(len(pids)) if pids[j] != pids[i]]
        total = total + torch.clamp(max(pos) - min(neg) + margin, min=0)
    return total / len(pids)


def naive_skl(a: Tensor, b: Tensor) -> Tensor:
    kl = nn.KLDivLoss(reduction="batchmean")
    return kl(F.log_softmax(a, 1), F.softmax(b, 1)) + kl(F.log_softmax(b, 1), F.softmax(a, 1))


def naive_soft_dist(x: Tensor) -> Tensor:
    d = naive_dist(x, 1e-6)
    return torch.stack([torch.cat([d[i, :i], d[i, i + 1 :]]) for i in range(x.size(0))])


def rows(x: Tensor, modality: Tensor, m: int) -> Tensor:
    return x[[i for i in range(len(modality)) if int(modality[i]) == m]]


def naive_tgsa(f_sh: Tensor, f_sp: Tensor, sub: Tensor) -> dict[str, Tensor]:
    sh_v, sh_i, sp_v, sp_i = rows(f_sh, sub, 0), rows(f_sh, sub, 1), rows(f_sp, sub, 0), rows(f_sp, sub, 1)
    half = sh_v.size(0) // 2
    cross = naive_soft_dist(torch.cat([sh_v[:half], sh_i[:half]]))
    return {
        "inter_v": naive_skl(naive_soft_dist(sh_v), naive_soft_dist(sp_v)),
        "inter_i": naive_skl(naive_soft_dist(sh_i), naive_soft_dist(sp_i)),
        "intra1": naive_skl(naive_soft_dist(sh_v), naive_soft_dist(sh_i)),
        "intra2": naive_skl(naive_soft_dist(sh_v), cross),
        "intra3": naive_skl(cross, naive_soft_dist(sh_i)),
    }


def naive_sm_skl(a: Tensor, b: Tensor, pids: Tensor) -> Tensor:
    m = int((pids == pids[0]).sum()) // 2  # chunks of m rows concatenated along the class axis
    return naive_skl(torch.cat(a.split(m, 0), 1), torch.cat(b.split(m, 0), 1))


def naive_entropy_margin(l_f: Tensor, l_fp: Tensor) -> Tensor:
    vals = []
    for i in range(l_f.size(0)):
        h = [-(F.softmax(x[i], 0) * F.log_softmax(x[i], 0)).sum() for x in (l_f, l_fp)]
        vals.append(torch.exp(torch.clamp(h[1] - h[0], min=0)) - 1)
    return torch.stack(vals).mean()


def naive_centroid_dist(x: Tensor, pids: Tensor, sub: Tensor) -> Tensor:
    out = []
    for c in sorted(set(pids.tolist())):
        c0 = torch.stack([x[i] for i in range(len(pids)) if pids[i] == c and sub[i] == 0]).mean(0)
        c1 = torch.stack([x[i] for i in range(len(pids)) if pids[i] == c and sub[i] == 1]).mean(0)
        out.append(torch.linalg.vector_norm(c0 - c1 + 1e-6))  # F.pairwise_distance's eps, as the reference
    return torch.stack(out)


def naive_centroid_loss(a: Tensor, b: Tensor, pids: Tensor, sub: Tensor) -> Tensor:
    return torch.clamp(naive_centroid_dist(b, pids, sub) - naive_centroid_dist(a, pids, sub), min=0).mean()


def naive_pseudo(sub: Tensor) -> Tensor:
    first_half = sub.tolist()[: len(sub) // 2]
    rep = [s for s in first_half for _ in range(2)]
    return torch.tensor(rep[1:] + rep[:1])


def naive_ce(logits: Tensor, y: Tensor) -> Tensor:
    return torch.stack([-F.log_softmax(logits[i], 0)[int(y[i])] for i in range(len(y))]).mean()


def naive_objective(out: IDKLOutput, pids: Tensor, sub: Tensor, distalign: bool) -> Tensor:
    """docs/method.md#38-total-objective-and-weight-presets transcribed, with the reference's ``B == 120`` switch."""
    big = len(pids) == 120
    loss = naive_triplet(out.feat_sh, pids, 1.3) + naive_triplet(out.feat_sp, pids, 1.3)
    if distalign:
        t = naive_tgsa(out.feat_sh, out.feat_sp, sub)
        if big:
            loss = loss + t["intra1"] + t["intra2"] + t["intra3"] + 0.6 * (t["inter_v"] + t["inter_i"])
        else:
            loss = loss + 0.1 * (t["intra1"] + t["inter_v"] + t["inter_i"])
    l_f = naive_entropy_margin(out.ip_logits_raw, out.ip_logits_raw_gated)
    l_min = naive_centroid_loss(out.ip_feat_in, out.ip_feat_in_gated, pids, sub)
    loss = loss + 0.1 * (l_f + l_min)
    loss = loss + naive_ce(out.logits_sp, pids) + naive_ce(out.disc_logits, sub)
    loss = loss + naive_ce(out.confuser_logits, naive_pseudo(sub))
    z, z_sp = out.logits_sh, out.logits_sp
    w = 0.8 if big else 0.3
    bg = naive_skl(rows(z, sub, 0), rows(z_sp, sub, 0)) + naive_skl(rows(z, sub, 1), rows(z_sp, sub, 1))
    loss = loss + naive_skl(rows(z, sub, 0), rows(z, sub, 1)) + w * bg
    sm = naive_sm_skl(rows(z, sub, 0), rows(z_sp, sub, 0), pids)
    sm = sm + naive_sm_skl(rows(z, sub, 1), rows(z_sp, sub, 1), pids)
    loss = loss + naive_sm_skl(rows(z, sub, 0), rows(z, sub, 1), pids) + w * sm
    return loss + naive_ce(z, pids)
