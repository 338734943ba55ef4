"""RegDB (Nguyen et al., Sensors 2017): thermal -> visible and visible -> thermal over one split; several
splits are averaged with :func:`mean_over_splits`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ..data.records import VIDataset
from .inputs import check_protocol_inputs
from .rank import CMCMode, RankResult
from .rerank import RerankConfig
from .retrieval import (
    FeatureArray,
    Metric,
    ProtocolResult,
    _cross_modal,
    _ids,
    _options,
    _oriented,
    _Retrieval,
)

RegDBDirection = Literal["thermal_to_visible", "visible_to_thermal"]


def evaluate_regdb(
    dataset: VIDataset,
    query_feats: FeatureArray,
    gallery_feats: FeatureArray,
    direction: RegDBDirection = "thermal_to_visible",
    *,
    normalize: bool = True,
    metric: Metric = "euclidean",
    rerank: bool | RerankConfig = False,
    cmc_mode: CMCMode = "unique_ids",
    max_rank: int = 20,
) -> ProtocolResult:
    """RegDB search over the whole test set of one split (docs/method.md#54-regdb-protocol), one pass.

    The camera filter never removes anything (visible = camera 2, thermal = camera 3). Average several splits with
    :func:`mean_over_splits`.

    Args:
        dataset: A parsed RegDB split (``name == "regdb"``; ``meta["trial"]`` is recorded in the settings).
        query_feats: (len(dataset.query), D) thermal features.
        gallery_feats: (len(dataset.gallery), D) visible features.
        direction: ``"thermal_to_visible"`` (query thermal) or ``"visible_to_thermal"`` (query visible).
        normalize: L2-normalise the features.
        metric: ``"euclidean"`` or ``"cosine"``.
        rerank: k-reciprocal re-ranking (standard variant unless the config says otherwise).
        cmc_mode: CMC convention: "unique_ids" (default, the reference's and the official rule) or "first_match".
        max_rank: CMC length.

    Returns:
        A single-trial result named ``"regdb/thermal-to-visible"`` or ``"regdb/visible-to-thermal"``.
    """
    query_feats, gallery_feats = check_protocol_inputs("evaluate_regdb", dataset, "regdb", query_feats, gallery_feats)
    if direction not in ("thermal_to_visible", "visible_to_thermal"):
        raise ValueError(f"unknown RegDB direction {direction!r}; use 'thermal_to_visible' or 'visible_to_thermal'")
    opts = _options(normalize, metric, rerank, cmc_mode, max_rank)
    q, g, q_rec, g_rec = _oriented(dataset, query_feats, gallery_feats, direction == "thermal_to_visible")
    q_pids, q_cams = _ids(q_rec)
    g_pids, g_cams = _ids(g_rec)
    cross_modal = _cross_modal(opts)
    result = _Retrieval(q, g, opts).rank(np.arange(len(g_rec)), q_pids, g_pids, q_cams, g_cams, cross_modal, "all")
    trial = dataset.meta.get("trial")
    return ProtocolResult(
        name=f"regdb/{direction.replace('_', '-')}{opts.suffix()}",
        trials=(result,),
        mean=result,
        settings={
            "dataset": "regdb",
            "direction": direction,
            "trial": trial if isinstance(trial, int) else None,
            "num_trials": 1,
            "camera_filter": "all",
            **opts.settings(cross_modal),
        },
    )


def mean_over_splits(results: Sequence[ProtocolResult]) -> ProtocolResult:
    """Average one protocol over several dataset splits (the standard RegDB figure: splits 1..10).

    Every result must have the same name and settings apart from ``"trial"``. The returned ``trials`` holds each
    split's mean, ``mean`` their average, and ``settings["splits"]`` the split numbers.
    """
    if len(results) == 0:
        raise ValueError("mean_over_splits needs at least one ProtocolResult")
    names = sorted({r.name for r in results})
    if len(names) != 1:
        raise ValueError(f"mean_over_splits averages one protocol at a time, got names {names}")
    base = {k: v for k, v in results[0].settings.items() if k != "trial"}
    for r in results[1:]:
        other = {k: v for k, v in r.settings.items() if k != "trial"}
        if other != base:
            diff = sorted(k for k in set(base) | set(other) if base.get(k) != other.get(k))
            raise ValueError(f"cannot average splits evaluated with different settings (differ in {diff})")
    splits = [r.settings.get("trial") for r in results]
    trials = tuple(r.mean for r in results)
    return ProtocolResult(
        name=names[0],
        trials=trials,
        mean=RankResult.mean(trials),
        settings={**base, "splits": splits, "num_splits": len(results)},
    )
