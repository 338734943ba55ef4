"""Ranking a gallery feature file for some queries: distances, the modality and camera rules, re-ranking.

The order is the evaluation's (:func:`idkl_lib.eval.rank.evaluate_rank`): Euclidean distances between L2-normalised
features (:func:`idkl_lib.distances.pairwise_distance`, as the protocols compute them), ascending, a stable sort (ties
keep gallery order), after dropping the gallery items the rules exclude. Re-ranking is the evaluation's k-reciprocal
re-ranking (:mod:`idkl_lib.eval.rerank`, squared distances, paper defaults).

Rules:

* modality (``"cross"`` by default): a query of a known modality searches the gallery images of the *other* modality
  (infrared -> visible and the reverse); ``"same"`` the same modality, ``"any"`` everything. Gallery images of unknown
  modality are always kept; a query of unknown modality searches everything.
* camera (``"none"`` by default): ``"protocol"`` is the camera rule of the gallery's dataset protocol (SYSU-MM01 and
  RegDB ``"all"``, camera 3 counted as camera 2; LLCM ``"same_identity"``); ``"all"`` drops gallery images of the
  query's camera, ``"same_identity"`` only those also of the query's identity. Unknown cameras or identities never
  match, so nothing is dropped for them.
* the query image itself (same path) is never returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..data.image_files import UNKNOWN
from ..data.records import MODALITY_NAMES
from ..distances import pairwise_distance
from ..eval.rerank import RerankConfig, k_reciprocal_rerank
from ..eval.views import protocol_camera_rule
from ..features.files import FeatureFile, check_same_model

__all__ = ["CAMERA_RULES", "MODALITY_RULES", "SearchError", "SearchResult", "search"]

ModalityRule = Literal["cross", "same", "any"]
CameraRule = Literal["none", "protocol", "all", "same_identity"]
MODALITY_RULES: tuple[str, ...] = ("cross", "same", "any")
CAMERA_RULES: tuple[str, ...] = ("none", "protocol", "all", "same_identity")


class SearchError(ValueError):
    """A search that cannot be done as asked (a query modality the gallery lacks, nothing left to rank)."""


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Distances and kept gallery items of every query.

    Attributes:
        query: The query features (with paths and labels).
        gallery: The gallery features.
        distmat: ``(Q, G)`` distances, lower = more similar (re-ranked when asked).
        keep: ``(Q, G)`` the gallery items each query's rules keep.
        topk: Gallery items listed per query.
        settings: The rules and options used (JSON-ready).
    """

    query: FeatureFile
    gallery: FeatureFile
    distmat: np.ndarray
    keep: np.ndarray
    topk: int
    settings: dict[str, Any] = field(default_factory=dict)

    def ranked(self, query_index: int) -> np.ndarray:
        """Every kept gallery index of one query, nearest first (stable: ties keep gallery order)."""
        order = np.argsort(self.distmat[query_index], kind="stable")
        return order[self.keep[query_index][order]]

    def top(self, query_index: int) -> np.ndarray:
        """The first :attr:`topk` of :meth:`ranked`."""
        row = np.where(self.keep[query_index], self.distmat[query_index], np.inf)
        k = min(self.topk, int(self.keep[query_index].sum()))
        if k < row.size:  # partition first: O(G) instead of a full sort for a large gallery
            part = np.argpartition(row, k - 1)[:k]
            cut = row[part].max()
            candidates = np.flatnonzero(row <= cut)  # every item tied with the k-th, in gallery order
            return candidates[np.argsort(row[candidates], kind="stable")][:k]
        return self.ranked(query_index)[:k]

    def is_match(self, query_index: int, gallery_index: np.ndarray) -> list[bool | None]:
        """Same identity (None where either identity is unknown)."""
        pid = int(self.query.pids[query_index])
        return [
            None if pid == UNKNOWN or g == UNKNOWN else bool(g == pid)
            for g in self.gallery.pids[gallery_index].tolist()
        ]

    def as_records(self) -> list[dict[str, Any]]:
        """One dict per query with its top-k results (what the JSON file holds)."""
        out = []
        for qi in range(len(self.query)):
            top = self.top(qi)
            matches = self.is_match(qi, top)
            results = [
                {
                    "rank": rank,
                    "gallery_index": int(g),
                    "path": self.gallery.paths[g],
                    "distance": float(self.distmat[qi, g]),
                    **_labels(self.gallery, int(g)),
                    "match": match,
                }
                for rank, (g, match) in enumerate(zip(top.tolist(), matches, strict=True), start=1)
            ]
            out.append({"query_index": qi, "path": self.query.paths[qi], **_labels(self.query, qi), "results": results})
        return out


def _labels(feats: FeatureFile, i: int) -> dict[str, Any]:
    modality = int(feats.modalities[i])
    return {
        "pid": int(feats.pids[i]),
        "camid": int(feats.camids[i]),
        "modality": MODALITY_NAMES.get(modality, "unknown"),
    }


def _modality_keep(query: FeatureFile, gallery: FeatureFile, rule: str) -> np.ndarray:
    q_mod, g_mod = query.modalities, gallery.modalities
    keep = np.ones((len(query), len(gallery)), dtype=bool)
    if rule == "any":
        return keep
    present = gallery.known_modalities()
    for qi, m in enumerate(q_mod.tolist()):
        if m == UNKNOWN or not present:
            continue
        wanted = 1 - m if rule == "cross" else m
        if wanted not in present:
            have = ", ".join(MODALITY_NAMES[x] for x in sorted(present))
            raise SearchError(
                f"query {query.paths[qi]} is {MODALITY_NAMES[m]}: {rule}-modality search needs "
                f"{MODALITY_NAMES[wanted]} gallery images, but the gallery has only {have} ones; "
                "search with --modality-rule any, or a gallery with that modality"
            )
        keep[qi] = (g_mod == wanted) | (g_mod == UNKNOWN)
    return keep


def _camera_keep(
    query: FeatureFile, gallery: FeatureFile, rule: str, alias: Mapping[int, int]
) -> tuple[np.ndarray, str]:
    if rule == "protocol":
        if gallery.layout is None:
            raise SearchError(
                "--camera-rule protocol needs a gallery from a dataset layout (SYSU-MM01, RegDB, LLCM); "
                "use --camera-rule all or none"
            )
        rule, alias = protocol_camera_rule(gallery.layout)
    if rule == "none":
        return np.ones((len(query), len(gallery)), dtype=bool), rule

    def cams(ids: np.ndarray) -> np.ndarray:
        return np.array([alias.get(int(c), int(c)) for c in ids], dtype=np.int64)

    q_cam, g_cam = cams(query.camids), cams(gallery.camids)
    same = (q_cam[:, None] == g_cam[None, :]) & (q_cam[:, None] != UNKNOWN)
    if rule == "same_identity":
        same &= (query.pids[:, None] == gallery.pids[None, :]) & (query.pids[:, None] != UNKNOWN)
    return ~same, rule


def _distances(query: FeatureFile, gallery: FeatureFile, rerank: RerankConfig | None) -> np.ndarray:
    q, g = query.normalized(), gallery.normalized()
    if rerank is None:
        return pairwise_distance(q, g, metric="euclidean").numpy()
    q_g = pairwise_distance(q, g, metric="sqeuclidean").numpy()
    q_q = pairwise_distance(q, q, metric="sqeuclidean").numpy()
    g_g = pairwise_distance(g, g, metric="sqeuclidean").numpy()
    cross = bool(rerank.cross_modal)
    return k_reciprocal_rerank(q_g, q_q, g_g, rerank.k1, rerank.k2, rerank.lambda_value, cross_modal=cross)


def search(
    gallery: FeatureFile,
    query: FeatureFile,
    *,
    topk: int = 10,
    rerank: bool | RerankConfig = False,
    modality_rule: ModalityRule = "cross",
    camera_rule: CameraRule = "none",
    camera_alias: Mapping[int, int] | None = None,
    gallery_name: str = "the gallery",
    query_name: str = "the queries",
) -> SearchResult:
    """Rank ``gallery`` for every query of ``query`` (see the module docstring for the rules).

    Raises:
        FeatureMismatchError: the two files come from different models, feature widths or feature settings.
        SearchError: a query's modality is missing from the gallery under the modality rule, ``"protocol"`` without a
            dataset layout, or a query with no gallery item left.
        ValueError: bad options.
    """
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"topk must be a positive integer, got {topk!r}")
    if modality_rule not in MODALITY_RULES:
        raise ValueError(f"unknown modality rule {modality_rule!r}; use one of {', '.join(MODALITY_RULES)}")
    if camera_rule not in CAMERA_RULES:
        raise ValueError(f"unknown camera rule {camera_rule!r}; use one of {', '.join(CAMERA_RULES)}")
    if len(gallery) == 0 or len(query) == 0:
        raise SearchError(f"nothing to search: {len(query)} queries, {len(gallery)} gallery images")
    check_same_model(gallery, query, gallery_name, query_name)
    config = RerankConfig() if rerank is True else (rerank or None)
    keep = _modality_keep(query, gallery, modality_rule)
    cam_keep, applied = _camera_keep(query, gallery, camera_rule, dict(camera_alias or {}))
    keep &= cam_keep
    keep &= np.array(query.paths)[:, None] != np.array(gallery.paths)[None, :]
    empty = np.flatnonzero(~keep.any(axis=1))
    if empty.size:
        raise SearchError(
            f"query {query.paths[empty[0]]} has no gallery image left after the rules (modality {modality_rule}, "
            f"camera {applied}); loosen them (--modality-rule any, --camera-rule none)"
        )
    settings: dict[str, Any] = {
        "topk": topk,
        "metric": "euclidean on L2-normalised features",
        "modality_rule": modality_rule,
        "camera_rule": applied,
        "rerank": False if config is None else {"k1": config.k1, "k2": config.k2, "lambda": config.lambda_value},
        "fingerprint": gallery.fingerprint.as_dict(),
        "feature": gallery.meta.get("feature"),
        "flip": gallery.meta.get("flip"),
        "gallery_size": len(gallery),
    }
    return SearchResult(query, gallery, _distances(query, gallery, config), keep, topk, settings)
