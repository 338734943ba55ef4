"""The IDKL training objective (docs/method.md#38-total-objective-and-weight-presets) as a dict of weighted,
separately logged terms.

``total = sum(compute_losses(out, pids, modality, weights).values())``. With ``LossWeights()`` (the ``"sysu"``
preset) this equals the reference's objective for its batch-120 branch:

    L = Tri(f_sh) + Tri(f_sp) + L_tgsa + 0.1 (L_F + L_mIN) + L_id_sp + L_unad + L_pse + L_csa1 + L_csa2 + L_id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import LossWeights
from ..data.records import INFRARED, VISIBLE
from .alignment import _csa1_inter, _csa2_inter, _csa2_intra, _tgsa_inter, _tgsa_intra, _tgsa_intra_cross, symmetric_kl
from .identity import identity_loss
from .modality import _modality_ce, check_modality, confuser_pseudo_labels
from .purifier import _layout_centroid_distance, entropy_margin_loss
from .triplet import TRIPLET_MARGIN, _batch_hard_triplet

if TYPE_CHECKING:
    from ..models.idkl import IDKLOutput

_LAYOUT_HELP = (
    "IDKL's losses need the cross-modality identity sampler's batch layout "
    "(docs/method.md#31-notation-and-batch-layout): P >= 2 distinct identities x K "
    "images (K even), each identity's K images contiguous and alternating infrared (1), visible (0), infrared, "
    "visible, ... (K/2 of each). Build the loader with idkl_lib.data.CrossModalityIdentitySampler(p=P, k=K) and do not "
    "shuffle or drop samples within a batch"
)


class BatchLayout(NamedTuple):
    """P identities x K images per batch (K/2 per modality)."""

    num_ids: int
    num_instances: int


def check_batch_layout(pids: Tensor, modality: Tensor) -> BatchLayout:
    """Assert the sampler layout the losses rely on (docs/method.md#31-notation-and-batch-layout) and return (P, K).

    Costs two host-device synchronisations, whatever the batch size.

    Args:
        pids: (B,) identity labels.
        modality: (B,) 0 = visible, 1 = infrared.

    Raises:
        ValueError: The batch breaks the layout; the message says how, and how to build a conforming loader.
    """
    if pids.dim() != 1 or pids.numel() == 0:
        raise ValueError(f"pids must be a non-empty (B,) tensor, got shape {tuple(pids.shape)}. {_LAYOUT_HELP}")
    b = pids.numel()
    if modality.shape != pids.shape:
        raise ValueError(f"modality must have shape ({b},) like pids, got {tuple(modality.shape)}")
    modality = modality.long()
    differs = pids != pids[0]
    k = int(torch.where(differs.any(), differs.int().argmax(), b))  # length of the first identity block
    if k % 2 or b % k:
        raise ValueError(
            f"the first identity block has K={k} images in a batch of {b}; K must be even and divide the batch. "
            f"{_LAYOUT_HELP}"
        )
    p = b // k
    blocks = pids.view(p, k)
    first_ids = blocks[:, 0].sort().values
    pattern = torch.tensor([INFRARED, VISIBLE], device=modality.device).repeat(k // 2)
    bad_value, not_contiguous, repeated, bad_order = torch.stack(
        [
            ((modality != VISIBLE) & (modality != INFRARED)).any(),
            (blocks != blocks[:, :1]).any(),
            (first_ids[1:] == first_ids[:-1]).any(),
            (modality.view(p, k) != pattern).any(),
        ]
    ).tolist()
    if bad_value:
        check_modality(modality, b)  # raises with the offending values
    if not_contiguous:
        raise ValueError(
            f"the batch of {b} does not split into contiguous blocks of K={k} equal labels. {_LAYOUT_HELP}"
        )
    if repeated:
        raise ValueError(f"an identity occupies more than one block of K={k} images. {_LAYOUT_HELP}")
    if p < 2:
        raise ValueError(
            f"the batch holds a single identity (P=1, K={k}); the triplet loss needs negatives. {_LAYOUT_HELP}"
        )
    if bad_order:
        first = int((modality.view(p, k) != pattern).any(dim=1).int().argmax())
        raise ValueError(
            f"identity block {first} has modalities {modality.view(p, k)[first].tolist()}, expected "
            f"{pattern.tolist()}. {_LAYOUT_HELP}"
        )
    return BatchLayout(num_ids=p, num_instances=k)


def float32_output(out: IDKLOutput) -> IDKLOutput:
    """``out`` with every float16/bfloat16 tensor cast to float32 (wider tensors are kept as they are)."""
    low = (torch.float16, torch.bfloat16)
    return dataclasses.replace(
        out,
        **{
            f.name: getattr(out, f.name).float()
            for f in dataclasses.fields(out)
            if isinstance(getattr(out, f.name), Tensor) and getattr(out, f.name).dtype in low
        },
    )


def compute_losses(
    out: IDKLOutput, pids: Tensor, modality: Tensor, weights: LossWeights, *, margin: float = TRIPLET_MARGIN
) -> dict[str, Tensor]:
    """The weighted IDKL loss terms of one batch; only terms with a non-zero weight are computed.

    Every term is computed in float32 whatever the model ran in: half-precision outputs (e.g. from a bf16
    ``torch.autocast`` forward) are cast to float32 and autocast is switched off inside, so distances, softmaxes
    and KL terms never run in bf16 (as the reference's apex O1 kept its loss inputs in float32). Gradients flow
    back through the casts into the half-precision graph.

    The layout is checked once (:func:`check_batch_layout`); the terms then use strided views of the batch
    (infrared rows at even, visible rows at odd positions) and run without further host-device synchronisation.

    Args:
        out: The model output for the batch.
        pids: (B,) identity labels in ``0..num_classes-1``.
        modality: (B,) 0 = visible, 1 = infrared, in the sampler's layout.
        weights: Weight of each term (:class:`~idkl_lib.config.LossWeights`).
        margin: Triplet margin (reference: 1.3).

    Returns:
        ``{term name: weight * term}`` (scalar tensors, float32 or wider) in :meth:`LossWeights.names` order.
    """
    layout = check_batch_layout(pids, modality)
    with torch.autocast(pids.device.type, enabled=False):
        return _weighted_terms(float32_output(out), pids, modality.long(), weights, margin, layout)


def _weighted_terms(
    out: IDKLOutput, pids: Tensor, modality: Tensor, weights: LossWeights, margin: float, layout: BatchLayout
) -> dict[str, Tensor]:
    m = layout.num_instances // 2

    def vi(x: Tensor) -> tuple[Tensor, Tensor]:  # (visible rows, infrared rows), batch order
        return x[1::2], x[0::2]

    terms: dict[str, Callable[[], Tensor]] = {
        "id": lambda: identity_loss(out.logits_sh, pids),
        "id_sp": lambda: identity_loss(out.logits_sp, pids),
        "tri_sh": lambda: _batch_hard_triplet(out.feat_sh, pids, margin),
        "tri_sp": lambda: _batch_hard_triplet(out.feat_sp, pids, margin),
        "ip_entropy": lambda: entropy_margin_loss(out.ip_logits_raw, out.ip_logits_raw_gated),
        "ip_centroid": lambda: F.relu(
            _layout_centroid_distance(out.ip_feat_in_gated, layout.num_ids)
            - _layout_centroid_distance(out.ip_feat_in, layout.num_ids)
        ).mean(),
        "tgsa_inter": lambda: _tgsa_inter(*vi(out.feat_sh), *vi(out.feat_sp)),
        "tgsa_intra": lambda: _tgsa_intra(*vi(out.feat_sh)),
        "tgsa_intra_cross": lambda: _tgsa_intra_cross(*vi(out.feat_sh)),
        "csa1_inter": lambda: _csa1_inter(*vi(out.logits_sh), *vi(out.logits_sp)),
        "csa1_intra": lambda: symmetric_kl(*vi(out.logits_sh)),
        "csa2_inter": lambda: _csa2_inter(*vi(out.logits_sh), *vi(out.logits_sp), m),
        "csa2_intra": lambda: _csa2_intra(*vi(out.logits_sh), m),
        "disc": lambda: _modality_ce(out.disc_logits, modality),
        "confuser": lambda: _modality_ce(out.confuser_logits, confuser_pseudo_labels(modality)),
    }
    return {name: weight * terms[name]() for name, weight in weights.active().items()}
