"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), as applied by the IDKL reference code (docs/method.md#56-re-ranking).

API::

    final = k_reciprocal_rerank(q_g_dist, q_q_dist, g_g_dist, k1=20, k2=6, lambda_value=0.3)

* ``q_g_dist``: (Q, G) query-gallery distances.
* ``q_q_dist``: (Q, Q) query-query distances.
* ``g_g_dist``: (G, G) gallery-gallery distances.
* ``k1``: size of the k-reciprocal neighbourhood (paper default 20).
* ``k2``: number of nearest neighbours averaged in the local query expansion (paper default 6; 1 = none).
* ``lambda_value``: weight of the original distance in the final mix; ``1 - lambda_value`` weighs the Jaccard
  distance of the k-reciprocal encodings (paper default 0.3).
* returns the (Q, G) re-ranked distance matrix (float32), smaller = more similar.

The matrices are used as given; the reference passes *squared* Euclidean distances (torchreid squares Euclidean
distances inside its ``re_ranking``, this function does not). The joint (Q+G, Q+G) matrix is divided by its column
maxima, as in the reference. ``cross_modal=True`` is the reference's SYSU-MM01 variant (``eval_type=True``): before the
initial ranking every distance *to a gallery item* is replaced by the joint matrix's global maximum, so each item's
neighbourhood is built from queries first (then gallery items in index order).

Differences from the reference, none of which changes the method: the initial ranking uses a stable sort (ties keep
index order; the reference's quicksort leaves them unspecified), and the encodings are float32 sparse matrices (the
reference uses dense float16). Memory is dominated by the dense joint matrix: ``4 (Q+G)^2`` bytes.

Vectorisation: the k-reciprocal sets, their expansion (the 2/3 overlap rule), the query expansion and the Jaccard
distances are all computed on whole arrays or chunks; no step loops over single items in Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

_ROW_CHUNK = 512  # items per chunk in the initial ranking / neighbourhood expansion
_PAIR_BUDGET = 1 << 23  # (query, gallery, shared neighbour) triples held at once in the Jaccard step


@dataclass(frozen=True)
class RerankConfig:
    """Settings of k-reciprocal re-ranking as used by the protocols.

    Attributes:
        k1: k-reciprocal neighbourhood size.
        k2: local query expansion size (1 = none).
        lambda_value: weight of the original distance in the final mix, in [0, 1].
        cross_modal: the reference's SYSU ``eval_type=True`` variant; ``None`` lets each protocol use the
            reference's choice (SYSU-MM01 True, LLCM and RegDB False).
    """

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    cross_modal: bool | None = None

    def __post_init__(self) -> None:
        _check_int(self.k1, "RerankConfig.k1")
        _check_int(self.k2, "RerankConfig.k2")
        if not 0.0 <= float(self.lambda_value) <= 1.0:
            raise ValueError(f"RerankConfig.lambda_value must lie in [0, 1], got {self.lambda_value!r}")


def _as_matrix(x: np.ndarray | torch.Tensor, name: str, shape: tuple[int, int]) -> np.ndarray:
    arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (from q_g_dist's (Q, G)), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; check the features it was computed from")
    return arr


def _check_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _reciprocal_mask(neighbours: np.ndarray, initial_rank: np.ndarray) -> np.ndarray:
    """(N, k) mask: ``neighbours[i, j]`` has ``i`` among its own first ``k`` neighbours."""
    k = neighbours.shape[1]
    out = np.empty(neighbours.shape, dtype=bool)
    for s in range(0, neighbours.shape[0], _ROW_CHUNK):
        e = min(s + _ROW_CHUNK, neighbours.shape[0])
        back = initial_rank[neighbours[s:e], :k]  # (c, k, k)
        out[s:e] = (back == np.arange(s, e)[:, None, None]).any(axis=2)
    return out


def k_reciprocal_rerank(
    q_g_dist: np.ndarray | torch.Tensor,
    q_q_dist: np.ndarray | torch.Tensor,
    g_g_dist: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    cross_modal: bool = False,
) -> np.ndarray:
    """Re-rank a query-gallery distance matrix with k-reciprocal encoding (see the module docstring).

    Args:
        q_g_dist: (Q, G) query-gallery distances. Not modified.
        q_q_dist: (Q, Q) query-query distances. Not modified.
        g_g_dist: (G, G) gallery-gallery distances. Not modified.
        k1: k-reciprocal neighbourhood size.
        k2: local query expansion size (1 = no expansion).
        lambda_value: weight of the (column-normalised) original distance, in [0, 1].
        cross_modal: the reference's SYSU variant: distances to gallery items are set to the global maximum before
            the initial ranking.

    Returns:
        (Q, G) float32 re-ranked distances. With ``lambda_value=1`` this is the original ``q_g_dist`` divided by the
        joint matrix's column maxima (transposed as in the reference, i.e. row ``q`` is divided by the maximum
        distance from query ``q``).
    """
    q_g = q_g_dist.detach().cpu().numpy() if isinstance(q_g_dist, torch.Tensor) else np.asarray(q_g_dist)
    if q_g.ndim != 2 or 0 in q_g.shape:
        raise ValueError(f"q_g_dist must be a non-empty (Q, G) matrix, got shape {q_g.shape}")
    num_q, num_g = q_g.shape
    q_g = _as_matrix(q_g, "q_g_dist", (num_q, num_g))
    q_q = _as_matrix(q_q_dist, "q_q_dist", (num_q, num_q))
    g_g = _as_matrix(g_g_dist, "g_g_dist", (num_g, num_g))
    k1 = _check_int(k1, "k1")
    k2 = _check_int(k2, "k2")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must lie in [0, 1], got {lambda_value!r}")
    lam = float(lambda_value)

    n = num_q + num_g
    dist = np.empty((n, n), dtype=np.float32)  # our own copy: normalised in place below
    dist[:num_q, :num_q] = q_q
    dist[:num_q, num_q:] = q_g
    dist[num_q:, :num_q] = q_g.T
    dist[num_q:, num_q:] = g_g

    # Initial ranking (raw distances), keeping only the first `width` neighbours of every item.
    half = int(np.around(k1 / 2))
    width = min(max(k1 + 1, k2), n)
    global_max = dist.max()
    initial_rank = np.empty((n, width), dtype=np.int64)
    for s in range(0, n, _ROW_CHUNK):
        rows = dist[s : s + _ROW_CHUNK].copy()
        if cross_modal:
            rows[:, num_q:] = global_max
        initial_rank[s : s + _ROW_CHUNK] = np.argsort(rows, axis=1, kind="stable")[:, :width]

    col_max = dist.max(axis=0)
    dist /= np.where(col_max > 0, col_max, 1.0)[None, :]
    original = dist.T  # original[i, j] = dist[j, i] / col_max[i], as the reference's transpose

    # k-reciprocal neighbours R(i, k1) and the half-size sets R(c, k1/2) of every candidate c.
    fwd = initial_rank[:, : min(k1 + 1, n)]
    fwd_half = initial_rank[:, : min(half + 1, n)]
    recip = _reciprocal_mask(fwd, initial_rank)  # (N, a)
    recip_half = _reciprocal_mask(fwd_half, initial_rank)  # (N, b)
    half_size = recip_half.sum(axis=1)

    rows_list: list[np.ndarray] = []
    cols_list: list[np.ndarray] = []
    for s in range(0, n, _ROW_CHUNK):
        e = min(s + _ROW_CHUNK, n)
        f, m = fwd[s:e], recip[s:e]  # (c, a)
        cand_sets = fwd_half[f]  # (c, a, b): the half-size neighbours of each candidate
        cand_mask = recip_half[f]  # (c, a, b)
        # |R(c, k1/2) ∩ R(i, k1)|: candidate-set members found among i's reciprocal neighbours
        in_recip = ((cand_sets[..., None] == f[:, None, None, :]) & m[:, None, None, :]).any(axis=3)
        overlap = (in_recip & cand_mask).sum(axis=2)  # (c, a)
        accept = m & (overlap > 2.0 / 3.0 * half_size[f])
        item = np.arange(s, e)
        r_i, r_j = np.nonzero(m)
        rows_list.append(item[r_i])
        cols_list.append(f[r_i, r_j])
        sel = accept[..., None] & cand_mask  # (c, a, b)
        c_i, _, _ = np.nonzero(sel)
        rows_list.append(item[c_i])
        cols_list.append(cand_sets[sel])
    rows = np.concatenate(rows_list)
    cols = np.concatenate(cols_list)
    keys = np.unique(rows * n + cols)
    rows, cols = keys // n, keys % n
    weight = np.exp(-original[rows, cols].astype(np.float64))
    weight /= np.bincount(rows, weights=weight, minlength=n)[rows]
    enc = sp.csr_matrix((weight.astype(np.float32), (rows, cols)), shape=(n, n))

    if k2 != 1:
        k2_eff = min(k2, n)
        expand = sp.csr_matrix(
            (
                np.full(n * k2_eff, 1.0 / k2_eff, dtype=np.float32),
                (np.repeat(np.arange(n), k2_eff), initial_rank[:, :k2_eff].reshape(-1)),
            ),
            shape=(n, n),
        )
        enc = (expand @ enc).tocsr()
    del initial_rank

    # Jaccard distance between query and gallery encodings: 1 - sum_l min / sum_l max, with
    # sum_l max = 2 - sum_l min because every encoding row sums to one.
    q_enc = enc[:num_q].tocoo()
    g_enc = enc[num_q:].tocsc()
    col_count = np.diff(g_enc.indptr)
    pair_count = col_count[q_enc.col]  # gallery entries sharing each query entry's neighbour
    per_query = np.bincount(q_enc.row, weights=pair_count, minlength=num_q)
    entry_order = np.argsort(q_enc.row, kind="stable")
    q_row, q_col, q_val = q_enc.row[entry_order], q_enc.col[entry_order], q_enc.data[entry_order]
    q_start = np.r_[0, np.cumsum(np.bincount(q_row, minlength=num_q))]
    overlap_sum = np.zeros((num_q, num_g), dtype=np.float64)
    cum = np.r_[0.0, np.cumsum(per_query)]
    s = 0
    while s < num_q:
        # the longest run of queries whose triples fit the budget (at least one query)
        e = max(s + 1, int(np.searchsorted(cum, cum[s] + _PAIR_BUDGET, side="right")) - 1)
        lo, hi = q_start[s], q_start[e]
        cnt = col_count[q_col[lo:hi]]
        total = int(cnt.sum())
        if total:
            offsets = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            g_pos = np.repeat(g_enc.indptr[q_col[lo:hi]], cnt) + offsets
            mins = np.minimum(np.repeat(q_val[lo:hi], cnt), g_enc.data[g_pos])
            flat = np.repeat(q_row[lo:hi] - s, cnt) * num_g + g_enc.indices[g_pos]
            overlap_sum[s:e] = np.bincount(flat, weights=mins, minlength=(e - s) * num_g).reshape(e - s, num_g)
        s = e
    jaccard = 1.0 - overlap_sum / (2.0 - overlap_sum)
    final = jaccard * (1.0 - lam) + original[:num_q, num_q:] * lam
    return final.astype(np.float32)
