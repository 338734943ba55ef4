"""The retrieval path as a module of its own: image batch -> L2-normalised retrieval feature
(docs/method.md#26-retrieval-feature). What an ONNX export contains and what a deployed model runs."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .idkl import IDKLModel, Which

__all__ = ["RetrievalModule"]


class RetrievalModule(nn.Module):
    """``images (B, 3, H, W)`` -> ``F.normalize(model.embed(images, which, flip))`` ``(B, D)``.

    Args:
        model: A trained :class:`IDKLModel` (call ``eval()`` on this module so the BNNecks use running statistics).
        which: ``"shared"`` (the paper's retrieval feature), ``"specific"`` or ``"concat"``.
        flip: Average each image's feature with its mirror image's (before the normalisation), as
            :func:`idkl_lib.eval.features.extract_features` does.
    """

    def __init__(self, model: IDKLModel, which: Which = "shared", flip: bool = False) -> None:
        super().__init__()
        self.model = model
        self.which: Which = which
        self.flip = bool(flip)

    def forward(self, images: Tensor) -> Tensor:
        return F.normalize(self.model.embed(images, which=self.which, flip=self.flip), dim=1)

    def extra_repr(self) -> str:
        return f"which={self.which!r}, flip={self.flip}"
