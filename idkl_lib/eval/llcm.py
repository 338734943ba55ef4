"""LLCM (Zhang & Wang, CVPR 2023): infrared <-> visible with random single-image galleries per trial and the
same-identity camera rule."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..data.records import Sample, VIDataset
from .inputs import check_protocol_inputs
from .rank import CameraFilter, CMCMode, RankResult
from .rerank import RerankConfig
from .retrieval import (
    FeatureArray,
    Metric,
    ProtocolResult,
    _check_count,
    _cross_modal,
    _ids,
    _options,
    _oriented,
    _Retrieval,
)

LLCMDirection = Literal["ir_to_vis", "vis_to_ir"]


def llcm_gallery_trials(gallery: Sequence[Sample], num_trials: int = 10, seed: int = 0) -> list[np.ndarray]:
    """Gallery indices of LLCM's random trials: one image per (identity, camera) pair per trial.

    Trial ``t`` draws from ``numpy.random.default_rng([seed, t])``, so a trial does not depend on how many trials
    are asked for.

    Args:
        gallery: The gallery records of the search direction (visible for IR -> VIS, infrared for VIS -> IR).
        num_trials: Number of trials (10 in the official protocol).
        seed: Base seed.

    Returns:
        ``num_trials`` sorted int64 arrays of indices into ``gallery``.
    """
    num_trials = _check_count(num_trials, "num_trials")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if len(gallery) == 0:
        raise ValueError("the LLCM gallery is empty; check the dataset's test split")
    pids, cams = _ids(gallery)
    _, group = np.unique(np.stack([pids, cams], axis=1), axis=0, return_inverse=True)
    group = group.reshape(-1)
    trials = []
    for t in range(num_trials):
        draw = np.random.default_rng([int(seed), t]).random(len(gallery))
        order = np.lexsort((draw, group))  # by group, random order inside each group
        first = order[np.r_[True, np.diff(group[order]) != 0]]
        trials.append(np.sort(first))
    return trials


def evaluate_llcm(
    dataset: VIDataset,
    query_feats: FeatureArray,
    gallery_feats: FeatureArray,
    direction: LLCMDirection = "ir_to_vis",
    num_trials: int = 10,
    seed: int = 0,
    full_gallery: bool = False,
    *,
    camera_filter: CameraFilter = "same_identity",
    normalize: bool = True,
    metric: Metric = "euclidean",
    rerank: bool | RerankConfig = False,
    cmc_mode: CMCMode = "unique_ids",
    max_rank: int = 20,
) -> ProtocolResult:
    """LLCM search (docs/method.md#55-llcm-protocol).

    The official protocol (default): all query images against ``num_trials`` random galleries with one image per
    identity per camera (:func:`llcm_gallery_trials`), the camera filter applied on the true camera ids. The official
    LLCM code drops only gallery images of the query's identity *and* camera (``camera_filter="same_identity"``);
    ``"all"`` applies the SYSU rule (every same-camera image dropped).

    ``full_gallery=True`` is the IDKL reference's single pass: the whole gallery, camera ids collapsed to the
    modality (visible 2, infrared 3), so nothing is filtered; it is named ``.../full-gallery``.

    Args:
        dataset: A parsed LLCM dataset (``name == "llcm"``, true camera ids in the records).
        query_feats: (len(dataset.query), D) near-infrared features.
        gallery_feats: (len(dataset.gallery), D) visible features.
        direction: ``"ir_to_vis"`` (query infrared) or ``"vis_to_ir"`` (query visible).
        num_trials: Random gallery trials (ignored with ``full_gallery``).
        seed: Base seed of the trials.
        full_gallery: The reference's single full-gallery pass instead of the official trials.
        camera_filter: Which same-camera gallery items are dropped (official protocol only).
        normalize: L2-normalise the features.
        metric: ``"euclidean"`` or ``"cosine"``.
        rerank: k-reciprocal re-ranking (standard variant unless the config says otherwise, as in the reference).
        cmc_mode: CMC convention: "unique_ids" (default, the reference's and the official rule) or "first_match".
        max_rank: CMC length.

    Returns:
        Per-trial and mean metrics, named like ``"llcm/ir-to-vis"``.
    """
    query_feats, gallery_feats = check_protocol_inputs("evaluate_llcm", dataset, "llcm", query_feats, gallery_feats)
    if direction not in ("ir_to_vis", "vis_to_ir"):
        raise ValueError(f"unknown LLCM direction {direction!r}; use 'ir_to_vis' or 'vis_to_ir'")
    if camera_filter not in ("all", "same_identity"):
        raise ValueError(f"unknown camera_filter {camera_filter!r}; use 'all' or 'same_identity'")
    opts = _options(normalize, metric, rerank, cmc_mode, max_rank)
    q, g, q_rec, g_rec = _oriented(dataset, query_feats, gallery_feats, direction == "ir_to_vis")
    q_pids, q_cams = _ids(q_rec)
    g_pids, g_cams = _ids(g_rec)
    cross_modal = _cross_modal(opts)
    retrieval = _Retrieval(q, g, opts)
    name = f"llcm/{direction.replace('_', '-')}"
    if full_gallery:
        q_cams = 2 + np.array([s.modality for s in q_rec], dtype=np.int64)
        g_cams = 2 + np.array([s.modality for s in g_rec], dtype=np.int64)
        trials_index = [np.arange(len(g_rec))]
        name += "/full-gallery"
        protocol = {"full_gallery": True, "num_trials": 1, "camera_filter": "none (cameras collapsed to modality)"}
    else:
        trials_index = llcm_gallery_trials(g_rec, num_trials, seed)
        protocol = {
            "full_gallery": False,
            "num_trials": len(trials_index),
            "seed": int(seed),
            "camera_filter": camera_filter,
            "gallery_sizes": [int(idx.size) for idx in trials_index],
        }
    trials = tuple(
        retrieval.rank(idx, q_pids, g_pids, q_cams, g_cams, cross_modal, camera_filter) for idx in trials_index
    )
    return ProtocolResult(
        name=name + opts.suffix(),
        trials=trials,
        mean=RankResult.mean(trials),
        settings={"dataset": "llcm", "direction": direction, **protocol, **opts.settings(cross_modal)},
    )
