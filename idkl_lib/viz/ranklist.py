"""Rank lists: a query image followed by its top-k gallery images, true matches framed green, false ones red.

The gallery is filtered the way the evaluation protocol does it (SPEC.md §4.3): every gallery image taken by the
query's camera is removed, whatever its identity. SYSU-MM01 also treats camera 3 as camera 2 (same location); pass
``camera_alias={3: 2}`` to reproduce that. Distances are "lower = more similar".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from idkl_lib.data.records import INFRARED, Sample
from idkl_lib.utils.io import atomic_write_bytes
from idkl_lib.viz.images import add_border, load_image
from idkl_lib.viz.plots import MATCH_COLOR, MISMATCH_COLOR, figure_to_png, image_grid

QUERY_COLOR = "#555555"


def _as_numpy(x: object) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(x, dtype=np.float64)


def ranked_gallery(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    query_index: int,
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
) -> np.ndarray:
    """Gallery indices in ranking order for one query, after the protocol's same-camera removal.

    Args:
        distmat: ``(Q, G)`` query-gallery distances (numpy or torch); not modified.
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        query_index: Row of ``distmat``.
        exclude_same_camera: Drop gallery images whose camera equals the query's.
        camera_alias: Camera ids treated as another camera for that rule (SYSU-MM01: ``{3: 2}``).

    Returns:
        ``int64 (G',)`` gallery indices sorted by increasing distance (ties keep gallery order).
    """
    dist = _as_numpy(distmat)
    if dist.shape != (len(query), len(gallery)):
        raise ValueError(f"distmat shape {dist.shape} != (len(query), len(gallery)) = ({len(query)}, {len(gallery)})")
    if not 0 <= query_index < len(query):
        raise IndexError(f"query_index {query_index} out of range for {len(query)} queries")
    order = np.argsort(dist[query_index], kind="stable")
    if exclude_same_camera:
        alias = dict(camera_alias or {})
        qcam = alias.get(query[query_index].camid, query[query_index].camid)
        gcams = np.array([alias.get(g.camid, g.camid) for g in gallery])
        order = order[gcams[order] != qcam]
    return order.astype(np.int64)


def first_match_ranks(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
) -> np.ndarray:
    """Rank (1-based) of the first true match of every query after same-camera removal; 0 when there is none.

    Handy for picking queries to show, e.g. ``np.flatnonzero(first_match_ranks(...) != 1)`` are rank-1 failures.
    Image-level ranks (not the identity-deduplicated CMC ranks, which can only be smaller or equal).

    Args:
        distmat: ``(Q, G)`` distances.
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        exclude_same_camera: Apply the protocol's same-camera removal.
        camera_alias: Camera ids treated as another camera (SYSU-MM01: ``{3: 2}``).

    Returns:
        ``int64 (Q,)``.
    """
    dist = _as_numpy(distmat)
    if dist.shape != (len(query), len(gallery)):
        raise ValueError(f"distmat shape {dist.shape} != (len(query), len(gallery)) = ({len(query)}, {len(gallery)})")
    alias = dict(camera_alias or {})
    qpid = np.array([q.pid for q in query])
    gpid = np.array([g.pid for g in gallery])
    qcam = np.array([alias.get(q.camid, q.camid) for q in query])
    gcam = np.array([alias.get(g.camid, g.camid) for g in gallery])
    keep = gcam[None, :] != qcam[:, None] if exclude_same_camera else np.ones(dist.shape, dtype=bool)
    order = np.argsort(dist, axis=1, kind="stable")
    keep_sorted = np.take_along_axis(keep, order, axis=1)
    match_sorted = (gpid[order] == qpid[:, None]) & keep_sorted
    position = np.cumsum(keep_sorted, axis=1)  # 1-based rank among kept items
    has = match_sorted.any(axis=1)
    first = np.argmax(match_sorted, axis=1)
    return np.where(has, position[np.arange(len(query)), first], 0).astype(np.int64)


def _modality_tag(sample: Sample) -> str:
    return "IR" if sample.modality == INFRARED else "VIS"


def ranklist_figure(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    query_index: int | Sequence[int],
    topk: int = 10,
    image_size: tuple[int, int] = (128, 64),
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The query image then its top-k gallery images; one row per query when several indices are given.

    Each gallery image has a green border (✓) for a true match and a red one (✗) for a false match, and a caption
    with its rank, distance, identity, camera and modality.

    Args:
        distmat: ``(Q, G)`` distances (lower = more similar).
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        query_index: One query row or several.
        topk: Gallery images shown per query.
        image_size: ``(height, width)`` the images are resized to.
        exclude_same_camera: Apply the protocol's same-camera removal (see :func:`ranked_gallery`).
        camera_alias: Camera ids treated as another camera (SYSU-MM01: ``{3: 2}``).
        title: Figure title (default describes the query and its first true match).
    """
    indices = [int(query_index)] if isinstance(query_index, (int, np.integer)) else [int(i) for i in query_index]
    if not indices:
        raise ValueError("query_index is empty")
    border = max(2, image_size[0] // 32)
    images, captions, row_labels, first_hits = [], [], [], []
    for qi in indices:
        q = query[qi]
        order = ranked_gallery(distmat, query, gallery, qi, exclude_same_camera, camera_alias)
        dist_row = _as_numpy(distmat)[qi]
        matches = np.array([gallery[g].pid == q.pid for g in order], dtype=bool)
        first_hits.append(int(np.argmax(matches)) + 1 if matches.any() else None)
        row = [add_border(load_image(q.path, image_size), QUERY_COLOR, border)]
        caps = [f"query #{qi}<br>pid {q.pid} · cam {q.camid} · {_modality_tag(q)}"]
        for rank, (g, ok) in enumerate(zip(order[:topk], matches[:topk], strict=True), start=1):
            s = gallery[g]
            row.append(add_border(load_image(s.path, image_size), MATCH_COLOR if ok else MISMATCH_COLOR, border))
            mark = "✓" if ok else "✗"
            caps.append(f"{mark} rank {rank} · d {dist_row[g]:.3g}<br>pid {s.pid} · cam {s.camid} · {_modality_tag(s)}")
        images.append(row)
        captions.append(caps)
        row_labels.append(f"query #{qi}")
    if title is None:
        if len(indices) == 1:
            q, hit = query[indices[0]], first_hits[0]
            found = f"first true match at rank {hit}" if hit else "no true match in the gallery"
            title = f"Rank list of query #{indices[0]} (pid {q.pid}, cam {q.camid}): {found}"
        else:
            r1 = sum(h == 1 for h in first_hits)
            title = f"Rank lists of {len(indices)} queries ({r1} correct at rank 1)"
    subtitle = (
        f"border: <span style='color:{MATCH_COLOR}'>✓ same identity</span>, "
        f"<span style='color:{MISMATCH_COLOR}'>✗ different identity</span>"
        + ("; same-camera gallery images excluded" if exclude_same_camera else "")
    )
    return image_grid(
        images,
        title,
        captions=captions,
        row_labels=row_labels if len(indices) > 1 else None,
        cell_size=(image_size[0] + 54, max(image_size[1] + 80, 144)),
        subtitle=subtitle,
    )


def save_ranklist_png(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    query_index: int | Sequence[int],
    path: str | os.PathLike[str],
    topk: int = 10,
    image_size: tuple[int, int] = (128, 64),
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
    scale: float = 2.0,
    engine: str = "auto",
) -> Path:
    """Write :func:`ranklist_figure` as a PNG (atomically); see :func:`idkl_lib.viz.plots.figure_to_png` for
    ``engine``. Returns the path."""
    fig = ranklist_figure(distmat, query, gallery, query_index, topk, image_size, exclude_same_camera, camera_alias)
    return atomic_write_bytes(path, figure_to_png(fig, scale=scale, engine=engine))


__all__ = ["first_match_ranks", "ranked_gallery", "ranklist_figure", "save_ranklist_png"]
