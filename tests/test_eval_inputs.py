"""Public evaluation and dataset functions check their arguments' types and dtypes and say what they expected."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from idkl_lib.data import VIDataset, build_dataset
from idkl_lib.eval import evaluate_dataset, evaluate_rank, evaluate_regdb, evaluate_sysu


def _feats(ds: VIDataset, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(len(ds.query), 8, generator=gen), torch.randn(len(ds.gallery), 8, generator=gen)


def test_bfloat16_features_are_evaluated_as_their_float32_values(sysu_dataset: VIDataset) -> None:
    q, g = _feats(sysu_dataset)
    q16, g16 = q.bfloat16(), g.bfloat16()
    got = evaluate_sysu(sysu_dataset, q16, g16, num_trials=2)
    want = evaluate_sysu(sysu_dataset, q16.float(), g16.float(), num_trials=2)
    assert got.mean.as_dict() == want.mean.as_dict()


def test_wrong_dataset_object_and_features(sysu_dataset: VIDataset) -> None:
    q, g = _feats(sysu_dataset)
    with pytest.raises(
        TypeError, match=r"evaluate_sysu: dataset must be an idkl_lib.data.VIDataset .* got builtins.dict"
    ):
        evaluate_sysu({"name": "sysu"}, q, g)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"looks like features: the arguments are \(dataset, query_feats, gallery_feats\)"
    ):
        evaluate_sysu(q, g, sysu_dataset)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"evaluate_dataset: dataset must be an idkl_lib.data.VIDataset .* got builtins.str"
    ):
        evaluate_dataset("sysu", q, g)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"evaluate_regdb is for 'regdb' datasets, got dataset.name='sysu'; use evaluate_sysu"
    ):
        evaluate_regdb(sysu_dataset, q, g)
    with pytest.raises(
        TypeError, match=r"query_feats must be a torch.Tensor or numpy array of shape \(N, D\).*got list"
    ):
        evaluate_sysu(sysu_dataset, q.tolist(), g)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"gallery_feats must hold real numbers .* got dtype <U1"):
        evaluate_sysu(sysu_dataset, q, np.full((len(sysu_dataset.gallery), 8), "x"))
    with pytest.raises(TypeError, match=r"must hold real numbers .* got dtype torch.complex64"):
        evaluate_sysu(sysu_dataset, q.to(torch.complex64), g)
    with pytest.raises(ValueError, match=r"query_feats must be a 2-D \(N, D\) matrix, got shape \(\d+, 2, 4\)"):
        evaluate_sysu(sysu_dataset, q.reshape(len(q), 2, 4), g)


def test_evaluate_rank_types_and_dtypes() -> None:
    rng = np.random.default_rng(0)
    dist = rng.random((6, 10)).astype(np.float32)
    q_pids, g_pids = np.arange(6) % 3, np.arange(10) % 3
    q_cams, g_cams = np.zeros(6, dtype=np.int64), np.ones(10, dtype=np.int64)
    want = evaluate_rank(
        torch.from_numpy(dist).bfloat16().float(), q_pids, g_pids, q_cams, g_cams, max_rank=5, cmc_mode="first_match"
    )
    got = evaluate_rank(
        torch.from_numpy(dist).bfloat16(), q_pids, g_pids, q_cams, g_cams, max_rank=5, cmc_mode="first_match"
    )
    assert got.as_dict() == want.as_dict()
    ref = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=5, cmc_mode="first_match")
    floats = evaluate_rank(
        dist, q_pids.astype(float), g_pids, q_cams, torch.ones(10), max_rank=5, cmc_mode="first_match"
    )
    assert floats.as_dict() == ref.as_dict()  # whole numbers stored as floats are labels
    with pytest.raises(TypeError, match=r"q_pids must hold integer labels .* got dtype float64 \(e.g. 0.5\)"):
        evaluate_rank(dist, q_pids + 0.5, g_pids, q_cams, g_cams, cmc_mode="first_match")
    with pytest.raises(TypeError, match=r"g_pids must hold integer labels .* got dtype <U"):
        evaluate_rank(dist, q_pids, [f"p{i}" for i in g_pids], q_cams, g_cams, cmc_mode="first_match")
    with pytest.raises(
        TypeError, match=r"distmat must be a 2-D \(num_query, num_gallery\) distance matrix .* got dict"
    ):
        evaluate_rank({"d": dist}, q_pids, g_pids, q_cams, g_cams, cmc_mode="first_match")  # type: ignore[arg-type]


def test_build_dataset_argument_checks(sysu_root: Path) -> None:
    with pytest.raises(TypeError, match=r"dataset name must be a str \(llcm, regdb, sysu\), got PosixPath"):
        build_dataset(sysu_root, "sysu")  # type: ignore[arg-type]
    # every dataset takes the same keywords (trial is ignored by those with one split); others are refused
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'split'"):
        build_dataset("regdb", sysu_root, split=2)  # type: ignore[call-arg]
