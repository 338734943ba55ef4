"""Embedding views: modality-gap statistics against naive loops, UMAP determinism, the scatter figure."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from idkl_lib.data.records import Sample
from idkl_lib.viz.embeddings import IDENTITY_PALETTE, embedding_scatter, modality_gap_stats, sample_hover, umap_embed
from idkl_lib.viz.plots import MODALITY_COLORS, MODALITY_SYMBOLS


def _naive_stats(x: np.ndarray, pid: np.ndarray, mod: np.ndarray) -> dict[str, float]:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    groups: dict[str, list[float]] = {"cross_same_id": [], "cross_diff_id": [], "intra_same_id": []}
    for i, j in itertools.product(range(len(x)), repeat=2):
        d = 1.0 - float(x[i] @ x[j])
        if mod[i] == 0 and mod[j] == 1:
            groups["cross_same_id" if pid[i] == pid[j] else "cross_diff_id"].append(d)
        elif mod[i] == mod[j] and pid[i] == pid[j] and i != j:
            groups["intra_same_id"].append(d)
    out = {k: float(np.mean(v)) for k, v in groups.items()}
    out["cross_ratio"] = out["cross_same_id"] / out["cross_diff_id"]
    cv, ci = x[mod == 0].mean(0), x[mod == 1].mean(0)
    out["centroid_distance"] = 1.0 - float(cv @ ci / np.linalg.norm(cv) / np.linalg.norm(ci))
    return out


def _naive_silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = 1.0 - x @ x.T
    scores = []
    for i in range(len(x)):
        same = (labels == labels[i]) & (np.arange(len(x)) != i)
        if not same.any():
            scores.append(0.0)
            continue
        a = d[i, same].mean()
        b = min(d[i, labels == other].mean() for other in np.unique(labels) if other != labels[i])
        scores.append((b - a) / max(a, b))
    return float(np.mean(scores))


def test_modality_gap_stats_match_naive_loops() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(36, 8))
    pid = rng.integers(0, 5, size=36)
    mod = rng.integers(0, 2, size=36)
    x_before = x.copy()
    stats = modality_gap_stats(x, pid, mod)
    ref = _naive_stats(x, pid, mod)
    for key, value in ref.items():
        assert stats[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert stats["silhouette_modality"] == pytest.approx(_naive_silhouette(x, mod), abs=1e-9)
    assert stats["silhouette_identity"] == pytest.approx(_naive_silhouette(x, pid), abs=1e-9)
    assert stats["num_samples"] == 36.0 and stats["num_identities"] == float(len(np.unique(pid)))
    assert all(type(v) is float for v in stats.values())
    assert np.array_equal(x, x_before)
    torch_stats = modality_gap_stats(torch.from_numpy(x), torch.from_numpy(pid), torch.from_numpy(mod))
    assert torch_stats["cross_ratio"] == pytest.approx(stats["cross_ratio"])


def test_separated_modalities_give_silhouette_near_one() -> None:
    rng = np.random.default_rng(1)
    n, dim = 40, 16
    mod = np.repeat([0, 1], n // 2)
    pid = np.tile(np.arange(10), 4)
    x = 0.05 * rng.normal(size=(n, dim))
    x[mod == 0, 0] += 1.0
    x[mod == 1, 1] += 1.0
    stats = modality_gap_stats(x, pid, mod)
    assert stats["silhouette_modality"] > 0.9
    assert stats["centroid_distance"] > 0.9
    assert stats["cross_ratio"] == pytest.approx(1.0, abs=0.05)  # modality dominates, identity invisible
    assert stats["silhouette_identity"] < 0.1


def test_modality_invariant_identities() -> None:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(6, 32))
    pid = np.repeat(np.arange(6), 6)
    mod = np.tile([0, 1], 18)
    x = centres[pid] + 0.05 * rng.normal(size=(36, 32))
    stats = modality_gap_stats(x, pid, mod)
    assert stats["silhouette_identity"] > 0.8
    assert stats["silhouette_modality"] < 0.1
    assert stats["cross_ratio"] < 0.1
    assert stats["intra_same_id"] == pytest.approx(stats["cross_same_id"], abs=0.01)


def test_one_modality_gives_nan_cross_stats() -> None:
    x = np.random.default_rng(3).normal(size=(10, 4))
    stats = modality_gap_stats(x, np.arange(10) % 3, np.zeros(10, dtype=int))
    assert np.isnan(stats["cross_same_id"]) and np.isnan(stats["cross_ratio"])
    assert np.isnan(stats["silhouette_modality"])
    assert np.isfinite(stats["intra_same_id"])
    with pytest.raises(ValueError, match="must agree on N"):
        modality_gap_stats(x, np.arange(9), np.zeros(10))


def test_umap_is_deterministic_and_keeps_clusters() -> None:
    rng = np.random.default_rng(4)
    centres = 5.0 * rng.normal(size=(3, 20))
    labels = np.repeat(np.arange(3), 20)
    x = (centres[labels] + 0.3 * rng.normal(size=(60, 20))).astype(np.float32)
    a = umap_embed(x, n_neighbors=10, seed=0)
    b = umap_embed(x, n_neighbors=10, seed=0)
    c = umap_embed(x, n_neighbors=10, seed=1)
    assert a.shape == (60, 2) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    d = np.linalg.norm(a[:, None] - a[None], axis=-1) + np.eye(60) * 1e9
    assert np.mean(labels[d.argmin(1)] == labels) == 1.0  # nearest 2-D neighbour has the same label
    with pytest.raises(ValueError, match="N >= 3"):
        umap_embed(x[:2])


def test_embedding_scatter_encodes_identity_and_modality() -> None:
    rng = np.random.default_rng(5)
    coords = rng.normal(size=(12, 2))
    pid = np.array([7, 7, 9, 9, 11, 11] * 2)
    mod = np.repeat([0, 1], 6)
    samples = [Sample(f"/data/img{i}.jpg", int(pid[i]), 1 + int(mod[i]) * 2, int(mod[i])) for i in range(12)]
    fig = embedding_scatter(coords, pid, mod, title="UMAP", hover=sample_hover(samples))
    assert len(fig.data) == 4
    left = [t for t in fig.data if t.xaxis == "x"]
    right = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in right] == ["visible", "infrared"] and all(t.showlegend is not False for t in right)
    assert all(t.showlegend is False for t in left)
    assert [t.marker.color for t in right] == [MODALITY_COLORS[0], MODALITY_COLORS[1]]
    assert [t.marker.symbol for t in left] == [MODALITY_SYMBOLS[0], MODALITY_SYMBOLS[1]]
    for panel in (left, right):  # infrared is drawn over visible: smaller and fainter, so both stay visible
        assert panel[1].marker.size < panel[0].marker.size and panel[1].marker.opacity < panel[0].marker.opacity < 1
    colours = list(left[0].marker.color) + list(left[1].marker.color)
    order = np.concatenate([np.flatnonzero(mod == 0), np.flatnonzero(mod == 1)])
    for p in np.unique(pid):  # one colour per identity, different identities differ
        assert len({colours[k] for k in range(12) if pid[order[k]] == p}) == 1
    assert len(set(colours)) == 3 and set(colours) <= set(IDENTITY_PALETTE)
    assert np.allclose(left[1].x, coords[mod == 1, 0])
    assert "/data/img6.jpg" in left[1].text[0] and "cam 3" in left[1].text[0]
    assert fig.layout.title.text == "UMAP" and fig.layout.xaxis.title.text == "UMAP 1"
    with pytest.raises(ValueError, match="hover texts"):
        embedding_scatter(coords, pid, mod, hover=["a"])
