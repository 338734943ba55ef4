"""Embedding-space views: UMAP projection, modality-gap statistics and scatter plots.

``umap`` (and its numba start-up cost) and scikit-learn are imported inside the functions that need them, so
importing :mod:`idkl_lib.viz` stays fast. Modality convention: 0 = visible, 1 = infrared.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from idkl_lib.data.records import INFRARED, VISIBLE, Sample
from idkl_lib.viz.theme import (
    LEGEND_BELOW,
    MODALITY_COLORS,
    MODALITY_SYMBOLS,
    OKABE_ITO,
    modality_name,
    style_figure,
)

IDENTITY_PALETTE: tuple[str, ...] = (
    *("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499"),
    *("#009E73", "#CC79A7", "#D55E00", "#F0E442", "#000000"),
)
"""Tol muted + Okabe-Ito: 14 colour-blind-friendly identity colours (cycled beyond 14 identities), leaving out the
two modality colours so that blue / orange always mean visible / infrared."""


def _as_numpy(x: object, dtype: type | None = None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # type: ignore[union-attr]
    return np.asarray(x, dtype=dtype)


def umap_embed(
    features: np.ndarray,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int | None = 0,
) -> np.ndarray:
    """Project features to 2-D with UMAP.

    With an integer ``seed`` the result is reproducible (umap-learn then runs single-threaded); ``seed=None`` is
    faster on many cores but not reproducible.

    Args:
        features: ``(N, D)`` features (numpy or torch), ``N >= 3``.
        n_neighbors: UMAP neighbourhood size (lowered to ``N - 1`` with a warning for tiny inputs).
        min_dist: UMAP minimum distance.
        metric: Distance in feature space (``"cosine"`` matches the L2-normalised retrieval distance).
        seed: Random state.

    Returns:
        ``float32 (N, 2)`` coordinates.
    """
    x = _as_numpy(features, np.float32)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"umap_embed needs (N, D) features with N >= 3, got shape {x.shape}")
    if n_neighbors >= x.shape[0]:
        warnings.warn(f"n_neighbors={n_neighbors} >= N={x.shape[0]}; using {x.shape[0] - 1}", stacklevel=2)
        n_neighbors = x.shape[0] - 1
    import umap

    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        random_state=seed,
        n_jobs=1 if seed is not None else -1,
    )
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


def modality_gap_stats(
    features: np.ndarray,
    pids: np.ndarray | Sequence[int],
    modality: np.ndarray | Sequence[int],
    silhouette_sample_size: int | None = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """How far apart the two modalities are in embedding space, with cosine distance on L2-normalised features.

    Pair means are computed from per-(identity, modality) feature sums in ``O(N * D)``, without an ``N x N`` matrix.

    Args:
        features: ``(N, D)`` features (numpy or torch); L2-normalised here.
        pids: ``(N,)`` identity labels.
        modality: ``(N,)`` modality labels (0 visible, 1 infrared).
        silhouette_sample_size: Silhouettes are computed on a random subset of this size when ``N`` is larger
            (sklearn's ``sample_size``); ``None`` uses all points.
        seed: Random state of that subset.

    Returns:
        Plain floats (NaN when a quantity has no pairs / too few labels):

        * ``cross_same_id``: mean distance over (visible, infrared) pairs of the same identity;
        * ``cross_diff_id``: same over pairs of different identities;
        * ``cross_ratio``: ``cross_same_id / cross_diff_id`` (lower = better cross-modality retrieval);
        * ``intra_same_id``: mean distance over same-modality pairs of the same identity (distinct images);
        * ``centroid_distance``: cosine distance between the mean visible and the mean infrared feature;
        * ``silhouette_modality``: silhouette by modality (near 1 = modalities separated, near 0 or below = mixed);
        * ``silhouette_identity``: silhouette by identity (higher = identities form clusters);
        * ``num_samples``, ``num_identities``.
    """
    x = _as_numpy(features, np.float64)
    pid = _as_numpy(pids).reshape(-1)
    mod = _as_numpy(modality).reshape(-1)
    if x.ndim != 2 or len(pid) != len(x) or len(mod) != len(x):
        raise ValueError(f"features {x.shape}, pids {pid.shape} and modality {mod.shape} must agree on N")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ids, pid_idx = np.unique(pid, return_inverse=True)
    n_ids, dim = len(ids), x.shape[1]
    sums = np.zeros((2, n_ids, dim))  # per (modality, identity) sums of unit vectors
    counts = np.zeros((2, n_ids))
    for m in (VISIBLE, INFRARED):
        sel = mod == m
        np.add.at(sums[m], pid_idx[sel], x[sel])
        counts[m] = np.bincount(pid_idx[sel], minlength=n_ids)

    def mean_dist(sim_sum: float, n_pairs: float) -> float:
        return float(1.0 - sim_sum / n_pairs) if n_pairs > 0 else float("nan")

    v, i = VISIBLE, INFRARED
    same_sim = float(np.einsum("kd,kd->", sums[v], sums[i]))
    same_pairs = float(counts[v] @ counts[i])
    all_sim = float(sums[v].sum(0) @ sums[i].sum(0))
    all_pairs = float(counts[v].sum() * counts[i].sum())
    cross_same = mean_dist(same_sim, same_pairs)
    cross_diff = mean_dist(all_sim - same_sim, all_pairs - same_pairs)
    intra_sim = float(np.einsum("mkd,mkd->", sums, sums) - counts.sum())  # drop the i == j self pairs (cos = 1)
    intra_pairs = float((counts * (counts - 1)).sum())
    centroids = sums.sum(1)
    norms = np.linalg.norm(centroids, axis=1)
    centroid = float(1.0 - centroids[v] @ centroids[i] / (norms[v] * norms[i])) if np.all(norms > 0) else float("nan")
    return {
        "cross_same_id": cross_same,
        "cross_diff_id": cross_diff,
        "cross_ratio": cross_same / cross_diff if cross_diff > 0 else float("nan"),
        "intra_same_id": mean_dist(intra_sim, intra_pairs),
        "centroid_distance": centroid,
        "silhouette_modality": _silhouette(x, mod, silhouette_sample_size, seed),
        "silhouette_identity": _silhouette(x, pid, silhouette_sample_size, seed),
        "num_samples": float(len(x)),
        "num_identities": float(n_ids),
    }


def _silhouette(x: np.ndarray, labels: np.ndarray, sample_size: int | None, seed: int) -> float:
    n_labels = len(np.unique(labels))
    if not 2 <= n_labels <= len(x) - 1:
        return float("nan")
    from sklearn.metrics import silhouette_score

    size = sample_size if sample_size is not None and len(x) > sample_size else None
    return float(silhouette_score(x, labels, metric="cosine", sample_size=size, random_state=seed))


def sample_hover(samples: Sequence[Sample]) -> list[str]:
    """Hover texts for :func:`embedding_scatter`: file path, identity, camera and modality of each record."""
    return [f"{s.path}<br>pid {s.pid} · cam {s.camid} · {modality_name(s.modality)}" for s in samples]


_MARKER_STYLE = {VISIBLE: {"size": 8, "opacity": 0.8}, INFRARED: {"size": 6, "opacity": 0.55}}
"""Marker size and opacity per modality: infrared is drawn last (on top), so it is the smaller, fainter one."""


def embedding_scatter(
    coords: np.ndarray,
    pids: np.ndarray | Sequence[int],
    modality: np.ndarray | Sequence[int],
    title: str = "Embedding space (UMAP)",
    hover: Sequence[str] | None = None,
    x_label: str = "UMAP 1",
    y_label: str = "UMAP 2",
) -> go.Figure:
    """Two panels of the same 2-D points: coloured by identity (left) and by modality (right).

    Marker symbols encode modality in both panels (circle = visible, diamond = infrared), so the legend entries
    of the right panel explain both. Identity colours cycle through :data:`IDENTITY_PALETTE`. Infrared points are
    drawn over the visible ones, smaller and semi-transparent, so that neither modality hides the other.

    Args:
        coords: ``(N, 2)`` coordinates (e.g. from :func:`umap_embed`).
        pids: ``(N,)`` identity labels.
        modality: ``(N,)`` modality labels (0 visible, 1 infrared).
        title: Figure title.
        hover: ``N`` hover texts (e.g. :func:`sample_hover`); default: index, identity, modality.
        x_label: Horizontal axis label.
        y_label: Vertical axis label.
    """
    xy = _as_numpy(coords, np.float64)
    pid = _as_numpy(pids).reshape(-1)
    mod = _as_numpy(modality).reshape(-1)
    if xy.ndim != 2 or xy.shape[1] != 2 or len(pid) != len(xy) or len(mod) != len(xy):
        raise ValueError(f"coords {xy.shape} must be (N, 2) with N pids {pid.shape} and modalities {mod.shape}")
    if hover is not None and len(hover) != len(xy):
        raise ValueError(f"{len(hover)} hover texts for {len(xy)} points")
    if hover is None:
        hover = [f"#{k} · pid {p} · {modality_name(m)}" for k, (p, m) in enumerate(zip(pid, mod, strict=True))]
    texts = np.asarray(hover, dtype=object)
    _, pid_rank = np.unique(pid, return_inverse=True)
    id_colors = np.asarray(IDENTITY_PALETTE, dtype=object)[pid_rank % len(IDENTITY_PALETTE)]
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=["coloured by identity", "coloured by modality"], horizontal_spacing=0.08
    )
    scatter = go.Scattergl if len(xy) > 5000 else go.Scatter
    for m in (VISIBLE, INFRARED):
        sel = mod == m
        if not sel.any():
            continue
        name = modality_name(m)
        common = {
            "x": xy[sel, 0],
            "y": xy[sel, 1],
            "mode": "markers",
            "text": texts[sel],
            "legendgroup": name,
            "hovertemplate": "%{text}<extra></extra>",
        }
        fig.add_trace(
            scatter(
                **common,
                name=name,
                showlegend=False,
                marker={
                    "color": id_colors[sel].tolist(),
                    "symbol": MODALITY_SYMBOLS[m],
                    **_MARKER_STYLE[m],
                    "line": {"width": 0.5, "color": "#333333"},
                },
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            scatter(
                **common,
                name=name,
                marker={"color": MODALITY_COLORS[m], "symbol": MODALITY_SYMBOLS[m], **_MARKER_STYLE[m]},
            ),
            row=1,
            col=2,
        )
    for c in (1, 2):
        fig.update_xaxes(title_text=x_label, row=1, col=c)
        fig.update_yaxes(title_text=y_label, row=1, col=c)
    return style_figure(
        fig, title, legend=LEGEND_BELOW, legend_title_text="modality", height=580, margin={"t": 80, "b": 110}
    )


__all__ = [
    "IDENTITY_PALETTE",
    "embedding_scatter",
    "modality_gap_figure",
    "modality_gap_stats",
    "sample_hover",
    "umap_embed",
]


def modality_gap_figure(stats: Mapping[str, Mapping[str, float]], title: str = "Modality gap per feature") -> go.Figure:
    """Bars of the modality-gap numbers of :func:`idkl_lib.viz.modality_gap_stats`, one group per feature.

    Left: mean cosine distance of visible-infrared pairs of the same identity and of different identities (a small
    same/different ratio = the modalities are bridged). Right: silhouette by modality (0 or below = mixed) and by
    identity (higher = identities form clusters).
    """
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=["cross-modality distance (cosine)", "silhouette"],
        horizontal_spacing=0.12,
    )
    names = list(stats)
    labels = [n.replace(" (", "<br>(") for n in names]  # two short lines instead of long rotated labels
    panels = (
        (1, "cross_same_id", "same identity"),
        (1, "cross_diff_id", "different identities"),
        (2, "silhouette_modality", "by modality"),
        (2, "silhouette_identity", "by identity"),
    )
    for i, (col, key, label) in enumerate(panels):
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[stats[n][key] for n in names],
                name=label,
                marker={"color": OKABE_ITO[i]},
                text=[f"{stats[n][key]:.3f}" for n in names],
                textposition="outside",
            ),
            row=1,
            col=col,
        )
        fig.update_xaxes(title_text="feature", row=1, col=col)
    fig.update_yaxes(title_text="mean cosine distance", row=1, col=1)
    fig.update_yaxes(title_text="silhouette score", row=1, col=2)
    return style_figure(
        fig,
        title,
        barmode="group",
        legend=LEGEND_BELOW,
        legend_title_text="quantity",
        height=540,
        margin={"t": 80, "b": 130},
    )
