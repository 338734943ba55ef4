"""Pairwise distances shared by the losses, evaluation and visualisation (one implementation, tested once)."""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor

Metric = Literal["euclidean", "sqeuclidean", "cosine"]


def pairwise_distance(x: Tensor, y: Tensor | None = None, metric: Metric = "euclidean", eps: float = 1e-12) -> Tensor:
    """Distance matrix between the rows of ``x`` (N, D) and ``y`` (M, D); ``y`` defaults to ``x``.

    ``euclidean`` is ``sqrt(clamp(|x|^2 + |y|^2 - 2 x.y, eps))`` (the clamp keeps the gradient finite on the
    diagonal, as in the reference triplet loss); ``sqeuclidean`` is the same without the square root;
    ``cosine`` is ``1 - cos(x, y)``. Returns (N, M) in the dtype of ``x``.
    """
    if y is None:
        y = x
    if x.dim() != 2 or y.dim() != 2 or x.size(1) != y.size(1):
        raise ValueError(
            f"pairwise_distance expects (N, D) and (M, D) tensors, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * (x @ y.t())
    if metric == "sqeuclidean":
        return sq.clamp_min(0.0)
    if metric == "euclidean":
        return sq.clamp_min(eps).sqrt()
    raise ValueError(f"unknown metric {metric!r}; use 'euclidean', 'sqeuclidean' or 'cosine'")


def off_diagonal(m: Tensor) -> Tensor:
    """The (N, N-1) matrix of ``m`` (N, N) with its diagonal removed, row order kept."""
    n = m.size(0)
    if m.dim() != 2 or m.size(1) != n:
        raise ValueError(f"off_diagonal expects a square matrix, got {tuple(m.shape)}")
    # Row-major, the diagonal sits every n + 1 elements: drop element 0, cut rows of n + 1 and drop their last column
    # (the next diagonal element). No boolean indexing, so no host-device synchronisation.
    return m.reshape(-1)[1:].view(n - 1, n + 1)[:, :-1].reshape(n, n - 1)


__all__ = ["Metric", "off_diagonal", "pairwise_distance"]
