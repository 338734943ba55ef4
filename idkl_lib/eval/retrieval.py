"""What every evaluation protocol shares: the result type, the options, feature checks and the retrieval of one
search direction (distances, re-ranking, ranking of each trial). The protocols themselves live in
:mod:`~idkl_lib.eval.sysu`, :mod:`~idkl_lib.eval.regdb` and :mod:`~idkl_lib.eval.llcm`; :mod:`~idkl_lib.eval.protocols`
runs a dataset's standard set."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.records import Sample, VIDataset
from ..distances import Metric as DistanceMetric
from ..distances import pairwise_distance
from .rank import CameraFilter, CMCMode, RankResult, evaluate_rank
from .rerank import RerankConfig, k_reciprocal_rerank

Metric = Literal["euclidean", "cosine"]
FeatureArray = Tensor | np.ndarray


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


def camera_ids(records: Sequence[Sample], alias: Mapping[int, int] | None = None) -> np.ndarray:
    """The camera ids the camera rule sees: each record's ``camid`` with ``alias`` applied (a new array; the
    records are untouched). SYSU-MM01 counts camera 3 as camera 2 (``DATASETS["sysu"].camera_alias``)."""
    alias = alias or {}
    return np.array([alias.get(s.camid, s.camid) for s in records], dtype=np.int64)
