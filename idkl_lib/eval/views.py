"""What a rank list or a query picker shows, decided by the protocol: one trial's gallery, the distance matrix and
the camera rule. Viewers (:mod:`idkl_lib.viz.ranklist`, :mod:`idkl_lib.viz.widgets`) draw a :class:`RankView`; they
never rank or filter themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.records import Sample, VIDataset
from ..data.registry import dataset_info
from ..data.sysu_perm import read_rand_perm_cam
from ..distances import pairwise_distance
from .protocols import FeatureArray, camera_ids, llcm_gallery_trials, sysu_gallery_trials
from .rank import CameraFilter, _masks

__all__ = ["QUERY_ORDERS", "RankView", "camera_rule", "protocol_camera_rule", "rank_view"]

QUERY_ORDERS: dict[str, str] = {
    "worst": "worst AP first",
    "best": "best AP first",
    "drawn": "as drawn (query order of the test set)",
}
"""Orders a rank-list viewer can show the queries in (:meth:`RankView.query_order`), with their descriptions."""


def camera_rule(
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    camera_filter: CameraFilter = "all",
    camera_alias: Mapping[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's camera rule as ``(keep, match)`` boolean ``(Q, G)`` masks (the rule of
    :func:`idkl_lib.eval.rank.evaluate_rank`): ``"all"`` drops every gallery item of the query's camera,
    ``"same_identity"`` only those that also show the query's identity; ``camera_alias`` maps cameras first
    (SYSU-MM01 ``{3: 2}``). ``match`` = kept and of the query's identity."""
    if camera_filter not in ("all", "same_identity"):
        raise ValueError(f"unknown camera_filter {camera_filter!r}; use 'all' or 'same_identity'")
    q_pids = np.array([s.pid for s in query], dtype=np.int64)
    g_pids = np.array([s.pid for s in gallery], dtype=np.int64)
    return _masks(q_pids, g_pids, camera_ids(query, camera_alias), camera_ids(gallery, camera_alias), camera_filter)


@dataclass(frozen=True, eq=False)
class RankView:
    """One gallery trial of a protocol, ready to draw.

    Attributes:
        name: e.g. ``"sysu/all-search/single-shot (trial 1)"``.
        distmat: ``(Q, G)`` distances between ``query`` and ``gallery`` (lower = more similar).
        query: The query records.
        gallery: The trial's gallery records.
        camera_filter: The protocol's camera rule (see :func:`camera_rule`).
        camera_alias: Camera ids the rule treats as another camera.
        exclude_same_camera: Apply the camera rule (False keeps every gallery item).
    """

    name: str
    distmat: np.ndarray
    query: list[Sample]
    gallery: list[Sample]
    camera_filter: CameraFilter = "all"
    camera_alias: dict[int, int] = field(default_factory=dict)
    exclude_same_camera: bool = True

    def __getitem__(self, key: str) -> Any:
        """``view["distmat"]``: the attributes by name, as the notebooks' dict-style access reads them."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    @classmethod
    def from_records(
        cls,
        distmat: Any,
        query: Sequence[Sample],
        gallery: Sequence[Sample],
        exclude_same_camera: bool = True,
        camera_alias: Mapping[int, int] | None = None,
        camera_filter: CameraFilter = "all",
        name: str = "",
    ) -> RankView:
        """A view of a given distance matrix (numpy or torch); ``exclude_same_camera=False`` keeps every item."""
        dist = distmat.detach().cpu().numpy() if hasattr(distmat, "detach") else distmat
        dist = np.asarray(dist, dtype=np.float64)
        if dist.shape != (len(query), len(gallery)):
            raise ValueError(
                f"distmat shape {dist.shape} != (len(query), len(gallery)) = ({len(query)}, {len(gallery)})"
            )
        return cls(name, dist, list(query), list(gallery), camera_filter, dict(camera_alias or {}), exclude_same_camera)

    def masks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(keep, match)`` ``(Q, G)`` masks of the camera rule (everything kept when the rule is switched off)."""
        keep, match = camera_rule(self.query, self.gallery, self.camera_filter, self.camera_alias)
        if not self.exclude_same_camera:
            q_pids = np.array([s.pid for s in self.query])[:, None]
            return np.ones_like(keep), q_pids == np.array([s.pid for s in self.gallery])[None, :]
        return keep, match

    def ranked(self, query_index: int) -> np.ndarray:
        """Gallery indices of one query in ranking order after the camera rule (ties keep gallery order)."""
        if not 0 <= query_index < len(self.query):
            raise IndexError(f"query_index {query_index} out of range for {len(self.query)} queries")
        keep, _ = self.masks()
        order = np.argsort(self.distmat[query_index], kind="stable")
        return order[keep[query_index][order]].astype(np.int64)

    def first_match_ranks(self) -> np.ndarray:
        """Image-level rank (1-based) of every query's first true match after the camera rule; 0 when none."""
        keep, match = self.masks()
        order = np.argsort(self.distmat, axis=1, kind="stable")
        keep_sorted = np.take_along_axis(keep, order, axis=1)
        match_sorted = np.take_along_axis(match, order, axis=1) & keep_sorted
        position = np.cumsum(keep_sorted, axis=1)  # 1-based rank among kept items
        has = match_sorted.any(axis=1)
        first = np.argmax(match_sorted, axis=1)
        return np.where(has, position[np.arange(len(self.query)), first], 0).astype(np.int64)

    def average_precision(self) -> np.ndarray:
        """AP of every query on this view (image level, after the camera rule, ties in gallery order: the AP of
        :func:`idkl_lib.eval.rank.evaluate_rank`); NaN for a query without a true match."""
        keep, match = self.masks()
        order = np.argsort(self.distmat, axis=1, kind="stable")
        kept = np.take_along_axis(keep, order, axis=1)
        hits = np.take_along_axis(match, order, axis=1) & kept
        position = np.cumsum(kept, axis=1)  # 1-based rank among kept items
        found = np.cumsum(hits, axis=1)
        precision = np.where(hits, found / np.maximum(position, 1), 0.0).sum(axis=1)
        count = hits.sum(axis=1)
        return np.where(count > 0, precision / np.maximum(count, 1), np.nan)

    def query_order(self, order: str = "worst") -> tuple[np.ndarray, str]:
        """Query indices in the ``order`` of :data:`QUERY_ORDERS` (``"worst"`` / ``"best"`` AP first, ties and
        queries without a true match in drawn order, the latter last; ``"drawn"``: as they are) and its description."""
        if order not in QUERY_ORDERS:
            raise ValueError(f"unknown query order {order!r}; use one of {', '.join(QUERY_ORDERS)}")
        indices = np.arange(len(self.query))
        if order == "drawn":
            return indices, QUERY_ORDERS[order]
        ap = self.average_precision()
        key = np.where(np.isnan(ap), np.inf, ap if order == "worst" else -ap)
        return indices[np.argsort(key, kind="stable")], QUERY_ORDERS[order]


def protocol_camera_rule(name: str) -> tuple[CameraFilter, dict[int, int]]:
    """The camera rule and camera aliases of dataset ``name``'s main protocol (the rule its rank lists show):
    SYSU-MM01 ``("all", {3: 2})``, RegDB ``("all", {})``, LLCM ``("same_identity", {})``."""
    info = dataset_info(name)
    return _MAIN_VIEW[info.name][1], dict(info.camera_alias)


def _sysu_trial(dataset: VIDataset, trial: int) -> np.ndarray:
    table = read_rand_perm_cam(str(dataset.meta["rand_perm_cam"]))
    return sysu_gallery_trials(dataset.gallery, table, "all", 1, trial + 1)[trial]


def _llcm_trial(dataset: VIDataset, trial: int) -> np.ndarray:
    return llcm_gallery_trials(dataset.gallery, trial + 1)[trial]


def _whole_gallery(dataset: VIDataset, trial: int) -> np.ndarray:
    return np.arange(len(dataset.gallery))


_MAIN_VIEW: dict[str, tuple[Callable[[VIDataset, int], np.ndarray], CameraFilter]] = {
    "sysu": (_sysu_trial, "all"),
    "regdb": (_whole_gallery, "all"),
    "llcm": (_llcm_trial, "same_identity"),
}
"""Gallery trial and camera rule of the protocol each dataset's rank list shows (``DATASETS[name].main_view``)."""


def rank_view(dataset: VIDataset, query_feats: FeatureArray, gallery_feats: FeatureArray, trial: int = 0) -> RankView:
    """One gallery trial of the dataset's main protocol (infrared queries), as the evaluation sees it.

    SYSU-MM01: all-search single-shot, trial ``trial`` of ``rand_perm_cam``, camera 3 counted as camera 2. RegDB:
    thermal -> visible over the whole gallery. LLCM: infrared -> visible, trial ``trial`` of the official sampling,
    only same-identity same-camera images removed. Distances are Euclidean on L2-normalised features, as in the
    evaluation.
    """
    info = dataset_info(dataset.name)
    select, camera_filter = _MAIN_VIEW[info.name]
    gallery_index = select(dataset, trial)
    q = F.normalize(torch.as_tensor(query_feats).float(), dim=1)
    g = F.normalize(torch.as_tensor(gallery_feats).float()[torch.as_tensor(gallery_index)], dim=1)
    return RankView(
        name=f"{info.main_view} (trial {trial + 1})",
        distmat=pairwise_distance(q, g, metric="euclidean").numpy(),
        query=list(dataset.query),
        gallery=[dataset.gallery[i] for i in gallery_index],
        camera_filter=camera_filter,
        camera_alias=dict(info.camera_alias),
    )
