"""Identity classification loss (docs/method.md#32-identity-losses).

L_id on the shared logits, L_id_sp on the specific logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def identity_loss(logits: Tensor, pids: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy of identity logits (B, N) against labels (B,) in ``0..N-1``.

    The reference uses plain cross-entropy (no label smoothing). Half-precision logits are upcast to float32.
    """
    if logits.dim() != 2 or pids.shape != logits.shape[:1]:
        raise ValueError(
            f"identity_loss expects logits (B, N) and pids (B,), got {tuple(logits.shape)} and {tuple(pids.shape)}"
        )
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits, pids.long(), label_smoothing=label_smoothing)
