"""One real batch through IDKL, step by step: what each loss sees and aligns (the teaching section of 02_train).

:func:`sample_batch` draws one P x K cross-modality batch with the training sampler; :func:`walk_batch` runs it
through a model exactly as a training step does (train-mode forward, on a copy so the model's BatchNorm statistics
are untouched, no gradients) and collects, with the loss functions of :mod:`idkl_lib.losses` (nothing re-derived):

* the purifier's gates ``m_IN`` and ``m_F`` (captured with forward hooks on the model's own gating nets);
* the TGSA affinities: per modality and branch, the row-wise softmax of ``D(X)`` (:func:`distance_logits`), which the
  symmetric KL compares between shared and specific (inter) and between visible and infrared (intra);
* the CSA distributions: softmax of the identity logits per branch and modality (CSA1) and of the set-level logits
  (:func:`set_level_logits`, CSA2);
* every weighted loss term (:func:`compute_losses`).

The computation lives in :mod:`idkl_lib.viz.walkthrough` (re-exported here); this module's figure functions turn
a :class:`BatchWalkthrough` into plotly figures in the shared look of :mod:`idkl_lib.viz`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from idkl_lib.config import LossWeights
from idkl_lib.data import Sample
from idkl_lib.data.records import INFRARED
from idkl_lib.viz.gradcam import overlay_cam
from idkl_lib.viz.images import denormalize
from idkl_lib.viz.plots import (
    DASHES,
    MODALITY_COLORS,
    OKABE_ITO,
    heatmap_grid,
    image_grid,
    logit_distributions,
    style_figure,
)
from idkl_lib.viz.theme import TERM_SYMBOLS
from idkl_lib.viz.walkthrough import Batch, BatchWalkthrough, sample_batch, walk_batch

__all__ = [
    "LOSS_FAMILIES",
    "TERM_SYMBOLS",
    "Batch",
    "BatchWalkthrough",
    "batch_images_figure",
    "csa_figure",
    "csa_sample_figure",
    "csa_set_figure",
    "gate_histogram_figure",
    "loss_terms_figure",
    "purifier_mask_figure",
    "sample_batch",
    "set_block_mass",
    "tgsa_figure",
    "walk_batch",
]

LOSS_FAMILIES: dict[str, str] = {
    "id": "identity",
    "id_sp": "identity",
    "tri_sh": "triplet",
    "tri_sp": "triplet",
    "ip_entropy": "purifier",
    "ip_centroid": "purifier",
    "tgsa_inter": "TGSA",
    "tgsa_intra": "TGSA",
    "tgsa_intra_cross": "TGSA",
    "csa1_inter": "CSA",
    "csa1_intra": "CSA",
    "csa2_inter": "CSA",
    "csa2_intra": "CSA",
    "disc": "modality",
    "confuser": "modality",
}
"""Family of every loss term (the colour of its bar in :func:`loss_terms_figure`)."""


def _tag(sample: Sample, pid: int) -> str:
    return f"id {pid} · {'IR' if sample.modality == INFRARED else 'VIS'} · cam {sample.camid}"


def batch_images_figure(batch: Batch, image_size: tuple[int, int] = (128, 64)) -> go.Figure:
    """The batch's images on its P x K grid: one row per identity block, infrared / visible alternating."""
    from idkl_lib.viz.images import add_border

    rgb = denormalize(batch.images)
    border = max(2, image_size[0] // 40)
    rows, captions, labels = [], [], []
    for r in range(batch.p):
        idx = range(r * batch.k, (r + 1) * batch.k)
        rows.append(
            [add_border(_resize(rgb[i], image_size), MODALITY_COLORS[int(batch.modality[i])], border) for i in idx]
        )
        captions.append([_tag(batch.samples[i], int(batch.pids[i])) for i in idx])
        labels.append(f"block {r + 1}")
    return image_grid(
        rows,
        f"One training batch: P={batch.p} identities x K={batch.k} images",
        captions=captions,
        row_labels=labels,
        cell_size=(image_size[0] + 44, max(image_size[1] + 60, 120)),
        subtitle="rows = identity blocks; border = modality (blue visible, orange infrared)",
    )


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))


def _upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    t = torch.as_tensor(maps, dtype=torch.float32).unsqueeze(1)
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False).squeeze(1).numpy()


def purifier_mask_figure(
    walk: BatchWalkthrough, num_images: int = 4, image_size: tuple[int, int] = (128, 64)
) -> go.Figure:
    """For the first images of the batch: the image, then ``m_IN`` and ``m_F`` (channel means, upsampled) over it.

    The colour scale is shared by all maps (min to max of both gates over the shown images), so a brighter map
    means the gate lets more of the feature through there.
    """
    n = min(num_images, walk.batch.images.shape[0])
    rgb = np.stack([_resize(im, image_size) for im in denormalize(walk.batch.images[:n])]).astype(np.float32) / 255
    gate_in, gate_raw = _upsample(walk.gate_in[:n], image_size), _upsample(walk.gate_raw[:n], image_size)
    lo, hi = min(gate_in.min(), gate_raw.min()), max(gate_in.max(), gate_raw.max())
    scale = max(hi - lo, 1e-6)
    rows, labels = [], []
    for i in range(n):
        rows.append([
            (rgb[i] * 255).astype(np.uint8),
            overlay_cam(rgb[i], (gate_in[i] - lo) / scale, image_weight=0.45),
            overlay_cam(rgb[i], (gate_raw[i] - lo) / scale, image_weight=0.45),
        ])  # fmt: skip
        labels.append(_tag(walk.batch.samples[i], int(walk.batch.pids[i])))
    return image_grid(
        rows,
        "Information purifier gates on one batch",
        row_labels=labels,
        col_labels=["image", "m_IN = g(IN(F))", "m_F = g(F)"],
        cell_size=(image_size[0] + 40, image_size[1] + 70),
        subtitle=f"channel mean of each gate, viridis from {lo:.3f} (dark) to {hi:.3f} (bright), shared scale",
    )


def gate_histogram_figure(walk: BatchWalkthrough) -> go.Figure:
    """Distribution of the per-channel gate values (spatial means), split by gate and modality."""
    fig = go.Figure()
    modality = walk.batch.modality.numpy()
    for g, gate in enumerate(("m_IN", "m_F")):
        for mod, name in ((0, "visible"), (1, "infrared")):
            values = walk.gate_values[gate][modality == mod].ravel()
            fig.add_trace(
                go.Histogram(
                    x=values,
                    name=f"{gate} · {name}",
                    opacity=0.55,
                    nbinsx=40,
                    histnorm="probability density",
                    marker={"color": OKABE_ITO[2 * g + mod]},
                )
            )
    fig.update_xaxes(title_text="gate value (per channel, spatial mean)")
    fig.update_yaxes(title_text="density")
    return style_figure(fig, "Purifier gate values by modality", barmode="overlay", legend_title_text="gate · modality")


def _block_ticks(walk: BatchWalkthrough, modality: int) -> list[str]:
    sel = walk.batch.modality.numpy() == modality
    pids = walk.batch.pids.numpy()[sel]
    counts: dict[int, int] = {}
    ticks = []
    for pid in pids:
        counts[int(pid)] = counts.get(int(pid), 0) + 1
        ticks.append(f"id {pid}.{counts[int(pid)]}")
    return ticks


def _kl_subtitle(kl: Mapping[str, float], prefix: str = "") -> str:
    """``"SKL inter V 0.93 · inter I 0.42 · intra 0.67"`` from the walkthrough's KL dicts."""
    short = {"inter · visible": "inter V", "inter · infrared": "inter I", "intra · shared": "intra"}
    parts = []
    for key, value in kl.items():
        if not key.startswith(prefix):
            continue
        base = key.removeprefix(prefix).split(" (")[0]
        parts.append(f"{short.get(base, base)} {value:.3f}")
    return "symmetric KL: " + " · ".join(parts)


def tgsa_figure(walk: BatchWalkthrough) -> go.Figure:
    """The four TGSA affinity matrices (rows: shared / specific, columns: visible / infrared) on one colour scale.

    Row ``i`` is ``softmax_j(D(X)_ij)`` over the other samples ``j`` of the same modality (the colour). TGSA's inter
    terms align each column's two panels (shared ↔ specific), its intra terms the two shared panels (visible ↔
    infrared); the symmetric KL of each pair is in the subtitle.
    """
    order = ("shared · visible", "shared · infrared", "specific · visible", "specific · infrared")
    title = "TGSA: softmax over each row's distances to the other samples"
    fig = heatmap_grid(
        {name: walk.affinity[name] for name in order}, title, ncols=2, x_label="other sample j", y_label="sample i"
    )
    ticks = _block_ticks(walk, 0)
    for i in range(4):
        axis = "" if i == 0 else str(i + 1)
        fig.layout[f"xaxis{axis}"].update(
            tickvals=list(range(len(ticks))), ticktext=ticks, tickangle=-60, tickfont={"size": 9}
        )
        fig.layout[f"yaxis{axis}"].update(tickvals=list(range(len(ticks))), ticktext=ticks, tickfont={"size": 9})
    fig.update_layout(title={"text": f"{title}<br><sup>{_kl_subtitle(walk.affinity_kl)}</sup>"})
    return fig


def csa_figure(walk: BatchWalkthrough) -> go.Figure:
    """CSA1: the identity-probability profiles (sorted, averaged over samples) of both branches and modalities."""
    title = "CSA1: how peaked the identity predictions are"
    fig = logit_distributions(walk.class_probs, title, kind="sorted")
    fig.update_layout(title={"text": f"{title}<br><sup>{_kl_subtitle(walk.logit_kl, 'CSA1 ')}</sup>"})
    return fig


def csa_sample_figure(walk: BatchWalkthrough, index: int = 0) -> go.Figure:
    """CSA1 for one visible sample and its row-aligned infrared partner: probability over the classes of each
    branch (the distributions the symmetric KL pulls together); the true class is marked."""
    fig = go.Figure()
    true_pid = int(walk.batch.pids[walk.batch.modality == 0][index])
    for i, name in enumerate(walk.class_probs):
        probs = walk.class_probs[name][index]
        fig.add_trace(
            go.Scatter(
                x=np.arange(len(probs)),
                y=probs,
                mode="lines",
                name=name,
                line={"color": OKABE_ITO[i], "dash": DASHES[i % len(DASHES)]},
            )
        )
    fig.add_vline(x=true_pid, line={"color": "#555555", "dash": "dot"}, annotation_text=f"true id {true_pid}")
    fig.update_xaxes(title_text="identity class")
    fig.update_yaxes(title_text="probability")
    return style_figure(
        fig,
        f"CSA1 on one visible-infrared pair (identity {true_pid})",
        legend_title_text="branch · modality",
    )


def set_block_mass(walk: BatchWalkthrough) -> dict[str, np.ndarray]:
    """CSA2's set-level probabilities reduced to the batch: ``(P, P)`` per branch · modality, entry ``(b, c)`` = mean
    over the K/2 set rows of the probability that identity block ``b`` puts on the class of the batch's identity
    ``c`` (the diagonal is the true identity; the rest of the mass is on classes outside the batch)."""
    p = walk.batch.p
    m = walk.batch.k // 2
    visible_pids = walk.batch.pids[walk.batch.modality == 0].numpy()
    classes = visible_pids[::m]  # the identity of each block, in batch order
    out = {}
    for name, probs in walk.set_probs.items():
        blocks = probs.reshape(m, p, -1)  # (row j, identity block, class)
        out[name] = blocks[:, :, classes].mean(axis=0)
    return out


def csa_set_figure(walk: BatchWalkthrough) -> go.Figure:
    """CSA2: for each identity block, the set-level probability mass on the classes of the batch's identities."""
    names = ("shared · visible", "shared · infrared", "specific · visible", "specific · infrared")
    mass = set_block_mass(walk)
    title = "CSA2: set-level mass of each identity block on the batch identities' classes"
    fig = heatmap_grid(
        {name: mass[name] for name in names},
        title,
        ncols=2,
        x_label="class of batch identity",
        y_label="identity block",
    )
    ticks = [f"id {pid}" for pid in walk.batch.pids[walk.batch.modality == 0].numpy()[:: walk.batch.k // 2]]
    for i in range(4):
        axis = "" if i == 0 else str(i + 1)
        fig.layout[f"xaxis{axis}"].update(tickvals=list(range(len(ticks))), ticktext=ticks, tickangle=-60)
        fig.layout[f"yaxis{axis}"].update(tickvals=list(range(len(ticks))), ticktext=ticks)
    fig.update_layout(title={"text": f"{title}<br><sup>{_kl_subtitle(walk.logit_kl, 'CSA2 ')}</sup>"})
    return fig


def loss_terms_figure(
    losses: Mapping[str, Mapping[str, float]], title: str = "Weighted loss terms on one batch"
) -> go.Figure:
    """Horizontal bars of the weighted loss terms (log scale), one group per term and one bar per model state (e.g.
    untrained / trained), in :meth:`LossWeights.names` order; the hover text names each term's family."""
    fig = go.Figure()
    # bottom to top, so that the first term of LossWeights.names() is drawn at the top
    terms = [name for name in reversed(LossWeights.names()) if any(name in row for row in losses.values())]
    labels = [f"{t} ({LOSS_FAMILIES[t]} {TERM_SYMBOLS[t]})" for t in terms]
    for i, (state, row) in enumerate(losses.items()):
        fig.add_trace(
            go.Bar(
                y=labels,
                x=[row.get(t, 0.0) for t in terms],
                orientation="h",
                name=state,
                marker={"color": OKABE_ITO[i % len(OKABE_ITO)]},
                hovertemplate="%{y}: %{x:.4g}<extra>" + state + "</extra>",
            )
        )
    fig.update_yaxes(title_text="loss term (family and symbol)")
    fig.update_xaxes(title_text="weighted value (log scale; a zero value has no bar)", type="log")
    return style_figure(
        fig,
        title,
        barmode="group",
        legend_title_text="model",
        width=900,
        height=180 + 22 * len(terms) * max(1, len(losses)),
        margin={"l": 230, "r": 40, "t": 80, "b": 60},
    )
