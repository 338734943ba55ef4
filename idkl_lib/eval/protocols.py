"""Evaluation protocols of SYSU-MM01, RegDB and LLCM (SPEC.md §0, §4).

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

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.records import Sample, VIDataset
from ..data.sysu_perm import PermTable, read_rand_perm_cam
from ..losses.distances import Metric as DistanceMetric
from ..losses.distances import pairwise_distance
from .rank import CameraFilter, CMCMode, RankResult, evaluate_rank
from .rerank import RerankConfig, k_reciprocal_rerank

Metric = Literal["euclidean", "cosine"]
SysuMode = Literal["all", "indoor"]
RegDBDirection = Literal["thermal_to_visible", "visible_to_thermal"]
LLCMDirection = Literal["ir_to_vis", "vis_to_ir"]
FeatureArray = Tensor | np.ndarray

SYSU_GALLERY_CAMS: dict[str, tuple[int, ...]] = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
_SHOT_NAMES = {1: "single-shot", 10: "multi-shot"}


@dataclass(frozen=True, eq=False)
class ProtocolResult:
    """Result of one protocol (all its trials).

    Attributes:
        name: e.g. ``"sysu/all-search/single-shot"``, ``"regdb/thermal-to-visible"``, ``"llcm/ir-to-vis"``;
            ``+rerank`` is appended when k-reciprocal re-ranking was used, ``/full-gallery`` for LLCM's
            reference-style single pass.
        trials: One result per gallery trial (per split after :func:`mean_over_splits`).
        mean: The mean over ``trials`` (the reported figure).
        settings: How the figure was obtained (protocol options, normalisation, metric, re-ranking, CMC mode, ...);
            JSON-serialisable.
    """

    name: str
    trials: tuple[RankResult, ...]
    mean: RankResult
    settings: dict[str, object]

    @property
    def cmc_mode(self) -> str:
        """The CMC convention of :attr:`mean` and :attr:`trials` (``"unique_ids"`` or ``"first_match"``)."""
        return str(self.settings.get("cmc_mode", "unspecified"))

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict for ``metrics.json``: mean and per-trial metrics in percent, plus the settings."""
        mean = {**self.mean.as_dict(), "num_queries": self.mean.num_queries}
        return {
            "name": self.name,
            "cmc_mode": self.cmc_mode,
            "mean": mean,
            "cmc": [100.0 * float(v) for v in self.mean.cmc],
            "trials": [{**t.as_dict(), "num_queries": t.num_queries} for t in self.trials],
            "settings": dict(self.settings),
        }


@dataclass(frozen=True)
class _Options:
    normalize: bool
    metric: Metric
    rerank: RerankConfig | None
    cmc_mode: CMCMode
    max_rank: int

    def settings(self, rerank_cross_modal: bool) -> dict[str, object]:
        rerank: object = False
        if self.rerank is not None:
            rerank = {
                **dataclasses.asdict(self.rerank),
                "cross_modal": rerank_cross_modal,
                "distance": _rerank_metric(self.metric),
            }
        return {
            "normalize": self.normalize,
            "metric": self.metric,
            "rerank": rerank,
            "cmc_mode": self.cmc_mode,
            "max_rank": self.max_rank,
        }

    def suffix(self) -> str:
        return "+rerank" if self.rerank is not None else ""


def _options(
    normalize: bool, metric: Metric, rerank: bool | RerankConfig, cmc_mode: CMCMode, max_rank: int
) -> _Options:
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; use 'euclidean' or 'cosine'")
    if cmc_mode not in ("first_match", "unique_ids"):
        raise ValueError(f"unknown cmc_mode {cmc_mode!r}; use 'first_match' or 'unique_ids'")
    if isinstance(rerank, RerankConfig):
        config: RerankConfig | None = rerank
    elif isinstance(rerank, bool):
        config = RerankConfig() if rerank else None
    else:
        raise TypeError(f"rerank must be a bool or a RerankConfig, got {type(rerank).__name__}")
    return _Options(bool(normalize), metric, config, cmc_mode, _check_count(max_rank, "max_rank"))


def _rerank_metric(metric: Metric) -> DistanceMetric:
    return "sqeuclidean" if metric == "euclidean" else metric


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _features(feats: FeatureArray, records: Sequence[Sample], feats_name: str, records_name: str) -> Tensor:
    """Validated (N, D) floating tensor aligned with ``records`` (never a view the caller could see modified)."""
    if len(records) == 0:
        raise ValueError(f"{records_name} is empty: there is nothing to evaluate; check the dataset's test split")
    if isinstance(feats, np.ndarray):
        if not (np.issubdtype(feats.dtype, np.floating) or np.issubdtype(feats.dtype, np.integer)):
            raise TypeError(f"{feats_name} must hold real numbers, got dtype {feats.dtype}")
        arr = np.ascontiguousarray(feats)
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    elif isinstance(feats, Tensor):
        x = feats.detach()
    else:
        raise TypeError(f"{feats_name} must be a torch.Tensor or numpy array, got {type(feats).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{feats_name} must be a 2-D (N, D) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] != len(records):
        raise ValueError(
            f"{feats_name} has {x.shape[0]} rows but {records_name} has {len(records)} records; extract one feature "
            f"per record of {records_name}, in record order"
        )
    if not x.is_floating_point():
        x = x.float()
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(f"{feats_name} contains NaN or inf (rows {bad}...); the model or the extraction diverged")
    return x


def _distance(x: Tensor, y: Tensor, metric: DistanceMetric) -> np.ndarray:
    return pairwise_distance(x, y.to(x.device), metric=metric).cpu().numpy()


class _Retrieval:
    """Query and gallery features of one search direction, with the distances shared by its trials.

    ``columns`` (sorted gallery indices), when given and re-ranking is off, limits the distance matrix to the gallery
    items the trials can select; re-ranking needs the distances to the whole gallery and ignores it.
    """

    def __init__(self, query: Tensor, gallery: Tensor, opts: _Options, columns: np.ndarray | None = None) -> None:
        if query.shape[1] != gallery.shape[1]:
            raise ValueError(
                f"query and gallery features differ in width ({query.shape[1]} vs {gallery.shape[1]}); "
                "extract both with the same model and feature option"
            )
        dtype = torch.promote_types(query.dtype, gallery.dtype)
        query, gallery = query.to(dtype), gallery.to(device=query.device, dtype=dtype)
        if opts.normalize:
            query, gallery = F.normalize(query, dim=1), F.normalize(gallery, dim=1)
        self.query, self.gallery, self.opts = query, gallery, opts
        self._columns = None if columns is None or opts.rerank is not None else np.asarray(columns, dtype=np.int64)
        self._q_g: np.ndarray | None = None
        self._q_q: np.ndarray | None = None

    def q_g(self) -> np.ndarray:
        """Distances to the whole gallery, or to ``columns`` only (in that order) when they were given."""
        if self._q_g is None:
            metric = self.opts.metric if self.opts.rerank is None else _rerank_metric(self.opts.metric)
            gallery = self.gallery
            if self._columns is not None:
                gallery = gallery[torch.as_tensor(self._columns, device=gallery.device)]
            self._q_g = _distance(self.query, gallery, metric)
        return self._q_g

    def distances(self, gallery_index: np.ndarray, cross_modal: bool) -> np.ndarray:
        """(Q, len(gallery_index)) distances to the selected gallery items (re-ranked if asked)."""
        if self._columns is None:
            q_g = self.q_g()[:, gallery_index]
        else:
            at = np.searchsorted(self._columns, gallery_index)
            if at.size and (at.max() >= self._columns.size or not np.array_equal(self._columns[at], gallery_index)):
                raise RuntimeError("internal error: a trial selects gallery items outside the computed columns")
            q_g = self.q_g()[:, at]
        cfg = self.opts.rerank
        if cfg is None:
            return q_g
        metric = _rerank_metric(self.opts.metric)
        if self._q_q is None:
            self._q_q = _distance(self.query, self.query, metric)
        sub = self.gallery[torch.as_tensor(gallery_index, device=self.gallery.device)]
        g_g = _distance(sub, sub, metric)
        return k_reciprocal_rerank(q_g, self._q_q, g_g, cfg.k1, cfg.k2, cfg.lambda_value, cross_modal=cross_modal)

    def rank(
        self,
        gallery_index: np.ndarray,
        q_pids: np.ndarray,
        g_pids: np.ndarray,
        q_cams: np.ndarray,
        g_cams: np.ndarray,
        cross_modal: bool,
        camera_filter: CameraFilter,
    ) -> RankResult:
        return evaluate_rank(
            self.distances(gallery_index, cross_modal),
            q_pids,
            g_pids[gallery_index],
            q_cams,
            g_cams[gallery_index],
            max_rank=self.opts.max_rank,
            cmc_mode=self.opts.cmc_mode,
            camera_filter=camera_filter,
        )


def _oriented(
    dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray, infrared_queries: bool
) -> tuple[Tensor, Tensor, Sequence[Sample], Sequence[Sample]]:
    """Checked features and records as (query, gallery, query records, gallery records) for one search direction:
    infrared -> visible (``dataset.query`` searches ``dataset.gallery``) or the swap."""
    infrared = _features(query_feats, dataset.query, "query_feats", "dataset.query")
    visible = _features(gallery_feats, dataset.gallery, "gallery_feats", "dataset.gallery")
    if infrared_queries:
        return infrared, visible, dataset.query, dataset.gallery
    return visible, infrared, dataset.gallery, dataset.query


def _cross_modal(opts: _Options) -> bool:
    """Whether re-ranking uses the reference's cross-modal variant (False unless the re-rank config says so)."""
    return False if opts.rerank is None or opts.rerank.cross_modal is None else opts.rerank.cross_modal


def _ids(records: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([s.pid for s in records], dtype=np.int64), np.array([s.camid for s in records], dtype=np.int64)


def _check_dataset(dataset: VIDataset, expected: str) -> None:
    if dataset.name != expected:
        raise ValueError(f"this protocol is for {expected!r} datasets, got dataset.name={dataset.name!r}")


# ----------------------------------------------------------------------------------------------------------- SYSU


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
    """Gallery indices of every SYSU-MM01 trial, as chosen by ``exp/rand_perm_cam.mat`` (SPEC.md §4.4).

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
    """SYSU-MM01 infrared -> visible search (SPEC.md §4.4).

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
    _check_dataset(dataset, "sysu")
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
    q_pids, q_cams = _ids(dataset.query)
    g_pids, g_cams = _ids(dataset.gallery)
    q_cams = np.where(q_cams == 3, 2, q_cams)  # cameras 2 and 3 share a location (a new array; records untouched)
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


# ---------------------------------------------------------------------------------------------------------- RegDB


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
    """RegDB search over the whole test set of one split (SPEC.md §4.5), one pass.

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
    _check_dataset(dataset, "regdb")
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


# ----------------------------------------------------------------------------------------------------------- LLCM


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
    """LLCM search (SPEC.md §0, §4.6).

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
    _check_dataset(dataset, "llcm")
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


# -------------------------------------------------------------------------------------------------------- dispatch


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
    results: list[ProtocolResult] = []
    if dataset.name == "sysu":
        # one validation and one distance matrix (and re-ranking cache) shared by the four SYSU protocols
        _check_dataset(dataset, "sysu")
        opts = _options(normalize, metric, rerank, cmc_mode, max_rank)
        q = _features(query_feats, dataset.query, "query_feats", "dataset.query")
        g = _features(gallery_feats, dataset.gallery, "gallery_feats", "dataset.gallery")
        table = _load_perm_table(dataset)
        sysu_runs: tuple[tuple[SysuMode, int], ...] = (("all", 1), ("all", 10), ("indoor", 1), ("indoor", 10))
        runs = [
            (mode, shots, sysu_gallery_trials(dataset.gallery, table, mode, shots, num_trials))
            for mode, shots in sysu_runs
        ]
        # one distance matrix over the union of the columns all the trials select (the whole gallery when re-ranking)
        columns = np.unique(np.concatenate([idx for _, _, trials in runs for idx in trials]))
        retrieval = _Retrieval(q, g, opts, columns=columns)
        for mode, shots, trials_index in runs:
            results.append(_sysu_protocol(dataset, retrieval, trials_index, mode, shots))
    elif dataset.name == "regdb":
        regdb_directions: tuple[RegDBDirection, ...] = ("thermal_to_visible", "visible_to_thermal")
        for regdb_direction in regdb_directions:
            results.append(
                evaluate_regdb(
                    dataset,
                    query_feats,
                    gallery_feats,
                    regdb_direction,
                    normalize=normalize,
                    metric=metric,
                    rerank=rerank,
                    cmc_mode=cmc_mode,
                    max_rank=max_rank,
                )
            )
    elif dataset.name == "llcm":
        llcm_directions: tuple[LLCMDirection, ...] = ("ir_to_vis", "vis_to_ir")
        for llcm_direction in llcm_directions:
            results.append(
                evaluate_llcm(
                    dataset,
                    query_feats,
                    gallery_feats,
                    llcm_direction,
                    num_trials,
                    seed,
                    full_gallery,
                    normalize=normalize,
                    metric=metric,
                    rerank=rerank,
                    cmc_mode=cmc_mode,
                    max_rank=max_rank,
                )
            )
    else:
        raise ValueError(f"no evaluation protocol for dataset {dataset.name!r}; expected 'sysu', 'regdb' or 'llcm'")
    return {r.name: r for r in results}
