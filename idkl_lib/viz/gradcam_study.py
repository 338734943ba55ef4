"""The similarity Grad-CAM study of notebook 04 (the paper's Figure 4): which features to explain
(:data:`FEATURE_VIEWS`), the query/match pairs, the CAMs of every view and their summary numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from idkl_lib.data.records import INFRARED, VISIBLE, Sample, VIDataset
from idkl_lib.viz.gradcam import embed_images, similarity_cam

__all__ = [
    "FEATURE_VIEWS",
    "FeatureView",
    "cam_statistics",
    "feature_views",
    "gradcam_pairs",
    "model_for_view",
    "view_cams",
]


@dataclass(frozen=True)
class FeatureView:
    """One feature shown by the Grad-CAM and embedding notebooks.

    Attributes:
        name: Short key (``"shared"``, ``"specific"``, ``"enhanced"``).
        label: Display label.
        model: Which model computes it: ``"baseline"`` (trained without distillation) or ``"idkl"``.
        which: ``IDKLModel.embed``'s branch.
    """

    name: str
    label: str
    model: str
    which: str


FEATURE_VIEWS: tuple[FeatureView, ...] = (
    FeatureView("shared", "shared (w/o distillation)", "baseline", "shared"),
    FeatureView("specific", "specific (IDKL)", "idkl", "specific"),
    FeatureView("enhanced", "enhanced shared (IDKL)", "idkl", "shared"),
)
"""The paper's three features: the modality-shared feature of a model trained without knowledge distillation, the
modality-specific feature of the IDKL model, and the IDKL model's shared feature, enhanced by the specific
knowledge distilled into it (TGSA, CSA)."""


def model_for_view(view: FeatureView, models: Mapping[str, nn.Module]) -> nn.Module:
    """The model of ``models`` (keys ``"idkl"``, ``"baseline"``) that computes ``view``."""
    if view.model not in models:
        raise KeyError(f"feature {view.name!r} needs the {view.model!r} model; got {sorted(models)}")
    return models[view.model]


def feature_views(models: Mapping[str, nn.Module], views: Sequence[FeatureView] = FEATURE_VIEWS) -> list[FeatureView]:
    """The views whose model is in ``models``; one printed line names those skipped (the baseline's when notebook 02
    trained none)."""
    kept = [view for view in views if view.model in models]
    skipped = [view.label for view in views if view.model not in models]
    if skipped:
        missing = sorted({view.model for view in views if view.model not in models})
        print(f"no {' or '.join(missing)} model: skipping {', '.join(skipped)} (notebook 02 with with_baseline=True "
              "trains the baseline)")  # fmt: skip
    return kept


def gradcam_pairs(dataset: VIDataset, num_per_modality: int = 2, seed: int = 0) -> list[tuple[Sample, Sample]]:
    """(query, matched) test pairs for Grad-CAM: infrared queries with a visible image of the same person, then
    visible queries with an infrared one, each from a different identity, chosen reproducibly from ``seed``."""
    rng = np.random.default_rng(seed)
    infrared = [s for s in (*dataset.query, *dataset.gallery) if s.modality == INFRARED]
    visible = [s for s in (*dataset.query, *dataset.gallery) if s.modality == VISIBLE]
    pairs: list[tuple[Sample, Sample]] = []
    used: set[int] = set()
    for queries, others in ((infrared, visible), (visible, infrared)):
        by_pid: dict[int, list[Sample]] = {}
        for s in others:
            by_pid.setdefault(s.pid, []).append(s)
        candidates = [s for s in queries if s.pid in by_pid and s.pid not in used]
        taken = 0
        for i in rng.permutation(len(candidates)):
            query = candidates[int(i)]
            if query.pid in used:
                continue
            matches = by_pid[query.pid]
            pairs.append((query, matches[int(rng.integers(len(matches)))]))
            used.add(query.pid)
            taken += 1
            if taken == num_per_modality:
                break
    if not pairs:
        raise ValueError(f"{dataset.name}: no identity has test images in both modalities")
    return pairs


def view_cams(
    models: Mapping[str, nn.Module],
    query_images: torch.Tensor,
    matched_images: torch.Tensor,
    views: Sequence[FeatureView] = FEATURE_VIEWS,
    method: str = "gradcam",
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Similarity Grad-CAMs of the queries for every feature view (the paper's Figure 4).

    For each view, the CAM target is the cosine similarity between a query's embedding and the embedding of its
    matched image, both from that view's model and branch (:func:`idkl_lib.viz.similarity_cam`).

    Args:
        models: ``{"idkl": model, "baseline": model}`` (the keys the views name).
        query_images: ``(N, 3, H, W)`` normalised queries.
        matched_images: ``(N, 3, H, W)`` their matched images of the other modality.
        views: The features to explain.
        method: pytorch-grad-cam method name (:data:`idkl_lib.viz.CAM_METHODS`).

    Returns:
        ``({view label: (N, H, W) CAMs}, {view label: (N,) query-match cosine similarities})``.
    """
    cams: dict[str, np.ndarray] = {}
    sims: dict[str, np.ndarray] = {}
    for view in views:
        model = model_for_view(view, models)
        refs = embed_images(model, matched_images, which=view.which)
        own = embed_images(model, query_images, which=view.which)
        cams[view.label] = similarity_cam(model, query_images, refs, which=view.which, method=method)
        sims[view.label] = torch.nn.functional.cosine_similarity(own, refs, dim=1).numpy()
    return cams, sims


def cam_statistics(cams: np.ndarray, box: tuple[float, float, float, float] = (0.2, 0.8, 0.0, 1.0)) -> dict[str, float]:
    """Summary numbers of a stack of CAMs ``(N, H, W)`` in ``[0, 1]``.

    Args:
        cams: The maps.
        box: ``(x0, x1, y0, y1)`` fractions of the image: the central band where re-ID crops put the person.

    Returns:
        ``mean_cam`` (mean activation), ``box_mass`` (share of the CAM mass inside the box; a uniform map gives the
        box's area share ``box_area``) and ``top10_mass`` (share of the mass on the brightest 10% of pixels: how
        concentrated the attention is; 0.1 for a uniform map).
    """
    maps = np.asarray(cams, dtype=np.float64)
    n, h, w = maps.shape
    x0, x1, y0, y1 = box
    mask = np.zeros((h, w), dtype=bool)
    mask[int(round(y0 * h)) : int(round(y1 * h)), int(round(x0 * w)) : int(round(x1 * w))] = True
    total = maps.reshape(n, -1).sum(1)
    safe = np.where(total > 0, total, 1.0)
    box_mass = maps[:, mask].sum(1) / safe
    flat = np.sort(maps.reshape(n, -1), axis=1)[:, ::-1]
    top = flat[:, : max(1, int(round(0.1 * h * w)))].sum(1) / safe
    return {
        "mean_cam": float(maps.mean()),
        "box_mass": float(box_mass.mean()),
        "box_area": float(mask.mean()),
        "top10_mass": float(top.mean()),
    }
