"""The one rank core: CMC, mAP and mINP from a query-gallery distance matrix.

Every protocol in :mod:`idkl_lib.eval.protocols` ends here. Conventions (docs/method.md#52-metrics-cmc-map-minp):

* The gallery is ranked by ascending distance with a *stable* sort, so ties keep gallery order.
* Camera filter ``"all"`` (the reference's rule, SYSU-MM01): for query ``q`` every gallery item whose camera id
  equals ``q``'s is dropped, whatever its identity. ``"same_identity"`` (Market-1501 / AGW / official LLCM rule)
  drops only items with both the query's identity and its camera.
* A query with no true match left after filtering is excluded from every average (``num_queries`` counts the rest).
* CMC convention, chosen by every caller (``cmc_mode`` has no default here; the protocols default to
  ``"unique_ids"``). ``"first_match"``: rank-k is a hit when the first true match is among the first k kept items
  (torchreid, AGW). ``"unique_ids"``: the kept ranked identity list is first de-duplicated keeping first
  occurrences, so rank-k means the true identity is among the first k *distinct* identities (the reference's
  ``get_cmc``).
* AP: mean over the true matches of (number of true matches up to it) / (its 1-based rank), on the kept list.
* INP (AGW, Ye et al. TPAMI 2021): number of true matches / rank of the last (hardest) true match.

The work is vectorised over chunks of queries, so memory stays ``O(chunk_size * G)``. First-match CMC, AP and INP
only need the rank of each *true match* among the kept items, ``1 + #{kept g: d[g] < d[j] or (d[g] == d[j] and
g < j)}`` (exactly the stable sort's order), so that mode never sorts a row: it compares the kept distances with the
query's few match distances, ``O(G * matches)`` per query instead of ``O(G log G)`` with a large constant. The
``"unique_ids"`` CMC needs every identity's first position and keeps one stable ``argsort`` per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

CMCMode = Literal["first_match", "unique_ids"]
CameraFilter = Literal["all", "same_identity"]

_REPORTED_RANKS = (1, 5, 10, 20)


@dataclass(frozen=True, eq=False)
class RankResult:
    """Retrieval metrics of one evaluation pass (or their mean over trials).

    Attributes:
        cmc: (max_rank,) read-only array; ``cmc[k - 1]`` is the fraction of valid queries matched within rank k.
        mAP: Mean average precision, in [0, 1].
        mINP: Mean inverse negative penalty, in [0, 1].
        num_queries: Number of valid queries (with at least one true match after filtering). For a result built
            by :meth:`mean` it is the rounded mean over the trials.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_queries: int

    def __post_init__(self) -> None:
        cmc = np.array(self.cmc, dtype=np.float64).reshape(-1)
        if cmc.size == 0:
            raise ValueError("RankResult.cmc is empty; it needs at least rank 1")
        cmc.setflags(write=False)
        object.__setattr__(self, "cmc", cmc)
        object.__setattr__(self, "mAP", float(self.mAP))
        object.__setattr__(self, "mINP", float(self.mINP))
        object.__setattr__(self, "num_queries", int(self.num_queries))

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based), as a fraction."""
        if not 1 <= k <= self.cmc.size:
            raise ValueError(f"rank {k} is outside the computed CMC (1..{self.cmc.size}); use max_rank >= {k}")
        return float(self.cmc[k - 1])

    @property
    def r1(self) -> float:
        """CMC rank-1 (fraction)."""
        return self.rank(1)

    @property
    def r5(self) -> float:
        """CMC rank-5 (fraction)."""
        return self.rank(5)

    @property
    def r10(self) -> float:
        """CMC rank-10 (fraction)."""
        return self.rank(10)

    @property
    def r20(self) -> float:
        """CMC rank-20 (fraction)."""
        return self.rank(20)

    def as_dict(self, percent: bool = True) -> dict[str, float]:
        """``{"R1", "R5", "R10", "R20", "mAP", "mINP"}``, in percent unless ``percent=False``.

        Ranks beyond the computed CMC length (``max_rank < 20``) are left out.
        """
        scale = 100.0 if percent else 1.0
        out = {f"R{k}": scale * self.rank(k) for k in _REPORTED_RANKS if k <= self.cmc.size}
        out["mAP"] = scale * self.mAP
        out["mINP"] = scale * self.mINP
        return out

    @classmethod
    def mean(cls, results: Sequence[RankResult]) -> RankResult:
        """Average of per-trial results: CMC, mAP and mINP are averaged with equal weight per trial."""
        if len(results) == 0:
            raise ValueError("RankResult.mean needs at least one result")
        lengths = {r.cmc.size for r in results}
        if len(lengths) != 1:
            raise ValueError(f"cannot average results with different CMC lengths {sorted(lengths)}; use one max_rank")
        return cls(
            cmc=np.mean([r.cmc for r in results], axis=0),
            mAP=float(np.mean([r.mAP for r in results])),
            mINP=float(np.mean([r.mINP for r in results])),
            num_queries=int(round(float(np.mean([r.num_queries for r in results])))),
        )


def _to_numpy(values: object, name: str, what: str) -> np.ndarray:
    """``values`` as a numpy array: a tensor is moved to the CPU (``bfloat16``, which numpy lacks, becomes
    ``float32`` exactly); other inputs go through ``np.asarray``."""
    if isinstance(values, torch.Tensor):
        tensor = values.detach()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).cpu().numpy()
    if isinstance(values, (str, bytes, dict, set)) or values is None:
        raise TypeError(f"{name} must be {what} (numpy array, torch tensor or list), got {type(values).__name__}")
    return np.asarray(values)


def _as_1d(values: np.ndarray | torch.Tensor | Sequence[int], name: str) -> np.ndarray:
    arr = _to_numpy(values, name, "a 1-D sequence of integer labels")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
        arr = arr.astype(np.int64)  # whole numbers stored as floats
    if arr.dtype.kind not in "iu" and arr.size:
        raise TypeError(
            f"{name} must hold integer labels (identity or camera ids), got dtype {arr.dtype}"
            + f" (e.g. {arr[0].item()!r})"
            + "; convert it with np.asarray(..., dtype=np.int64)"
        )
    return arr


def _as_distmat(distmat: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = _to_numpy(distmat, "distmat", "a 2-D (num_query, num_gallery) distance matrix")
    if arr.ndim != 2:
        raise ValueError(f"distmat must be a 2-D (num_query, num_gallery) matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"distmat must hold real numbers, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise ValueError("distmat has no rows: the query set is empty")
    if arr.shape[1] == 0:
        raise ValueError("distmat has no columns: the gallery set is empty")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"distmat contains NaN or inf (first at query {bad[0]}, gallery {bad[1]}); check the features for NaN/inf"
        )
    return arr


# Ranks of true matches are counted in blocks of this many match slots per query, so the (chunk, slots, G) boolean
# comparison stays within about 16 bytes per distance-matrix cell of the chunk.
_SLOT_BLOCK = 16

_ChunkResult = tuple[np.ndarray, float, float]  # first-hit rank per valid query, AP sum, INP sum


def _masks(
    q_pids: np.ndarray, g_pids: np.ndarray, q_cams: np.ndarray, g_cams: np.ndarray, camera_filter: CameraFilter
) -> tuple[np.ndarray, np.ndarray]:
    """(c, G) ``keep`` and ``match`` (true match and kept) masks, in whatever gallery order the ids are given."""
    same_cam = g_cams[None, :] == q_cams[:, None] if g_cams.ndim == 1 else g_cams == q_cams[:, None]
    same_pid = g_pids[None, :] == q_pids[:, None] if g_pids.ndim == 1 else g_pids == q_pids[:, None]
    keep = ~(same_cam & same_pid) if camera_filter == "same_identity" else ~same_cam
    return keep, same_pid & keep


def _ap_inp(match_ranks: np.ndarray, num_match: np.ndarray) -> tuple[float, float]:
    """AP and INP sums from (c, m) ascending 1-based kept ranks of each query's true matches (padding after)."""
    slots = np.arange(match_ranks.shape[1])
    real = slots[None, :] < num_match[:, None]
    precision = np.where(real, (slots + 1)[None, :] / match_ranks, 0.0)
    ap = float((precision.sum(axis=1) / num_match).sum())
    last = match_ranks[np.arange(num_match.size), num_match - 1]
    return ap, float((num_match / last).sum())


def _pack_with_position(dist: np.ndarray) -> np.ndarray | None:
    """(c, G) int64 keys ordered like (distance, gallery position), or None for 64-bit distances.

    Float16/32 distances map to order-preserving int32 (sign-magnitude bits flipped for negatives; ``+ 0.0`` first
    so that -0.0 and 0.0, equal for a sort, get one key); integers that fit in int32 are taken as they are. The value
    fills the high 32 bits and the gallery position the low 32, so ``<`` on the keys is the stable sort's order.
    """
    if dist.dtype in (np.float16, np.float32):
        bits = (dist.astype(np.float32) + np.float32(0.0)).view(np.int32)
        value = np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits).astype(np.int64)
    elif np.issubdtype(dist.dtype, np.integer) and np.can_cast(dist.dtype, np.int32):
        value = dist.astype(np.int64)
    else:
        return None
    value <<= 32
    value |= np.arange(dist.shape[1], dtype=np.int64)
    return value


def _match_ranks(dist: np.ndarray, keep: np.ndarray, match: np.ndarray, num_match: np.ndarray) -> np.ndarray:
    """(c, max(num_match)) ascending 1-based ranks among kept items of every row's true matches, without a sort.

    The rank of true match ``j`` is ``1 + #{kept g: d[g] < d[j] or (d[g] == d[j] and g < j)}`` (stable order):
    one broadcast comparison of the kept items against each row's matches, ``O(G * matches)`` per row. Float16/32 and
    small-integer distances compare packed (distance, position) keys once; 64-bit distances are compared twice
    ("<" and "<="), and matches tied with another kept item (rare with real features) are recounted exactly.
    Padding slots (rows with fewer matches) hold ``G + 1`` and sort last. Every row needs ``num_match >= 1``.
    """
    num_rows, num_g = dist.shape
    width = int(num_match.max())
    rows, cols = np.nonzero(match)  # row-major, so the matches of a row are contiguous
    slot = np.arange(rows.size) - (np.cumsum(num_match) - num_match)[rows]
    packed = _pack_with_position(dist)
    if packed is not None:  # one strict comparison of (distance, gallery position) keys: exact, ties included
        keys = np.zeros((num_rows, width), dtype=np.int64)
        keys[rows, slot] = packed[rows, cols]
        kept = np.where(keep, packed, np.iinfo(np.int64).max)  # above every packed key
        ranks = np.full((num_rows, width), num_g + 1, dtype=np.int64)
        below = np.empty((num_rows, width), dtype=np.int64)
        for s in range(0, width, _SLOT_BLOCK):
            block = keys[:, s : s + _SLOT_BLOCK, None]
            below[:, s : s + _SLOT_BLOCK] = np.count_nonzero(kept[:, None, :] < block, axis=2)
        ranks[rows, slot] = below[rows, slot] + 1
        return np.sort(ranks, axis=1)
    # 64-bit distances: count "<" and "<=" separately, then settle the rare ties with the gallery order
    keys = np.zeros((num_rows, width), dtype=dist.dtype)
    keys[rows, slot] = dist[rows, cols]
    # dropped items get a distance no key is above (finite keys: +inf; integers: the dtype's maximum, which a key may
    # equal: then the "<=" count flags a tie and the exact recount below, which reads ``keep``, settles it)
    far = np.inf if np.issubdtype(dist.dtype, np.floating) else np.iinfo(dist.dtype).max
    kept = np.where(keep, dist, np.asarray(far, dtype=dist.dtype))
    below = np.empty((num_rows, width), dtype=np.int64)
    at_or_below = np.empty((num_rows, width), dtype=np.int64)
    for s in range(0, width, _SLOT_BLOCK):
        block = keys[:, s : s + _SLOT_BLOCK, None]
        below[:, s : s + _SLOT_BLOCK] = np.count_nonzero(kept[:, None, :] < block, axis=2)
        at_or_below[:, s : s + _SLOT_BLOCK] = np.count_nonzero(kept[:, None, :] <= block, axis=2)
    ranks = np.full((num_rows, width), num_g + 1, dtype=np.int64)
    ranks[rows, slot] = below[rows, slot] + 1
    tied = at_or_below[rows, slot] - below[rows, slot] > 1  # another kept item has exactly this distance
    if tied.any():
        t_rows, t_slots, t_cols = rows[tied], slot[tied], cols[tied]
        position = np.arange(num_g)
        for s in range(0, t_rows.size, num_rows):  # at most one chunk's worth of (pairs, G) at a time
            r, k, j = t_rows[s : s + num_rows], t_slots[s : s + num_rows], t_cols[s : s + num_rows]
            equal_before = (dist[r] == keys[r, k][:, None]) & keep[r] & (position[None, :] <= j[:, None])
            ranks[r, k] = below[r, k] + np.count_nonzero(equal_before, axis=1)
    return np.sort(ranks, axis=1)


def _chunk_first_match(
    dist: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    camera_filter: CameraFilter,
) -> _ChunkResult | None:
    """First-match CMC, AP and INP of a chunk of queries from the ranks of their true matches only (no sort)."""
    keep, match = _masks(q_pids, g_pids, q_cams, g_cams, camera_filter)
    num_match = match.sum(axis=1)
    valid = num_match > 0
    if not valid.any():
        return None
    if not valid.all():
        dist, keep, match, num_match = dist[valid], keep[valid], match[valid], num_match[valid]
    ranks = _match_ranks(dist, keep, match, num_match)
    ap, inp = _ap_inp(ranks, num_match)
    return ranks[:, 0], ap, inp


def _chunk_unique_ids(
    dist: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray,
    g_cams: np.ndarray,
    camera_filter: CameraFilter,
    q_codes: np.ndarray,
    by_code: np.ndarray,
    code_starts: np.ndarray,
) -> _ChunkResult | None:
    """Identity-level CMC, AP and INP of a chunk of queries from a full stable sort of their rows."""
    num_g = dist.shape[1]
    order = np.argsort(dist, axis=1, kind="stable")  # (c, G)
    keep, match = _masks(q_pids, g_pids[order], q_cams, g_cams[order], camera_filter)
    num_match = match.sum(axis=1)
    valid = num_match > 0
    if not valid.any():
        return None
    order, keep, match, num_match = order[valid], keep[valid], match[valid], num_match[valid]
    rows = np.arange(order.shape[0])
    kept_rank = np.cumsum(keep, axis=1, dtype=np.int32)  # 1-based rank among kept items (read where kept)
    # First kept rank of every identity: scatter kept ranks back to gallery order, min-reduce per identity.
    ranks_sorted = np.where(keep, kept_rank, num_g + 1)
    ranks_by_item = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks_by_item, order, ranks_sorted, axis=1)
    first_rank = np.minimum.reduceat(ranks_by_item[:, by_code], code_starts, axis=1)  # (c, U)
    true_first = first_rank[rows, q_codes[valid]]
    hit_rank = (first_rank <= true_first[:, None]).sum(axis=1)
    match_count = np.cumsum(match, axis=1, dtype=np.int32)
    precision_at_match = np.where(match, match_count / np.maximum(kept_rank, 1), 0.0)
    last_pos = num_g - 1 - np.argmax(match[:, ::-1], axis=1)
    ap = float((precision_at_match.sum(axis=1) / num_match).sum())
    return hit_rank, ap, float((num_match / kept_rank[rows, last_pos]).sum())


def evaluate_rank(
    distmat: np.ndarray | torch.Tensor,
    q_pids: np.ndarray | torch.Tensor | Sequence[int],
    g_pids: np.ndarray | torch.Tensor | Sequence[int],
    q_camids: np.ndarray | torch.Tensor | Sequence[int],
    g_camids: np.ndarray | torch.Tensor | Sequence[int],
    max_rank: int = 20,
    cmc_mode: CMCMode | None = None,
    camera_filter: CameraFilter = "all",
    chunk_size: int = 256,
) -> RankResult:
    """CMC, mAP and mINP of a ranking (see the module docstring for the exact conventions).

    Args:
        distmat: (Q, G) distances, smaller = more similar; numpy array or torch tensor (any device). Not modified.
        q_pids: (Q,) query identities.
        g_pids: (G,) gallery identities.
        q_camids: (Q,) query camera ids (relabel beforehand for rules such as SYSU's cam3 -> cam2).
        g_camids: (G,) gallery camera ids.
        max_rank: Length of the returned CMC curve. Ranks beyond the number of kept gallery items count as hits
            for every valid query (the curve has reached 1 there).
        cmc_mode: Required, no default: ``"first_match"`` (torchreid's convention) or ``"unique_ids"`` (the
            reference's identity-level CMC and the official rule, which every protocol of
            :mod:`idkl_lib.eval.protocols` uses unless told otherwise). The two agree on R1 and mAP but not on R5 and
            beyond, so a direct caller states which one it reports.
        camera_filter: ``"all"`` drops every same-camera gallery item (reference, SYSU); ``"same_identity"``
            drops only same-identity same-camera items.
        chunk_size: Queries processed at once; peak memory is about ``50 * chunk_size * G`` bytes
            (about 130 MB for the default 256 and G = 10,000).

    Returns:
        The metrics averaged over valid queries.

    Raises:
        TypeError: ``distmat`` or an id array is not array-like, or the ids are not integers (whole-number floats
            are accepted; ``bfloat16`` tensors are converted to ``float32``).
        ValueError: on inconsistent shapes, NaN/inf distances, an empty query or gallery set, bad options, or when
            no query has a true match in the gallery after filtering.
    """
    dist = _as_distmat(distmat)
    num_q, num_g = dist.shape
    q_pids_a, g_pids_a = _as_1d(q_pids, "q_pids"), _as_1d(g_pids, "g_pids")
    q_cams_a, g_cams_a = _as_1d(q_camids, "q_camids"), _as_1d(g_camids, "g_camids")
    for name, arr, expected, axis in (
        ("q_pids", q_pids_a, num_q, "rows"),
        ("q_camids", q_cams_a, num_q, "rows"),
        ("g_pids", g_pids_a, num_g, "columns"),
        ("g_camids", g_cams_a, num_g, "columns"),
    ):
        if arr.shape[0] != expected:
            raise ValueError(f"len({name}) = {arr.shape[0]} but distmat has {expected} {axis} (shape {dist.shape})")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    if cmc_mode is None:
        raise ValueError(
            "evaluate_rank needs cmc_mode: 'unique_ids' (the protocols' default, the reference's and official rule) "
            "or 'first_match' (torchreid's); R5 and beyond differ between them"
        )
    if cmc_mode not in ("first_match", "unique_ids"):
        raise ValueError(f"unknown cmc_mode {cmc_mode!r}; use 'first_match' or 'unique_ids'")
    if camera_filter not in ("all", "same_identity"):
        raise ValueError(f"unknown camera_filter {camera_filter!r}; use 'all' or 'same_identity'")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    max_rank = int(max_rank)

    # Identity codes 0..U-1 for the de-duplicated CMC; a query identity absent from the gallery gets -1.
    q_codes = by_code = code_starts = np.empty(0, dtype=np.int64)
    if cmc_mode == "unique_ids":
        uniq_ids, g_codes = np.unique(g_pids_a, return_inverse=True)
        g_codes = g_codes.reshape(-1)
        q_pos = np.clip(np.searchsorted(uniq_ids, q_pids_a), 0, uniq_ids.size - 1)
        q_codes = np.where(uniq_ids[q_pos] == q_pids_a, q_pos, -1)
        by_code = np.argsort(g_codes, kind="stable")
        code_starts = np.flatnonzero(np.r_[True, np.diff(g_codes[by_code]) != 0])

    rank_hist = np.zeros(max_rank + 1, dtype=np.int64)  # last bin: first hit beyond max_rank
    ap_sum = 0.0
    inp_sum = 0.0
    num_valid = 0
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        if cmc_mode == "first_match":
            chunk = _chunk_first_match(
                dist[start:stop], q_pids_a[start:stop], g_pids_a, q_cams_a[start:stop], g_cams_a, camera_filter
            )
        else:
            chunk = _chunk_unique_ids(
                dist[start:stop],
                q_pids_a[start:stop],
                g_pids_a,
                q_cams_a[start:stop],
                g_cams_a,
                camera_filter,
                q_codes[start:stop],
                by_code,
                code_starts,
            )
        if chunk is None:
            continue
        hit_rank, ap, inp = chunk
        rank_hist += np.bincount(np.minimum(hit_rank, max_rank + 1) - 1, minlength=max_rank + 1)
        ap_sum += ap
        inp_sum += inp
        num_valid += hit_rank.size

    if num_valid == 0:
        raise ValueError(
            f"no query has a true match in the gallery after camera filtering ({num_q} queries, {num_g} gallery "
            f"items, camera_filter={camera_filter!r}); check that query and gallery share identities"
        )
    cmc = np.cumsum(rank_hist[:max_rank]) / num_valid
    return RankResult(cmc=cmc, mAP=ap_sum / num_valid, mINP=inp_sum / num_valid, num_queries=num_valid)
