"""SYSU-MM01 (Wu et al., ICCV 2017): gallery trials from ``exp/rand_perm_cam.mat``, all- and indoor-search,
single- and multi-shot, camera 3 counted as camera 2 for the camera rule."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ..data.records import Sample, VIDataset
from ..data.registry import DATASETS
from ..data.sysu_perm import PermTable, read_rand_perm_cam
from .inputs import check_protocol_inputs
from .rank import CMCMode, RankResult
from .rerank import RerankConfig
from .retrieval import (
    FeatureArray,
    Metric,
    ProtocolResult,
    _check_count,
    _features,
    _ids,
    _options,
    _Retrieval,
    camera_ids,
)

SysuMode = Literal["all", "indoor"]
SYSU_GALLERY_CAMS: dict[str, tuple[int, ...]] = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
_SHOT_NAMES = {1: "single-shot", 10: "multi-shot"}


def _image_number(path: str) -> int:
    stem = Path(path).stem
    if not stem.isdigit():
        raise ValueError(
            f"SYSU-MM01 gallery image {path!r} is not named <image number>.jpg; the rand_perm_cam table selects "
            "gallery images by that number"
        )
    return int(stem)


def sysu_gallery_trials(
    gallery: Sequence[Sample], perm_table: PermTable, mode: SysuMode = "all", shots: int = 1, num_trials: int = 10
) -> list[np.ndarray]:
    """Gallery indices of every SYSU-MM01 trial, as chosen by ``exp/rand_perm_cam.mat``
    (docs/method.md#53-sysu-mm01-protocol).

    Trial ``t`` takes, for each gallery camera of ``mode`` and each test identity present in those cameras, the
    first ``shots`` image numbers of row ``t`` of that (camera, identity)'s permutation, and matches them to the
    gallery records by camera, identity and file stem (``cam<c>/<id:04d>/<img:04d>.jpg``).

    Args:
        gallery: The visible test records (``dataset.gallery``).
        perm_table: ``{(camid, pid): (num_trials, n) 1-based image numbers}`` from
            :func:`idkl_lib.data.sysu_perm.read_rand_perm_cam`.
        mode: ``"all"`` (cameras 1, 2, 4, 5) or ``"indoor"`` (cameras 1, 2).
        shots: Images per identity per camera (1 = single-shot, 10 = multi-shot).
        num_trials: Number of trials.

    Returns:
        ``num_trials`` sorted int64 arrays of indices into ``gallery``.

    Raises:
        ValueError: bad ``mode``/``shots``/``num_trials``, the table has fewer trials than asked, a gallery file is
            not named by its image number, two records share a (camera, identity, image number), or a trial is empty.
    """
    if mode not in SYSU_GALLERY_CAMS:
        raise ValueError(f"unknown SYSU-MM01 mode {mode!r}; use 'all' or 'indoor'")
    shots = _check_count(shots, "shots")
    num_trials = _check_count(num_trials, "num_trials")
    cams = SYSU_GALLERY_CAMS[mode]
    position: dict[tuple[int, int, int], int] = {}
    for index, sample in enumerate(gallery):
        if sample.camid not in cams:
            continue
        key = (sample.camid, sample.pid, _image_number(sample.path))
        if key in position:
            raise ValueError(
                f"gallery records {gallery[position[key]].path!r} and {sample.path!r} share camera {key[0]}, "
                f"identity {key[1]} and image number {key[2]}; remove the duplicate"
            )
        position[key] = index
    present = sorted({(cam, pid) for cam, pid, _ in position})
    ids = sorted({pid for _, pid in present})
    unlisted = [(cam, pid) for cam, pid in present if (cam, pid) not in perm_table]
    if unlisted:
        warnings.warn(
            f"rand_perm_cam has no entry for {len(unlisted)} (camera, identity) pairs that have gallery images "
            f"(first: {unlisted[:3]}); those images never enter the gallery",
            stacklevel=2,
        )
    trials: list[np.ndarray] = []
    missing = 0
    for t in range(num_trials):
        chosen: list[int] = []
        for cam in cams:
            for pid in ids:
                perm = perm_table.get((cam, pid))
                if perm is None:
                    continue
                if perm.shape[0] <= t:
                    raise ValueError(
                        f"rand_perm_cam holds {perm.shape[0]} trials for camera {cam}, identity {pid}; "
                        f"use num_trials <= {perm.shape[0]}"
                    )
                for number in perm[t, :shots].tolist():
                    found = position.get((cam, pid, int(number)))
                    if found is None:
                        missing += 1
                    else:
                        chosen.append(found)
        if not chosen:
            raise ValueError(f"SYSU-MM01 trial {t} ({mode}-search, {shots} shots) selects no gallery image")
        trials.append(np.unique(np.asarray(chosen, dtype=np.int64)))
    if missing:
        warnings.warn(
            f"{missing} gallery images named by rand_perm_cam (over {num_trials} trials) are not among the gallery "
            "records; check that the dataset copy is complete",
            stacklevel=2,
        )
    return trials


def evaluate_sysu(
    dataset: VIDataset,
    query_feats: FeatureArray,
    gallery_feats: FeatureArray,
    mode: SysuMode = "all",
    shots: int = 1,
    num_trials: int = 10,
    *,
    perm_table: PermTable | None = None,
    normalize: bool = True,
    metric: Metric = "euclidean",
    rerank: bool | RerankConfig = False,
    cmc_mode: CMCMode = "unique_ids",
    max_rank: int = 20,
) -> ProtocolResult:
    """SYSU-MM01 infrared -> visible search (docs/method.md#53-sysu-mm01-protocol).

    Queries are all infrared test images (cameras 3 and 6) in every mode; the gallery of each trial comes from
    :func:`sysu_gallery_trials`. For the camera filter, query camera 3 counts as camera 2 (same location), so a
    camera-3 query never sees camera-2 gallery images; the dataset is not modified.

    Args:
        dataset: A parsed SYSU-MM01 dataset (``name == "sysu"``).
        query_feats: (len(dataset.query), D) infrared features.
        gallery_feats: (len(dataset.gallery), D) visible features.
        mode: ``"all"`` or ``"indoor"`` search.
        shots: 1 (single-shot) or 10 (multi-shot); other positive values are accepted.
        num_trials: Gallery trials (10 in the standard protocol).
        perm_table: The ``rand_perm_cam`` table; read from ``dataset.meta["rand_perm_cam"]`` when omitted.
        normalize: L2-normalise the features.
        metric: ``"euclidean"`` or ``"cosine"``.
        rerank: k-reciprocal re-ranking (``True`` = paper defaults; cross-modal variant unless the config says
            otherwise, as in the reference).
        cmc_mode: CMC convention: "unique_ids" (default, the reference's and the official rule) or "first_match".
        max_rank: CMC length.

    Returns:
        Per-trial and mean metrics, named like ``"sysu/all-search/single-shot"``.
    """
    query_feats, gallery_feats = check_protocol_inputs("evaluate_sysu", dataset, "sysu", query_feats, gallery_feats)
    opts = _options(normalize, metric, rerank, cmc_mode, max_rank)
    q = _features(query_feats, dataset.query, "query_feats", "dataset.query")
    g = _features(gallery_feats, dataset.gallery, "gallery_feats", "dataset.gallery")
    if perm_table is None:
        perm_table = _load_perm_table(dataset)
    trials_index = sysu_gallery_trials(dataset.gallery, perm_table, mode, shots, num_trials)
    # only the gallery columns the trials select (the whole gallery when re-ranking)
    retrieval = _Retrieval(q, g, opts, columns=np.unique(np.concatenate(trials_index)))
    return _sysu_protocol(dataset, retrieval, trials_index, mode, shots)


def _sysu_protocol(
    dataset: VIDataset, retrieval: _Retrieval, trials_index: list[np.ndarray], mode: SysuMode, shots: int
) -> ProtocolResult:
    opts = retrieval.opts
    q_pids, _ = _ids(dataset.query)
    g_pids, g_cams = _ids(dataset.gallery)
    q_cams = camera_ids(dataset.query, DATASETS["sysu"].camera_alias)  # cams 2 and 3 share a location
    cross_modal = True if opts.rerank is None or opts.rerank.cross_modal is None else opts.rerank.cross_modal
    trials = tuple(retrieval.rank(idx, q_pids, g_pids, q_cams, g_cams, cross_modal, "all") for idx in trials_index)
    shot_name = _SHOT_NAMES.get(shots, f"{shots}-shot")
    return ProtocolResult(
        name=f"sysu/{mode}-search/{shot_name}{opts.suffix()}",
        trials=trials,
        mean=RankResult.mean(trials),
        settings={
            "dataset": "sysu",
            "mode": mode,
            "shots": shots,
            "num_trials": len(trials),
            "gallery_sizes": [int(idx.size) for idx in trials_index],
            "camera_filter": "all (query cam 3 counted as cam 2)",
            **opts.settings(cross_modal),
        },
    )


def _load_perm_table(dataset: VIDataset) -> PermTable:
    path = dataset.meta.get("rand_perm_cam")
    if path is None:
        raise ValueError(
            "dataset.meta has no 'rand_perm_cam' path; parse the dataset with parse_sysu or pass perm_table="
            "read_rand_perm_cam(<root>/exp/rand_perm_cam.mat)"
        )
    return read_rand_perm_cam(str(path))
