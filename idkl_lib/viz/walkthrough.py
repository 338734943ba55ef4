"""The computation behind the one-batch walkthrough of 02_train: :func:`sample_batch` draws one P x K
cross-modality batch with the training sampler; :func:`walk_batch` runs it through a model exactly as a training step
does (train-mode forward, on a copy so the model's BatchNorm statistics are untouched, no gradients) and collects,
with the loss functions of :mod:`idkl_lib.losses` (nothing re-derived), the purifier's gates, the TGSA affinities, the
CSA distributions and every weighted loss term. :mod:`idkl_lib.viz.method` draws them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from idkl_lib.config import LossWeights
from idkl_lib.data import CrossModalityIdentitySampler, ImageDataset, Sample, build_transforms
from idkl_lib.losses import (
    TRIPLET_MARGIN,
    compute_losses,
    distance_logits,
    pairwise_distance,
    set_level_logits,
    split_by_modality,
)
from idkl_lib.losses.alignment import symmetric_kl
from idkl_lib.models import IDKLModel, IDKLOutput

__all__ = ["Batch", "BatchWalkthrough", "sample_batch", "walk_batch"]


@dataclass
class Batch:
    """One training batch in the sampler's layout.

    Attributes:
        images: ``(B, 3, H, W)`` normalised images (test transform, so they display cleanly).
        pids: ``(B,)`` training labels.
        camids: ``(B,)`` camera ids.
        modality: ``(B,)`` 0 visible, 1 infrared.
        samples: The ``B`` records.
        p: Identities.
        k: Images per identity.
    """

    images: Tensor
    pids: Tensor
    camids: Tensor
    modality: Tensor
    samples: list[Sample]
    p: int
    k: int


def sample_batch(train: Sequence[Sample], p: int, k: int, height: int, width: int, seed: int = 0) -> Batch:
    """The first batch of the training sampler (:class:`CrossModalityIdentitySampler`) for ``seed``.

    Args:
        train: Training records.
        p: Identities per batch.
        k: Images per identity (K/2 infrared and K/2 visible, interleaved infrared first).
        height: Image height.
        width: Image width.
        seed: Sampler seed.
    """
    sampler = CrossModalityIdentitySampler(train, p=p, k=k, seed=seed)
    order = list(sampler)[: p * k]
    if len(order) < p * k:
        raise ValueError(f"the sampler yields no full batch of P={p} x K={k}; lower p or k")
    data = ImageDataset(train, build_transforms(height, width, train=False))
    items = [data[i] for i in order]
    return Batch(
        images=torch.stack([item[0] for item in items]),
        pids=torch.tensor([int(item[1]) for item in items]),
        camids=torch.tensor([int(item[2]) for item in items]),
        modality=torch.tensor([int(item[3]) for item in items]),
        samples=[train[int(item[4])] for item in items],
        p=p,
        k=k,
    )


@dataclass
class BatchWalkthrough:
    """What one batch looks like inside IDKL (see the module docstring).

    Attributes:
        batch: The input batch.
        output: The model output of the train-mode forward.
        gate_in: ``(B, h, w)`` channel mean of the purifier gate ``m_IN`` (computed from IN(F)).
        gate_raw: ``(B, h, w)`` channel mean of ``m_F`` (computed from F).
        gate_values: ``{"m_IN" | "m_F": (B, C) spatial mean per channel}``.
        affinity: ``{"shared · visible" | "shared · infrared" | "specific · visible" | "specific · infrared":
            (n, n)}`` row-softmax of the TGSA distance logits, diagonal NaN (n = B/2 samples per modality).
        affinity_kl: The symmetric KL between the affinity pairs TGSA aligns.
        class_probs: ``{"shared · visible" | ...: (n, C)}`` softmax of the identity logits (CSA1).
        set_probs: ``{"shared · visible" | ...: (K/2, P C)}`` softmax of the set-level logits (CSA2).
        logit_kl: The symmetric KL between the logit pairs CSA aligns.
        losses: ``{term: weighted value}`` from :func:`compute_losses`.
        mean_distance: ``{"shared" | "specific": mean Euclidean distance between the pre-BN features of the batch}``
            (the scale that TGSA's distance logits live on).
    """

    batch: Batch
    output: IDKLOutput
    gate_in: np.ndarray
    gate_raw: np.ndarray
    gate_values: dict[str, np.ndarray]
    affinity: dict[str, np.ndarray]
    affinity_kl: dict[str, float]
    class_probs: dict[str, np.ndarray]
    set_probs: dict[str, np.ndarray]
    logit_kl: dict[str, float]
    losses: dict[str, float]
    mean_distance: dict[str, float]


def _with_nan_diagonal(off: Tensor) -> np.ndarray:
    """(n, n-1) off-diagonal rows back to (n, n) with NaN on the diagonal."""
    n = off.shape[0]
    full = torch.full((n, n), float("nan"), dtype=off.dtype)
    full[~torch.eye(n, dtype=torch.bool)] = off.reshape(-1)
    return full.numpy()


@torch.no_grad()
def walk_batch(
    model: IDKLModel, batch: Batch, weights: LossWeights | None = None, margin: float = TRIPLET_MARGIN
) -> BatchWalkthrough:
    """Run ``batch`` through a copy of ``model`` in train mode (as a training step) and collect the diagnostics.

    Args:
        model: An :class:`IDKLModel` (not modified: its copy runs the forward).
        batch: From :func:`sample_batch`.
        weights: Loss weights for the loss values (default: the ``"sysu"`` preset).
        margin: Triplet margin.
    """
    weights = weights or LossWeights()
    device = next(model.parameters()).device
    net = copy.deepcopy(model).train()
    captured: dict[str, Tensor] = {}
    hooks = [
        net.purifier.gate_in.register_forward_hook(lambda _m, _i, out: captured.__setitem__("m_IN", out.detach())),
        net.purifier.gate_raw.register_forward_hook(lambda _m, _i, out: captured.__setitem__("m_F", out.detach())),
    ]
    try:
        images, pids, modality = (t.to(device) for t in (batch.images, batch.pids, batch.modality))
        out = net(images, modality)
    finally:
        for hook in hooks:
            hook.remove()
    out = IDKLOutput(**{name: value.detach().float().cpu() for name, value in vars(out).items()})
    pids, modality = pids.cpu(), modality.cpu()
    losses = {name: float(value) for name, value in compute_losses(out, pids, modality, weights, margin=margin).items()}

    sets = {
        "shared": split_by_modality(out.feat_sh, modality),
        "specific": split_by_modality(out.feat_sp, modality),
    }
    logits = {
        "shared": split_by_modality(out.logits_sh, modality),
        "specific": split_by_modality(out.logits_sp, modality),
    }
    named = {f"{branch} · {mod}": x for branch, (v, i) in sets.items() for mod, x in (("visible", v), ("infrared", i))}
    dist = {name: distance_logits(x) for name, x in named.items()}
    zs = {f"{branch} · {mod}": z for branch, (v, i) in logits.items() for mod, z in (("visible", v), ("infrared", i))}
    m = batch.k // 2
    pairs = {
        "inter · visible (shared ↔ specific)": ("shared · visible", "specific · visible"),
        "inter · infrared (shared ↔ specific)": ("shared · infrared", "specific · infrared"),
        "intra · shared (visible ↔ infrared)": ("shared · visible", "shared · infrared"),
    }
    return BatchWalkthrough(
        batch=batch,
        output=out,
        gate_in=captured["m_IN"].float().mean(1).cpu().numpy(),
        gate_raw=captured["m_F"].float().mean(1).cpu().numpy(),
        gate_values={name: captured[name].float().mean((2, 3)).cpu().numpy() for name in ("m_IN", "m_F")},
        affinity={name: _with_nan_diagonal(F.softmax(d, dim=1)) for name, d in dist.items()},
        affinity_kl={label: float(symmetric_kl(dist[a], dist[b])) for label, (a, b) in pairs.items()},
        class_probs={name: F.softmax(z, dim=1).numpy() for name, z in zs.items()},
        set_probs={name: F.softmax(set_level_logits(z, m), dim=1).numpy() for name, z in zs.items()},
        logit_kl={
            **{f"CSA1 {label}": float(symmetric_kl(zs[a], zs[b])) for label, (a, b) in pairs.items()},
            **{
                f"CSA2 {label}": float(symmetric_kl(set_level_logits(zs[a], m), set_level_logits(zs[b], m)))
                for label, (a, b) in pairs.items()
            },
        },
        losses=losses,
        mean_distance={
            "shared": float(pairwise_distance(out.feat_sh, metric="euclidean").mean()),
            "specific": float(pairwise_distance(out.feat_sp, metric="euclidean").mean()),
        },
    )
