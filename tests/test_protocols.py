"""Tests for the SYSU-MM01 / RegDB / LLCM protocol wrappers on small hand-built datasets."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from idkl_lib.data.records import INFRARED, VISIBLE, Sample, VIDataset
from idkl_lib.data.sysu_perm import read_rand_perm_cam, write_rand_perm_cam
from idkl_lib.eval import (
    RankResult,
    RerankConfig,
    evaluate_dataset,
    evaluate_llcm,
    evaluate_rank,
    evaluate_regdb,
    evaluate_sysu,
    llcm_gallery_trials,
    mean_over_splits,
    sysu_gallery_trials,
)

SYSU_IDS = (7, 9, 12)
NUM_IMAGES = 11  # per (gallery camera, identity); multi-shot takes 10


def _onehot(pids: list[int], ids: tuple[int, ...], extra: int = 0) -> np.ndarray:
    out = np.zeros((len(pids), len(ids) + extra), dtype=np.float32)
    out[np.arange(len(pids)), [ids.index(p) for p in pids]] = 1.0
    return out


@pytest.fixture(scope="module")
def sysu(tmp_path_factory: pytest.TempPathFactory) -> VIDataset:
    """3 test ids; gallery cams 1, 2, 4, 5 x 11 images (id 12 absent from cam 5); query cams 3, 6 x 2 images."""
    rng = np.random.default_rng(0)
    gallery, table = [], {}
    for cam in (1, 2, 4, 5):
        for pid in SYSU_IDS:
            if cam == 5 and pid == 12:
                continue
            gallery += [Sample(f"/x/cam{cam}/{pid:04d}/{n:04d}.jpg", pid, cam, VISIBLE) for n in range(1, 12)]
            table[(cam, pid)] = np.stack([rng.permutation(NUM_IMAGES) + 1 for _ in range(10)])
    query = [
        Sample(f"/x/cam{cam}/{pid:04d}/{n:04d}.jpg", pid, cam, INFRARED)
        for cam in (3, 6)
        for pid in SYSU_IDS
        for n in (1, 2)
    ]
    path = write_rand_perm_cam(tmp_path_factory.mktemp("sysu") / "exp" / "rand_perm_cam.mat", table)
    return VIDataset("sysu", Path("/x"), (), tuple(query), tuple(gallery), 0, {"rand_perm_cam": str(path)})


def _regdb(swap: bool = False, trial: int = 1) -> tuple[VIDataset, np.ndarray, np.ndarray]:
    """4 ids x 2 images per modality; with ``swap`` the visible features of ids 1 and 2 are exchanged."""
    ids = (1, 2, 3, 4)
    thermal = [Sample(f"/r/Thermal/{p}/t_{p}_{i}.bmp", p, 3, INFRARED) for p in ids for i in range(2)]
    visible = [Sample(f"/r/Visible/{p}/v_{p}_{i}.bmp", p, 2, VISIBLE) for p in ids for i in range(2)]
    look = {1: 2, 2: 1} if swap else {}
    q = _onehot([s.pid for s in thermal], ids)
    g = _onehot([look.get(s.pid, s.pid) for s in visible], ids)
    return VIDataset("regdb", Path("/r"), (), tuple(thermal), tuple(visible), 0, {"trial": trial}), q, g


def _llcm() -> VIDataset:
    """3 ids, 4 cameras per modality, 1-3 images per (id, camera); id 3 has no camera-4 images."""
    query, gallery = [], []
    for pid in (1, 2, 3):
        for cam in (1, 2, 3, 4):
            if pid == 3 and cam == 4:
                continue
            stem = f"{pid:04d}/{pid:04d}_c{cam:02d}_s1"
            gallery += [Sample(f"/l/vis/{stem}_f{i}_vis.jpg", pid, cam, VISIBLE) for i in range(1 + (pid + cam) % 3)]
            query += [Sample(f"/l/nir/{stem}_f{i}_nir.jpg", pid, cam, INFRARED) for i in range(2)]
    return VIDataset("llcm", Path("/l"), (), tuple(query), tuple(gallery), 0, {})


# ---------------------------------------------------------------------------------------------------------- SYSU


@pytest.mark.parametrize(("mode", "shots"), [("all", 1), ("all", 10), ("indoor", 1), ("indoor", 10)])
def test_sysu_trials_pick_exactly_the_table_images(sysu: VIDataset, mode: str, shots: int) -> None:
    table = read_rand_perm_cam(sysu.meta["rand_perm_cam"])
    cams = (1, 2, 4, 5) if mode == "all" else (1, 2)
    trials = sysu_gallery_trials(sysu.gallery, table, mode, shots, num_trials=10)
    assert len(trials) == 10
    pairs = [(c, p) for c in cams for p in SYSU_IDS if (c, p) in table]  # id 12 has no cam-5 images
    for t, idx in enumerate(trials):
        assert idx.size == len(pairs) * shots  # single-shot: 1 per (camera, id); multi-shot: 10
        picked = {(sysu.gallery[i].camid, sysu.gallery[i].pid, int(Path(sysu.gallery[i].path).stem)) for i in idx}
        expected = {(c, p, int(n)) for c, p in pairs for n in table[(c, p)][t, :shots]}
        assert picked == expected
    assert any(not np.array_equal(trials[0], t) for t in trials[1:])


def test_sysu_onehot_features_score_100(sysu: VIDataset) -> None:
    q = _onehot([s.pid for s in sysu.query], SYSU_IDS)
    g = _onehot([s.pid for s in sysu.gallery], SYSU_IDS)
    results = evaluate_dataset(sysu, q, g, num_trials=3)
    assert sorted(results) == [
        "sysu/all-search/multi-shot",
        "sysu/all-search/single-shot",
        "sysu/indoor-search/multi-shot",
        "sysu/indoor-search/single-shot",
    ]
    for res in results.values():
        assert len(res.trials) == 3
        assert res.mean.r1 == res.mean.mAP == res.mean.mINP == 1.0
        assert res.mean.num_queries == len(sysu.query)
    assert results["sysu/all-search/single-shot"].settings["gallery_sizes"] == [11, 11, 11]
    assert results["sysu/indoor-search/multi-shot"].settings["gallery_sizes"] == [60, 60, 60]


def test_sysu_trial_columns_only_match_the_full_distance_matrix(sysu: VIDataset) -> None:
    # evaluate_sysu computes distances to the trials' gallery columns only, evaluate_dataset to the union of the four
    # protocols' columns: every trial must equal evaluate_rank on the full query x gallery matrix
    rng = np.random.default_rng(3)
    q = rng.standard_normal((len(sysu.query), 6))
    g = rng.standard_normal((len(sysu.gallery), 6))
    table = read_rand_perm_cam(sysu.meta["rand_perm_cam"])
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    full = np.sqrt(np.maximum(2.0 - 2.0 * qn @ gn.T, 1e-12))
    q_pids = np.array([s.pid for s in sysu.query])
    q_cams = np.array([2 if s.camid == 3 else s.camid for s in sysu.query])
    g_pids = np.array([s.pid for s in sysu.gallery])
    g_cams = np.array([s.camid for s in sysu.gallery])
    shared = evaluate_dataset(sysu, q, g, num_trials=4)
    for mode, shots in (("all", 1), ("all", 10), ("indoor", 1), ("indoor", 10)):
        alone = evaluate_sysu(sysu, q, g, mode, shots, num_trials=4)
        assert shared[alone.name].settings == alone.settings
        trials = sysu_gallery_trials(sysu.gallery, table, mode, shots, num_trials=4)
        for idx, a, b in zip(trials, alone.trials, shared[alone.name].trials, strict=True):
            ref = evaluate_rank(full[:, idx], q_pids, g_pids[idx], q_cams, g_cams[idx], cmc_mode="unique_ids")
            for res in (a, b):
                np.testing.assert_allclose(res.cmc, ref.cmc, rtol=0, atol=1e-12)
                assert res.mAP == pytest.approx(ref.mAP, rel=1e-9)
                assert res.mINP == pytest.approx(ref.mINP, rel=1e-9)


def test_sysu_camera3_queries_never_see_camera2(sysu: VIDataset) -> None:
    # cam-3 queries: v(id) = 0.6 e_id + 0.8 e_x. Cam-2 gallery images of id b look exactly like v(next(b)), i.e.
    # like a cam-3 query of *another* identity (distance 0). Other gallery images are e_id (distance^2 0.8 to
    # v(id), 2 to other ids). If cam-2 were visible to cam-3 queries their rank-1 would be wrong.
    nxt = {7: 9, 9: 12, 12: 7}
    n_ids = len(SYSU_IDS)
    q = _onehot([s.pid for s in sysu.query], SYSU_IDS, extra=1)
    for i, s in enumerate(sysu.query):
        if s.camid == 3:
            q[i] *= 0.6
            q[i, n_ids] = 0.8
    g = _onehot([nxt[s.pid] if s.camid == 2 else s.pid for s in sysu.gallery], SYSU_IDS, extra=1)
    for i, s in enumerate(sysu.gallery):
        if s.camid == 2:
            g[i] *= 0.6
            g[i, n_ids] = 0.8
    res = evaluate_sysu(sysu, q, g, "all", 1, num_trials=2)
    assert res.mean.r1 == 1.0
    # sanity check of the construction: with true camera ids (3 != 2) cam-3 queries do pick a cam-2 image first
    idx = sysu_gallery_trials(sysu.gallery, read_rand_perm_cam(sysu.meta["rand_perm_cam"]), "all", 1, 1)[0]
    dist = ((q[:, None, :] - g[None, idx, :]) ** 2).sum(-1)
    raw = evaluate_rank(
        dist,
        [s.pid for s in sysu.query],
        [sysu.gallery[i].pid for i in idx],
        [s.camid for s in sysu.query],
        [sysu.gallery[i].camid for i in idx],
        cmc_mode="first_match",
    )
    assert raw.r1 == pytest.approx(0.5)  # every cam-3 query (half of them) fails


def test_sysu_inputs_unmodified_and_reproducible(sysu: VIDataset) -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(len(sysu.query), 5)).astype(np.float32)
    g = torch.from_numpy(rng.normal(size=(len(sysu.gallery), 5)).astype(np.float32))
    q_copy, g_copy = q.copy(), g.clone()
    query_before, gallery_before, meta_before = sysu.query, sysu.gallery, copy.deepcopy(sysu.meta)
    a = evaluate_sysu(sysu, q, g, "indoor", 10, num_trials=2)
    b = evaluate_sysu(sysu, q, g, "indoor", 10, num_trials=2)
    np.testing.assert_array_equal(q, q_copy)
    assert torch.equal(g, g_copy)
    assert sysu.query == query_before and sysu.gallery == gallery_before and sysu.meta == meta_before
    assert [s.camid for s in sysu.query].count(3) == 6  # the cam3 -> cam2 relabel is not written back
    assert a.as_dict() == b.as_dict()


def test_sysu_errors(sysu: VIDataset) -> None:
    q = _onehot([s.pid for s in sysu.query], SYSU_IDS)
    g = _onehot([s.pid for s in sysu.gallery], SYSU_IDS)
    with pytest.raises(ValueError, match="query_feats has 11 rows but dataset.query has 12 records"):
        evaluate_sysu(sysu, q[:-1], g, num_trials=1)
    bad = g.copy()
    bad[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"gallery_feats contains NaN or inf \(rows \[4\]"):
        evaluate_sysu(sysu, q, bad, num_trials=1)
    with pytest.raises(ValueError, match="use num_trials <= 10"):
        evaluate_sysu(sysu, q, g, num_trials=11)
    with pytest.raises(ValueError, match="unknown SYSU-MM01 mode 'outdoor'"):
        evaluate_sysu(sysu, q, g, "outdoor", num_trials=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ in width"):
        evaluate_sysu(sysu, q, np.pad(g, ((0, 0), (0, 1))), num_trials=1)
    no_meta = VIDataset("sysu", sysu.root, (), sysu.query, sysu.gallery, 0, {})
    with pytest.raises(ValueError, match="rand_perm_cam"):
        evaluate_sysu(no_meta, q, g, num_trials=1)
    empty = VIDataset("sysu", sysu.root, (), (), sysu.gallery, 0, dict(sysu.meta))
    with pytest.raises(ValueError, match="dataset.query is empty"):
        evaluate_sysu(empty, np.zeros((0, 3)), g, num_trials=1)
    with pytest.raises(ValueError, match="for 'regdb' datasets"):
        evaluate_regdb(sysu, q, g)


# --------------------------------------------------------------------------------------------------------- RegDB


def test_regdb_known_swap_both_directions() -> None:
    dataset, q, g = _regdb(swap=True)
    for direction in ("thermal_to_visible", "visible_to_thermal"):
        res = evaluate_regdb(dataset, q, g, direction)
        assert res.name == f"regdb/{direction.replace('_', '-')}"
        # ids 3, 4: both true matches first (AP 1, INP 1). Ids 1, 2: the two images of the swapped id come first
        # (distance 0), then the true matches at ranks 3, 4 (ties in gallery order): AP (1/3 + 2/4) / 2 = 5/12,
        # INP 2/4. Over 8 queries: R1 = 4/8, mAP = (4 * 5/12 + 4) / 8, mINP = (4 * 0.5 + 4) / 8. CMC: de-duplicated
        # (default) the swapped id is the first distinct id and the true one the second, R2 = 1; first-match R3 = 1.
        np.testing.assert_allclose(res.mean.cmc[:3], [0.5, 1.0, 1.0])
        assert res.cmc_mode == "unique_ids" and res.as_dict()["cmc_mode"] == "unique_ids"
        first = evaluate_regdb(dataset, q, g, direction, cmc_mode="first_match")
        np.testing.assert_allclose(first.mean.cmc[:3], [0.5, 0.5, 1.0])
        assert first.cmc_mode == "first_match" and first.mean.mAP == res.mean.mAP
        assert res.mean.mAP == pytest.approx((4 * 5 / 12 + 4) / 8)
        assert res.mean.mINP == pytest.approx(0.75)
        assert res.mean.num_queries == 8
        assert res.settings["trial"] == 1 and res.settings["rerank"] is False


def test_regdb_direction_swaps_query_and_gallery() -> None:
    dataset, q, g = _regdb()
    # one thermal identity missing from the visible side breaks the symmetry between directions
    visible = tuple(s for s in dataset.gallery if s.pid != 4)
    ds = VIDataset("regdb", dataset.root, (), dataset.query, visible, 0, {"trial": 1})
    g_small = g[[i for i, s in enumerate(dataset.gallery) if s.pid != 4]]
    t2v = evaluate_regdb(ds, q, g_small, "thermal_to_visible")
    v2t = evaluate_regdb(ds, q, g_small, "visible_to_thermal")
    assert t2v.mean.num_queries == 6  # thermal id-4 queries have no visible match
    assert v2t.mean.num_queries == 6  # the 6 visible images are the queries


def test_mean_over_splits() -> None:
    perfect = evaluate_regdb(*_regdb(swap=False, trial=1))
    swapped = evaluate_regdb(*_regdb(swap=True, trial=2))
    avg = mean_over_splits([perfect, swapped])
    assert avg.name == "regdb/thermal-to-visible"
    assert avg.mean.r1 == pytest.approx(0.75)
    assert avg.settings["splits"] == [1, 2] and avg.settings["num_splits"] == 2
    assert len(avg.trials) == 2
    other = evaluate_regdb(*_regdb(trial=3), direction="visible_to_thermal")
    with pytest.raises(ValueError, match="one protocol at a time"):
        mean_over_splits([perfect, other])
    cosine = evaluate_regdb(*_regdb(trial=4), metric="cosine")
    with pytest.raises(ValueError, match=r"differ in \['metric'\]"):
        mean_over_splits([perfect, cosine])
    with pytest.raises(ValueError, match="at least one"):
        mean_over_splits([])


def test_rerank_is_labelled_and_json_ready() -> None:
    dataset, q, g = _regdb()
    res = evaluate_regdb(dataset, torch.from_numpy(q), torch.from_numpy(g), rerank=True)
    assert res.name == "regdb/thermal-to-visible+rerank"
    assert res.settings["rerank"] == {
        "k1": 20,
        "k2": 6,
        "lambda_value": 0.3,
        "cross_modal": False,
        "distance": "sqeuclidean",
    }
    assert res.mean.r1 == 1.0
    d = json.loads(json.dumps(res.as_dict(), allow_nan=False))
    assert d["mean"]["R1"] == pytest.approx(100.0) and d["mean"]["num_queries"] == 8
    assert len(d["trials"]) == 1 and len(d["cmc"]) == 20
    custom = evaluate_regdb(dataset, q, g, rerank=RerankConfig(k1=3, k2=1, cross_modal=True))
    assert custom.settings["rerank"]["k1"] == 3 and custom.settings["rerank"]["cross_modal"] is True


# ---------------------------------------------------------------------------------------------------------- LLCM


def test_llcm_trials_one_image_per_id_and_camera() -> None:
    dataset = _llcm()
    groups = {(s.pid, s.camid) for s in dataset.gallery}
    trials = llcm_gallery_trials(dataset.gallery, num_trials=10, seed=0)
    for idx in trials:
        picked = [(dataset.gallery[i].pid, dataset.gallery[i].camid) for i in idx]
        assert len(picked) == len(groups) and set(picked) == groups
    assert len({tuple(t) for t in trials}) > 1  # trials differ
    again = llcm_gallery_trials(dataset.gallery, num_trials=3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, trials[:3], strict=True))  # reproducible, prefix-stable
    other = llcm_gallery_trials(dataset.gallery, num_trials=10, seed=1)
    assert any(not np.array_equal(a, b) for a, b in zip(other, trials, strict=True))


def test_llcm_onehot_both_directions_and_full_gallery() -> None:
    dataset = _llcm()
    ids = (1, 2, 3)
    q = _onehot([s.pid for s in dataset.query], ids)
    g = _onehot([s.pid for s in dataset.gallery], ids)
    results = evaluate_dataset(dataset, q, g, num_trials=4, seed=3)
    assert sorted(results) == ["llcm/ir-to-vis", "llcm/vis-to-ir"]
    for res in results.values():
        assert res.mean.r1 == res.mean.mAP == 1.0 and len(res.trials) == 4
    # the swap: VIS -> IR uses the visible records as queries
    assert results["llcm/vis-to-ir"].mean.num_queries == len(dataset.gallery)
    full = evaluate_llcm(dataset, q, g, full_gallery=True)
    assert full.name == "llcm/ir-to-vis/full-gallery" and len(full.trials) == 1
    assert full.settings["full_gallery"] is True


def test_llcm_filters_on_true_camera_ids() -> None:
    # one query (id 1, cam 1). Gallery: id 1 in cam 1 (identical feature), id 1 in cam 2 (far), id 2 in cam 2
    # (closer than the far id-1 image). The same-identity same-camera image is dropped, so rank-1 is id 2.
    query = (Sample("/l/nir/0001/0001_c01_s1_f0_nir.jpg", 1, 1, INFRARED),)
    gallery = (
        Sample("/l/vis/0001/0001_c01_s1_f0_vis.jpg", 1, 1, VISIBLE),
        Sample("/l/vis/0001/0001_c02_s1_f0_vis.jpg", 1, 2, VISIBLE),
        Sample("/l/vis/0002/0002_c02_s1_f0_vis.jpg", 2, 2, VISIBLE),
    )
    ds = VIDataset("llcm", Path("/l"), (), query, gallery, 0, {})
    q = np.array([[1.0, 0.0]])
    g = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    official = evaluate_llcm(ds, q, g, num_trials=2)
    assert official.mean.r1 == 0.0
    np.testing.assert_allclose(official.mean.cmc[:2], [0.0, 1.0])
    assert evaluate_llcm(ds, q, g, full_gallery=True).mean.r1 == 1.0  # the reference ignores cameras


def test_llcm_errors() -> None:
    dataset = _llcm()
    q = _onehot([s.pid for s in dataset.query], (1, 2, 3))
    g = _onehot([s.pid for s in dataset.gallery], (1, 2, 3))
    with pytest.raises(ValueError, match="unknown LLCM direction"):
        evaluate_llcm(dataset, q, g, "ir_to_rgb")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="gallery_feats has 3 rows"):
        evaluate_llcm(dataset, q, g[:3])
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        evaluate_llcm(dataset, q.tolist(), g)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_llcm(dataset, q, g, metric="manhattan")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_trials must be a positive integer"):
        evaluate_llcm(dataset, q, g, num_trials=0)
    with pytest.raises(ValueError, match="no evaluation protocol for dataset 'market'"):
        evaluate_dataset(VIDataset("market", Path("/m"), (), dataset.query, dataset.gallery, 0, {}), q, g)


def test_rank_result_mean_is_the_trial_average() -> None:
    dataset = _llcm()
    rng = np.random.default_rng(2)
    res = evaluate_llcm(dataset, rng.normal(size=(len(dataset.query), 4)), rng.normal(size=(len(dataset.gallery), 4)))
    manual = RankResult.mean(res.trials)
    np.testing.assert_allclose(res.mean.cmc, manual.cmc)
    assert res.mean.mAP == pytest.approx(np.mean([t.mAP for t in res.trials]))


def test_evaluate_dataset_regdb_and_feature_dtypes() -> None:
    dataset, q, g = _regdb()
    q.setflags(write=False)  # read-only arrays are accepted without a torch warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = evaluate_dataset(dataset, q, g.astype(np.float64))
    assert sorted(results) == ["regdb/thermal-to-visible", "regdb/visible-to-thermal"]
    assert all(r.mean.r1 == 1.0 for r in results.values())
    with pytest.raises(TypeError, match="query_feats must hold real numbers"):
        evaluate_regdb(dataset, q.astype(object), g)


def test_cmc_conventions_differ_at_rank5_hand_computed() -> None:
    # One RegDB query of id 0 (thermal), a visible gallery ranked by distance as ids 1 1 1 2 2 2 3 3 0 4 4 ...:
    # first-match: the true match is the 9th item -> R5 = R8 = 0, R9 = 1. De-duplicated identity list 1, 2, 3, 0:
    # the true identity is the 4th distinct id -> R3 = 0, R4 = R5 = 1. mAP (1/9) is the same in both.
    g_ids = [1, 1, 1, 2, 2, 2, 3, 3, 0, 4, 4]
    query = (Sample("t/0.bmp", 0, 2, INFRARED),)
    gallery = tuple(Sample(f"v/{i}.bmp", pid, 1, VISIBLE) for i, pid in enumerate(g_ids))
    dataset = VIDataset("regdb", Path("r"), (), query, gallery, 0, {"trial": 1})
    q = np.zeros((1, 2))
    g = np.stack([[float(i + 1), 0.0] for i in range(len(g_ids))])  # distance grows with the gallery position
    dedup = evaluate_regdb(dataset, q, g, "thermal_to_visible", normalize=False)
    first = evaluate_regdb(dataset, q, g, "thermal_to_visible", normalize=False, cmc_mode="first_match")
    assert dedup.cmc_mode == "unique_ids" and first.cmc_mode == "first_match"
    assert (dedup.mean.rank(3), dedup.mean.r5, first.mean.r5, first.mean.rank(8), first.mean.rank(9)) == (0, 1, 0, 0, 1)
    assert dedup.mean.mAP == first.mean.mAP == pytest.approx(1 / 9)
    assert dedup.as_dict()["cmc_mode"] == "unique_ids" and dedup.as_dict()["mean"]["R5"] == 100.0
