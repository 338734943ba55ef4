"""Rank lists: a query image followed by its top-k gallery images, true matches framed bluish green, false ones
orange (Okabe-Ito green and vermillion).

The gallery is filtered by the evaluation protocol's camera rule (:class:`idkl_lib.eval.views.RankView`; pass the
view's ``camera_filter`` and ``camera_alias``): ``"all"`` removes every gallery image taken by the query's camera
(SYSU-MM01, which also counts camera 3 as camera 2, and RegDB), ``"same_identity"`` only those of the query's identity
(LLCM). This module draws; it never ranks or filters itself. Distances are "lower = more similar".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from idkl_lib.data.records import INFRARED, Sample
from idkl_lib.eval.rank import CameraFilter
from idkl_lib.eval.views import RankView
from idkl_lib.utils.io import atomic_write_bytes
from idkl_lib.viz.export import figure_to_png
from idkl_lib.viz.images import add_border, load_image
from idkl_lib.viz.plots import image_grid
from idkl_lib.viz.theme import MATCH_COLOR, MAX_WIDTH, MISMATCH_COLOR

QUERY_COLOR = "#555555"
_RULE_TEXT = {
    "all": "; same-camera gallery images excluded",
    "same_identity": "; same-camera images of the query's identity excluded",
}


def ranked_gallery(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    query_index: int,
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
    camera_filter: CameraFilter = "all",
) -> np.ndarray:
    """Gallery indices in ranking order for one query, after the protocol's camera rule
    (:meth:`idkl_lib.eval.views.RankView.ranked`).

    Args:
        distmat: ``(Q, G)`` query-gallery distances (numpy or torch); not modified.
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        query_index: Row of ``distmat``.
        exclude_same_camera: Apply the camera rule.
        camera_alias: Camera ids treated as another camera for that rule (SYSU-MM01: ``{3: 2}``).
        camera_filter: ``"all"`` (every same-camera image, SYSU/RegDB) or ``"same_identity"`` (LLCM).

    Returns:
        ``int64 (G',)`` gallery indices sorted by increasing distance (ties keep gallery order).
    """
    view = RankView.from_records(distmat, query, gallery, exclude_same_camera, camera_alias, camera_filter)
    return view.ranked(query_index)


def first_match_ranks(
    distmat: np.ndarray,
    query: Sequence[Sample],
    gallery: Sequence[Sample],
    exclude_same_camera: bool = True,
    camera_alias: Mapping[int, int] | None = None,
    camera_filter: CameraFilter = "all",
) -> np.ndarray:
    """Rank (1-based) of the first true match of every query after the camera rule; 0 when there is none
    (:meth:`idkl_lib.eval.views.RankView.first_match_ranks`).

    Handy for picking queries to show, e.g. ``np.flatnonzero(first_match_ranks(...) != 1)`` are rank-1 failures.
    Image-level ranks (not the identity-deduplicated CMC ranks, which can only be smaller or equal).

    Args:
        distmat: ``(Q, G)`` distances.
        query: ``Q`` query records.
        gallery: ``G`` gallery records.
        exclude_same_camera: Apply the protocol's camera rule.
        camera_alias: Camera ids treated as another camera (SYSU-MM01: ``{3: 2}``).
        camera_filter: ``"all"`` or ``"same_identity"`` (see :func:`ranked_gallery`).

    Returns:
        ``int64 (Q,)``.
    """
    return RankView.from_records(
        distmat, query, gallery, exclude_same_camera, camera_alias, camera_filter
    ).first_match_ranks()


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
    camera_filter: CameraFilter = "all",
) -> go.Figure:
    """The query image then its top-k gallery images; one row per query when several indices are given.

    Each gallery image has a bluish-green border (✓) for a true match and an orange one (✗) for a false match, and
    a caption with its rank, distance, identity, camera and modality. A query's ranks wrap onto further rows when
    they would make the figure wider than :data:`~idkl_lib.viz.theme.MAX_WIDTH` (JupyterLab's output area), so every
    rank stays in sight.

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
        camera_filter: The protocol's camera rule (``RankView.camera_filter``; LLCM: ``"same_identity"``).
    """
    indices = [int(query_index)] if isinstance(query_index, (int, np.integer)) else [int(i) for i in query_index]
    if not indices:
        raise ValueError("query_index is empty")
    view = RankView.from_records(distmat, query, gallery, exclude_same_camera, camera_alias, camera_filter)
    border = max(2, image_size[0] // 32)
    cell_size = (image_size[0] + 54, max(image_size[1] + 72, 136))
    per_row = max(1, (MAX_WIDTH - 80) // cell_size[1] - 1)  # gallery tiles after the query, row labels left
    images, captions, row_labels, first_hits = [], [], [], []
    for qi in indices:
        q = query[qi]
        order = view.ranked(qi)
        dist_row = view.distmat[qi]
        matches = np.array([gallery[g].pid == q.pid for g in order], dtype=bool)
        first_hits.append(int(np.argmax(matches)) + 1 if matches.any() else None)
        tiles, caps = [], []
        for rank, (g, ok) in enumerate(zip(order[:topk], matches[:topk], strict=True), start=1):
            s = gallery[g]
            tiles.append(add_border(load_image(s.path, image_size), MATCH_COLOR if ok else MISMATCH_COLOR, border))
            mark = "✓" if ok else "✗"
            caps.append(f"{mark} rank {rank} · d {dist_row[g]:.3g}<br>pid {s.pid} · cam {s.camid} · {_modality_tag(s)}")
        query_tile = add_border(load_image(q.path, image_size), QUERY_COLOR, border)
        query_cap = f"query #{qi}<br>pid {q.pid} · cam {q.camid} · {_modality_tag(q)}"
        for start in range(0, max(len(tiles), 1), per_row):
            first = start == 0
            images.append([query_tile if first else None, *tiles[start : start + per_row]])
            captions.append([query_cap if first else "", *caps[start : start + per_row]])
            shown = f"ranks {start + 1}–{min(start + per_row, len(tiles))}"
            row_labels.append(f"query #{qi}" if first else shown)
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
        + (_RULE_TEXT[camera_filter] if exclude_same_camera else "")
    )
    return image_grid(
        images,
        title,
        captions=captions,
        row_labels=row_labels if len(images) > 1 else None,
        cell_size=cell_size,
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
) -> Path:
    """Write :func:`ranklist_figure` as a PNG (atomically) with :func:`idkl_lib.viz.export.figure_to_png` (needs a
    Chrome or Chromium). Returns the path."""
    fig = ranklist_figure(distmat, query, gallery, query_index, topk, image_size, exclude_same_camera, camera_alias)
    return atomic_write_bytes(path, figure_to_png(fig, scale=scale))


__all__ = ["first_match_ranks", "ranked_gallery", "ranklist_figure", "save_ranklist_png"]
