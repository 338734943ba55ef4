"""Tests for k-reciprocal re-ranking: a naive loop reference, lambda = 1, a ranking it fixes, shapes, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idkl_lib.eval.rerank import RerankConfig, k_reciprocal_rerank


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)


def _naive_rerank(q_g, q_q, g_g, k1, k2, lam, cross_modal):
    """Item-by-item k-reciprocal re-ranking (Zhong et al. 2017) in float64, written from the paper's description."""
    nq = q_q.shape[0]
    d = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64)
    n = d.shape[0]
    orig = (d / d.max(axis=0)).T
    rank_d = d.copy()
    if cross_modal:
        rank_d[:, nq:] = d.max()
    ranks = [list(np.argsort(rank_d[i], kind="stable")) for i in range(n)]

    def reciprocal(i: int, k: int) -> set[int]:
        return {j for j in ranks[i][: k + 1] if i in ranks[j][: k + 1]}

    enc = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, int(np.around(k1 / 2)))
            if len(rc & r) > 2 / 3 * len(rc):
                expanded |= rc
        idx = sorted(expanded)
        w = np.exp(-orig[i, idx])
        enc[i, idx] = w / w.sum()
    if k2 != 1:
        enc = np.stack([enc[ranks[i][:k2]].mean(axis=0) for i in range(n)])
    out = np.zeros((nq, n - nq))
    for i in range(nq):
        for j in range(nq, n):
            inter = np.minimum(enc[i], enc[j]).sum()
            union = np.maximum(enc[i], enc[j]).sum()
            out[i, j - nq] = 1.0 - inter / union
    return out * (1 - lam) + orig[:nq, nq:] * lam


def _random_case(seed: int, nq: int = 14, ng: int = 19, dim: int = 4):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(nq, dim))
    g = rng.normal(size=(ng, dim))
    return _sq_dists(q, g), _sq_dists(q, q), _sq_dists(g, g)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cross_modal", [False, True])
@pytest.mark.parametrize(("k1", "k2"), [(5, 3), (4, 1), (7, 2)])
def test_matches_naive_reference(seed: int, cross_modal: bool, k1: int, k2: int) -> None:
    q_g, q_q, g_g = _random_case(seed)
    expected = _naive_rerank(q_g, q_q, g_g, k1, k2, 0.3, cross_modal)
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=0.3, cross_modal=cross_modal)
    assert got.shape == (14, 19) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_k_larger_than_item_count_is_clamped() -> None:
    q_g, q_q, g_g = _random_case(5, nq=3, ng=4)
    expected = _naive_rerank(q_g, q_q, g_g, 20, 6, 0.3, False)
    got = k_reciprocal_rerank(q_g, q_q, g_g)  # defaults k1=20, k2=6 with only 7 items
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_lambda_one_returns_normalised_original() -> None:
    q_g, q_q, g_g = _random_case(3)
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=5, k2=3, lambda_value=1.0)
    # joint matrix is symmetric, so dividing column j by its max and transposing = dividing query row i by the
    # largest distance from query i to any item (query or gallery)
    row_max = np.maximum(q_q.max(axis=1), q_g.max(axis=1))
    np.testing.assert_allclose(got, q_g / row_max[:, None], rtol=1e-6)


def test_rerank_fixes_a_ranking() -> None:
    # 1-D points, squared distances, k1 = 3 (4 forward neighbours including the item itself).
    # Identity A: query q0 at 0, query q1 at 2.3, gallery a0 at 2.0 and a1 at 2.6.
    # Identity B: gallery b0 at -1.5 and a tight cluster b1..b3 at -2.5, -2.6, -2.7.
    # q0's plain nearest gallery item is b0 (2.25 < 4.0), but q0 is not among b0's 4 nearest (b1..b3 are nearer),
    # whereas q0, a0 and q1 are mutual neighbours -> R(q0) = {q0, a0, q1} and the Jaccard term favours a0.
    q = np.array([[0.0], [2.3]])
    g = np.array([[2.0], [2.6], [-1.5], [-2.5], [-2.6], [-2.7]])
    g_ids = np.array(["A", "A", "B", "B", "B", "B"])
    q_g, q_q, g_g = _sq_dists(q, g), _sq_dists(q, q), _sq_dists(g, g)
    assert g_ids[np.argmin(q_g[0])] == "B"  # the plain ranking gets q0 wrong
    final = k_reciprocal_rerank(q_g, q_q, g_g, k1=3, k2=1, lambda_value=0.3)
    assert g_ids[np.argmin(final[0])] == "A"
    assert g_ids[np.argmin(final[1])] == "A"
    # b0 shares no k-reciprocal neighbour with q0: Jaccard distance 1, so final = 0.7 + 0.3 * 2.25 / 7.29
    assert final[0, 2] == pytest.approx(0.7 + 0.3 * 2.25 / 7.29, rel=1e-5)


def test_inputs_not_mutated_and_torch_accepted() -> None:
    q_g, q_q, g_g = _random_case(4)
    copies = [a.copy() for a in (q_g, q_q, g_g)]
    out_np = k_reciprocal_rerank(q_g, q_q, g_g, k1=5, k2=3, cross_modal=True)
    for before, after in zip(copies, (q_g, q_q, g_g), strict=True):
        np.testing.assert_array_equal(before, after)
    tensors = [torch.from_numpy(a.copy()) for a in (q_g, q_q, g_g)]
    out_t = k_reciprocal_rerank(*tensors, k1=5, k2=3, cross_modal=True)
    np.testing.assert_allclose(out_t, out_np, rtol=1e-6)
    for t, a in zip(tensors, (q_g, q_q, g_g), strict=True):
        np.testing.assert_array_equal(t.numpy(), a)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q_q_dist": np.zeros((3, 3))}, r"q_q_dist must have shape \(14, 14\)"),
        ({"g_g_dist": np.zeros((19, 18))}, r"g_g_dist must have shape \(19, 19\)"),
        ({"q_g_dist": np.zeros((0, 19))}, "non-empty"),
        ({"k1": 0}, "k1"),
        ({"k2": 2.5}, "k2"),
        ({"lambda_value": 1.5}, "lambda_value"),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    q_g, q_q, g_g = _random_case(0)
    args = {"q_g_dist": q_g, "q_q_dist": q_q, "g_g_dist": g_g}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        k_reciprocal_rerank(**args)


def test_nan_raises() -> None:
    q_g, q_q, g_g = _random_case(0)
    q_g = q_g.copy()
    q_g[2, 3] = np.nan
    with pytest.raises(ValueError, match="q_g_dist contains NaN"):
        k_reciprocal_rerank(q_g, q_q, g_g)


def test_rerank_config_validates() -> None:
    assert RerankConfig() == RerankConfig(k1=20, k2=6, lambda_value=0.3, cross_modal=None)
    with pytest.raises(ValueError, match="RerankConfig.k1"):
        RerankConfig(k1=0)
    with pytest.raises(ValueError, match="RerankConfig.lambda_value"):
        RerankConfig(lambda_value=-0.1)
