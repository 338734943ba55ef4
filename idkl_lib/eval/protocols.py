"""Evaluation protocols of SYSU-MM01, RegDB and LLCM (docs/method.md#5-evaluation).

Each protocol only decides which query and gallery records take part (per trial) and which camera ids the
filter sees; the metrics all come from :func:`idkl_lib.eval.rank.evaluate_rank`.

Features are (N, D) tensors or arrays aligned with ``dataset.query`` (infrared test records) and
``dataset.gallery`` (visible test records), whatever the search direction: for visible -> infrared the wrappers
swap the two themselves. Options shared by every protocol:

* ``normalize``: L2-normalise the features first (default, every dataset; the reference only did it for SYSU).
* ``metric``: ``"euclidean"`` or ``"cosine"``; on normalised features both give the same ranking.
* ``rerank``: ``False`` (default, the standard protocol), ``True`` or a :class:`RerankConfig` for k-reciprocal
  re-ranking; re-ranked results carry ``+rerank`` in their name and the settings in ``settings["rerank"]``.
  With the Euclidean metric the re-ranking sees squared distances, as in the reference.
* ``cmc_mode``: ``"unique_ids"`` (default: the reference's and the official SYSU-MM01 rule, rank-k = the true
  identity among the first k distinct identities, so R5/R10/R20 compare with published tables) or
  ``"first_match"`` (torchreid/AGW); see :func:`idkl_lib.eval.rank.evaluate_rank`. R1, mAP and mINP do not
  depend on it. Every result names its convention (:attr:`ProtocolResult.cmc_mode`, ``"cmc_mode"`` in
  :meth:`ProtocolResult.as_dict`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..data.records import VIDataset
from .inputs import check_protocol_inputs
from .llcm import LLCMDirection, evaluate_llcm, llcm_gallery_trials
from .rank import CMCMode
from .regdb import RegDBDirection, evaluate_regdb, mean_over_splits
from .rerank import RerankConfig
from .retrieval import (
    FeatureArray,
    Metric,
    ProtocolResult,
    _features,
    _options,
    _Retrieval,
    camera_ids,
)
from .sysu import SYSU_GALLERY_CAMS, SysuMode, _load_perm_table, _sysu_protocol, evaluate_sysu, sysu_gallery_trials

__all__ = [
    "SYSU_GALLERY_CAMS",
    "FeatureArray",
    "LLCMDirection",
    "Metric",
    "ProtocolResult",
    "RegDBDirection",
    "SysuMode",
    "camera_ids",
    "evaluate_dataset",
    "evaluate_llcm",
    "evaluate_regdb",
    "evaluate_sysu",
    "llcm_gallery_trials",
    "mean_over_splits",
    "sysu_gallery_trials",
]


def evaluate_dataset(
    dataset: VIDataset,
    query_feats: FeatureArray,
    gallery_feats: FeatureArray,
    *,
    normalize: bool = True,
    metric: Metric = "euclidean",
    rerank: bool | RerankConfig = False,
    cmc_mode: CMCMode = "unique_ids",
    max_rank: int = 20,
    num_trials: int = 10,
    seed: int = 0,
    full_gallery: bool = False,
) -> dict[str, ProtocolResult]:
    """The standard protocol set of ``dataset.name``, keyed by result name.

    * SYSU-MM01: all- and indoor-search, single- and multi-shot (``num_trials`` trials each).
    * RegDB: thermal -> visible and visible -> thermal (this split).
    * LLCM: IR -> VIS and VIS -> IR (``num_trials`` official trials from ``seed``, or ``full_gallery``).

    The keyword options are passed to every protocol (``num_trials``/``seed``/``full_gallery`` where they apply).
    """
    query_feats, gallery_feats = check_protocol_inputs("evaluate_dataset", dataset, None, query_feats, gallery_feats)
    if dataset.name not in _STANDARD_PROTOCOLS:
        raise ValueError(
            f"no evaluation protocol for dataset {dataset.name!r}; expected one of {', '.join(_STANDARD_PROTOCOLS)}"
        )
    options = dict(normalize=normalize, metric=metric, rerank=rerank, cmc_mode=cmc_mode, max_rank=max_rank)
    results = _STANDARD_PROTOCOLS[dataset.name](
        dataset, query_feats, gallery_feats, options, num_trials=num_trials, seed=seed, full_gallery=full_gallery
    )
    return {r.name: r for r in results}


def _sysu_standard(
    dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray, options: dict, **protocol: Any
) -> list[ProtocolResult]:
    """All- and indoor-search, single- and multi-shot, sharing one validation, one distance matrix and one
    re-ranking cache."""
    opts = _options(**options)
    q = _features(query_feats, dataset.query, "query_feats", "dataset.query")
    g = _features(gallery_feats, dataset.gallery, "gallery_feats", "dataset.gallery")
    table = _load_perm_table(dataset)
    sysu_runs: tuple[tuple[SysuMode, int], ...] = (("all", 1), ("all", 10), ("indoor", 1), ("indoor", 10))
    runs = [
        (mode, shots, sysu_gallery_trials(dataset.gallery, table, mode, shots, protocol["num_trials"]))
        for mode, shots in sysu_runs
    ]
    # one distance matrix over the union of the columns all the trials select (the whole gallery when re-ranking)
    columns = np.unique(np.concatenate([idx for _, _, trials in runs for idx in trials]))
    retrieval = _Retrieval(q, g, opts, columns=columns)
    return [_sysu_protocol(dataset, retrieval, trials_index, mode, shots) for mode, shots, trials_index in runs]


def _regdb_standard(
    dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray, options: dict, **protocol: Any
) -> list[ProtocolResult]:
    """Thermal -> visible and visible -> thermal on this split."""
    directions: tuple[RegDBDirection, ...] = ("thermal_to_visible", "visible_to_thermal")
    return [evaluate_regdb(dataset, query_feats, gallery_feats, direction, **options) for direction in directions]


def _llcm_standard(
    dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray, options: dict, **protocol: Any
) -> list[ProtocolResult]:
    """IR -> VIS and VIS -> IR (``num_trials`` official trials from ``seed``, or ``full_gallery``)."""
    directions: tuple[LLCMDirection, ...] = ("ir_to_vis", "vis_to_ir")
    return [
        evaluate_llcm(
            dataset,
            query_feats,
            gallery_feats,
            direction,
            protocol["num_trials"],
            protocol["seed"],
            protocol["full_gallery"],
            **options,
        )
        for direction in directions
    ]


_STANDARD_PROTOCOLS: dict[str, Callable[..., list[ProtocolResult]]] = {
    "sysu": _sysu_standard,
    "regdb": _regdb_standard,
    "llcm": _llcm_standard,
}
"""The standard protocol set of each dataset of :data:`idkl_lib.data.DATASETS` (described in its ``protocol``)."""
