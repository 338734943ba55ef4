"""Tests for the rank core: hand-computed cases, a naive per-query reference, options and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idkl_lib.eval.rank import RankResult, evaluate_rank

# A 3 x 5 case. Gallery items g0..g4:
G_PIDS = np.array([1, 2, 1, 3, 2])
G_CAMS = np.array([1, 1, 2, 2, 3])
Q_PIDS = np.array([1, 2, 3])
Q_CAMS = np.array([4, 2, 2])
DIST = np.array(
    [
        # q0 (id 1, cam 4: no gallery camera is dropped). Sorted: g1 .1 (id2), g4 .2 (id2), g0 .5 (id1), g3 .6 (id3),
        # g2 .9 (id1) -> ids [2, 2, 1, 3, 1], true matches at ranks 3 and 5.
        [0.5, 0.1, 0.9, 0.6, 0.2],
        # q1 (id 2, cam 2). Sorted: g2 .1 (cam2, dropped), g0 .2 (id1), g3 .4 (cam2, dropped), g4 .6 (id2), g1 .8 (id2)
        # -> kept ids [1, 2, 2], true matches at kept ranks 2 and 3.
        [0.2, 0.8, 0.1, 0.4, 0.6],
        # q2 (id 3, cam 2): its only true match g3 is in cam 2 and dropped -> invalid query, excluded.
        [0.3, 0.3, 0.3, 0.3, 0.3],
    ]
)
# q0: AP = (1/3 + 2/5) / 2 = 0.3666..., INP = 2 / 5 = 0.4
# q1: AP = (1/2 + 2/3) / 2 = 0.5833..., INP = 2 / 3
AP = [(1 / 3 + 2 / 5) / 2, (1 / 2 + 2 / 3) / 2]
INP = [2 / 5, 2 / 3]


def test_hand_computed_first_match() -> None:
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, cmc_mode="first_match")
    # first true match: q0 at rank 3, q1 at rank 2 -> CMC over 2 valid queries
    np.testing.assert_allclose(res.cmc, [0.0, 0.5, 1.0, 1.0, 1.0])
    assert res.num_queries == 2
    assert res.mAP == pytest.approx(np.mean(AP))  # (0.36667 + 0.58333) / 2 = 0.475
    assert res.mINP == pytest.approx(np.mean(INP))  # (0.4 + 0.66667) / 2 = 0.53333


def test_hand_computed_unique_ids() -> None:
    res = evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, cmc_mode="unique_ids")
    # de-duplicated kept id lists: q0 [2, 1, 3] -> rank 2; q1 [1, 2] -> rank 2
    np.testing.assert_allclose(res.cmc, [0.0, 1.0, 1.0, 1.0, 1.0])
    # AP and INP are computed on the non-deduplicated list in both modes
    assert res.mAP == pytest.approx(np.mean(AP))
    assert res.mINP == pytest.approx(np.mean(INP))


def test_same_identity_camera_filter() -> None:
    res = evaluate_rank(
        DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, camera_filter="same_identity", cmc_mode="first_match"
    )
    # q1 now keeps g2 (id1, cam2) and g3 (id3, cam2): ids [1, 1, 3, 2, 2], matches at 4 and 5.
    # q2 still loses g3 (id3 and cam2 both equal) -> still invalid.
    np.testing.assert_allclose(res.cmc, [0.0, 0.0, 0.5, 1.0, 1.0])
    assert res.mAP == pytest.approx((AP[0] + (1 / 4 + 2 / 5) / 2) / 2)
    assert res.mINP == pytest.approx((INP[0] + 2 / 5) / 2)


def test_same_camera_items_of_other_identities_are_dropped() -> None:
    # One query (id 1, cam 1); the closest item is a *different* identity in cam 1 -> dropped, so the true match
    # (cam 2) is at rank 1 among kept items.
    res = evaluate_rank(np.array([[0.1, 0.2, 0.3]]), [1], [5, 1, 6], [1], [1, 2, 2], max_rank=3, cmc_mode="first_match")
    np.testing.assert_allclose(res.cmc, [1.0, 1.0, 1.0])
    assert res.mAP == pytest.approx(1.0)
    assert res.mINP == pytest.approx(1.0)


def test_max_rank_beyond_gallery_size_counts_as_hit() -> None:
    res = evaluate_rank(np.array([[0.2, 0.1]]), [1], [1, 2], [3], [1, 1], max_rank=4, cmc_mode="first_match")
    # sorted ids [2, 1]: first hit at rank 2; ranks 3, 4 exceed the gallery and stay at 1
    np.testing.assert_allclose(res.cmc, [0.0, 1.0, 1.0, 1.0])


def test_ties_keep_gallery_order() -> None:
    # all distances equal: the stable sort keeps gallery order -> ids [2, 1, 1]
    res = evaluate_rank(np.zeros((1, 3)), [1], [2, 1, 1], [0], [1, 1, 1], max_rank=3, cmc_mode="first_match")
    np.testing.assert_allclose(res.cmc, [0.0, 1.0, 1.0])
    assert res.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert res.mINP == pytest.approx(2 / 3)


def _naive(dist, q_pids, g_pids, q_cams, g_cams, max_rank, cmc_mode, camera_filter):
    """Straightforward per-query reference written independently of the vectorised code."""
    cmcs, aps, inps = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        kept_ids = []
        for g in order:
            same_cam = g_cams[g] == q_cams[i]
            drop = same_cam and (camera_filter == "all" or g_pids[g] == q_pids[i])
            if not drop:
                kept_ids.append(g_pids[g])
        match = [pid == q_pids[i] for pid in kept_ids]
        if not any(match):
            continue
        hit_ranks = [r + 1 for r, m in enumerate(match) if m]
        aps.append(np.mean([(j + 1) / r for j, r in enumerate(hit_ranks)]))
        inps.append(len(hit_ranks) / hit_ranks[-1])
        if cmc_mode == "unique_ids":
            seen: list[int] = []
            for pid in kept_ids:
                if pid not in seen:
                    seen.append(pid)
            first = seen.index(q_pids[i]) + 1
        else:
            first = hit_ranks[0]
        cmcs.append([1.0 if first <= k else 0.0 for k in range(1, max_rank + 1)])
    return np.mean(cmcs, axis=0), float(np.mean(aps)), float(np.mean(inps)), len(aps)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("cmc_mode", ["first_match", "unique_ids"])
@pytest.mark.parametrize("camera_filter", ["all", "same_identity"])
def test_matches_naive_reference(seed: int, cmc_mode: str, camera_filter: str) -> None:
    rng = np.random.default_rng(seed)
    nq, ng = 37, 61
    q_pids = rng.integers(0, 12, nq)
    g_pids = rng.integers(0, 10, ng)  # some query ids are absent from the gallery -> invalid queries
    q_cams = rng.integers(1, 4, nq)
    g_cams = rng.integers(1, 5, ng)
    dist = rng.integers(0, 8, (nq, ng)).astype(np.float32)  # many ties: the stable order matters
    expected = _naive(dist, q_pids, g_pids, q_cams, g_cams, 20, cmc_mode, camera_filter)
    # a chunk size that does not divide Q exercises the chunk boundaries
    res = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, 20, cmc_mode, camera_filter, chunk_size=5)
    np.testing.assert_allclose(res.cmc, expected[0])
    assert res.mAP == pytest.approx(expected[1])
    assert res.mINP == pytest.approx(expected[2])
    assert res.num_queries == expected[3]


@pytest.mark.parametrize("seed", [10, 11, 12])
@pytest.mark.parametrize("camera_filter", ["all", "same_identity"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, 256])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_first_match_counting_path_matches_naive_with_ties(
    seed: int, camera_filter: str, chunk_size: int, dtype: type
) -> None:
    # integer-valued distances with few levels: most true matches tie with kept items of other identities and with
    # dropped items, so the stable gallery-order rule decides every rank; a few identities have many images (more
    # match slots per query than one comparison block)
    rng = np.random.default_rng(seed)
    nq, ng = 53, 211
    g_pids = np.concatenate([rng.integers(0, 15, ng - 40), np.full(40, 3)])
    rng.shuffle(g_pids)
    q_pids = rng.integers(0, 17, nq)
    q_cams, g_cams = rng.integers(1, 4, nq), rng.integers(1, 5, ng)
    dist = rng.integers(0, 6, (nq, ng)).astype(dtype)
    expected = _naive(dist, q_pids, g_pids, q_cams, g_cams, 20, "first_match", camera_filter)
    res = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, 20, "first_match", camera_filter, chunk_size=chunk_size)
    np.testing.assert_allclose(res.cmc, expected[0], rtol=0, atol=1e-12)
    assert res.mAP == pytest.approx(expected[1], rel=1e-12)
    assert res.mINP == pytest.approx(expected[2], rel=1e-12)
    assert res.num_queries == expected[3]
    # the sort-based unique-ids path computes AP and INP its own way: same values
    res_u = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, 20, "unique_ids", camera_filter, chunk_size=chunk_size)
    assert res_u.mAP == pytest.approx(res.mAP, rel=1e-12)
    assert res_u.mINP == pytest.approx(res.mINP, rel=1e-12)


@pytest.mark.parametrize("camera_filter", ["all", "same_identity"])
def test_first_match_counting_path_on_real_valued_and_extreme_distances(camera_filter: str) -> None:
    rng = np.random.default_rng(5)
    nq, ng = 40, 300
    q_pids, g_pids = rng.integers(0, 20, nq), rng.integers(0, 20, ng)
    q_cams, g_cams = rng.integers(1, 3, nq), rng.integers(1, 4, ng)
    cases = [
        rng.random((nq, ng)).astype(np.float32),  # (almost) no ties
        np.round(rng.random((nq, ng)), 1) - 0.5,  # negative values and ties
        np.where(rng.random((nq, ng)) < 0.5, -0.0, 0.0),  # -0.0 and 0.0 compare equal: gallery order
        np.zeros((nq, ng)),  # everything tied: pure gallery order
        np.where(rng.random((nq, ng)) < 0.5, np.iinfo(np.int64).max, 3).astype(np.int64),  # dtype maximum
        rng.integers(0, 3, (nq, ng)).astype(np.uint8),
        rng.integers(0, 4, (nq, ng)).astype(np.float16),
    ]
    for dist in cases:
        expected = _naive(dist, q_pids, g_pids, q_cams, g_cams, 20, "first_match", camera_filter)
        res = evaluate_rank(
            dist, q_pids, g_pids, q_cams, g_cams, camera_filter=camera_filter, chunk_size=9, cmc_mode="first_match"
        )
        np.testing.assert_allclose(res.cmc, expected[0], rtol=0, atol=1e-12)
        assert res.mAP == pytest.approx(expected[1], rel=1e-12)
        assert res.mINP == pytest.approx(expected[2], rel=1e-12)
        assert res.num_queries == expected[3]


def test_torch_and_numpy_inputs_agree_and_are_not_mutated() -> None:
    rng = np.random.default_rng(7)
    dist = rng.random((9, 14))
    q_pids, g_pids = rng.integers(0, 4, 9), rng.integers(0, 4, 14)
    q_cams, g_cams = rng.integers(1, 3, 9), rng.integers(1, 4, 14)
    copies = [a.copy() for a in (dist, q_pids, g_pids, q_cams, g_cams)]
    res_np = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, cmc_mode="unique_ids")
    for before, after in zip(copies, (dist, q_pids, g_pids, q_cams, g_cams), strict=True):
        np.testing.assert_array_equal(before, after)
    t_dist = torch.from_numpy(dist.copy())
    res_t = evaluate_rank(t_dist, torch.from_numpy(q_pids), list(g_pids), q_cams, g_cams, cmc_mode="unique_ids")
    assert torch.equal(t_dist, torch.from_numpy(dist))
    np.testing.assert_allclose(res_t.cmc, res_np.cmc)
    assert res_t.mAP == pytest.approx(res_np.mAP)


def test_perfect_ranking_scores_one() -> None:
    pids = np.arange(6)
    dist = 1.0 - np.eye(6)
    res = evaluate_rank(dist, pids, pids, np.zeros(6), np.ones(6), cmc_mode="first_match")
    assert res.r1 == res.r20 == res.mAP == res.mINP == 1.0
    assert res.cmc.shape == (20,)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q_pids": [1, 2]}, r"len\(q_pids\) = 2 but distmat has 3 rows"),
        ({"g_camids": [1, 1, 1, 1]}, r"len\(g_camids\) = 4 but distmat has 5 columns"),
        ({"distmat": np.full((3, 5), np.nan)}, "NaN or inf"),
        ({"distmat": np.zeros((3,))}, "2-D"),
        ({"max_rank": 0}, "max_rank"),
        ({"cmc_mode": "cuhk03"}, "cmc_mode"),
        ({"camera_filter": "none"}, "camera_filter"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"q_pids": [7, 8, 9]}, "no query has a true match"),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    args = {
        "distmat": DIST,
        "q_pids": Q_PIDS,
        "g_pids": G_PIDS,
        "q_camids": Q_CAMS,
        "g_camids": G_CAMS,
        "cmc_mode": "first_match",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        evaluate_rank(**args)


def test_empty_query_set_raises() -> None:
    with pytest.raises(ValueError, match="query set is empty"):
        evaluate_rank(np.zeros((0, 5)), [], G_PIDS, [], G_CAMS, cmc_mode="first_match")


def test_inf_distance_raises() -> None:
    dist = DIST.copy()
    dist[1, 2] = np.inf
    with pytest.raises(ValueError, match="query 1, gallery 2"):
        evaluate_rank(dist, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, cmc_mode="first_match")


def test_rank_result_dict_mean_and_limits() -> None:
    a = RankResult(cmc=np.linspace(0.5, 1.0, 20), mAP=0.4, mINP=0.2, num_queries=10)
    b = RankResult(cmc=np.linspace(0.7, 1.0, 20), mAP=0.6, mINP=0.4, num_queries=12)
    d = a.as_dict()
    assert set(d) == {"R1", "R5", "R10", "R20", "mAP", "mINP"}
    assert d["R1"] == pytest.approx(50.0) and d["mAP"] == pytest.approx(40.0)
    assert a.as_dict(percent=False)["R20"] == pytest.approx(1.0)
    m = RankResult.mean([a, b])
    assert m.r1 == pytest.approx(0.6) and m.mAP == pytest.approx(0.5) and m.mINP == pytest.approx(0.3)
    assert m.num_queries == 11
    short = RankResult(cmc=np.array([0.5, 0.9]), mAP=0.1, mINP=0.1, num_queries=1)
    assert set(short.as_dict()) == {"R1", "mAP", "mINP"}
    with pytest.raises(ValueError, match="use max_rank >= 5"):
        _ = short.r5
    with pytest.raises(ValueError, match="different CMC lengths"):
        RankResult.mean([a, short])
    with pytest.raises(ValueError, match="at least one"):
        RankResult.mean([])
    with pytest.raises(ValueError):
        a.cmc[0] = 0.0  # read-only: a frozen result cannot be edited through its array


def test_cmc_mode_is_explicit_in_the_core_and_unique_ids_in_every_protocol() -> None:
    """The rank core has no CMC default (the conventions differ from R5 on); every protocol states unique_ids."""
    import inspect

    from idkl_lib.eval import llcm, protocols, regdb

    with pytest.raises(ValueError, match="evaluate_rank needs cmc_mode"):
        evaluate_rank(DIST, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert inspect.signature(evaluate_rank).parameters["cmc_mode"].default is None
    defaults = {
        fn.__qualname__: inspect.signature(fn).parameters["cmc_mode"].default
        for module in (protocols, regdb, llcm)
        for fn in vars(module).values()
        if inspect.isfunction(fn)
        and fn.__module__ == module.__name__
        and "cmc_mode" in inspect.signature(fn).parameters
    }
    assert defaults and set(defaults.values()) == {"unique_ids"}, defaults
