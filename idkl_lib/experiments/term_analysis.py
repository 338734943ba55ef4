"""What each IDKL loss term does to a trained network: its size, its share of the gradient and the feature scale.

The ablation study (docs/results.md) asks why a term helps or not. Three numbers per term answer part of it, on
training batches drawn exactly as training draws them:

* ``value``: the weighted term (what the loss curves show);
* ``share``: the norm of the term's gradient with respect to all trainable weights, divided by the norm of the
  gradient of the ID + triplet core (``identity`` and ``triplet`` groups of :class:`~idkl_lib.config.LossWeights`),
  i.e. how hard the term pulls compared with the baseline's own objective;
* ``cosine``: the cosine between the term's gradient and the core's (> 0: it pushes the same way, < 0: against it).

:func:`feature_scale` adds what TGSA sees: the norms of the pre-BN features and their pairwise distances, which
TGSA feeds to a softmax as raw logits (docs/method.md#6-reference-behaviours-kept-on-purpose), and how peaked that
softmax is (its entropy as a fraction of the uniform distribution's).

Command line (one row per sweep cell, written to ``<sweep>/term_analysis.json``)::

    python -m idkl_lib.experiments.term_analysis --sweep-dir reports/ablation-demo --weights full@small_batch
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from idkl_lib.config import LossWeights
from idkl_lib.losses import compute_losses
from idkl_lib.losses.alignment import distance_logits
from idkl_lib.runs import (
    TERM_ANALYSIS_NAME,
    TRAIN_STEP,
    checkpoint_path,
    is_sweep,
    optional_checkpoint,
    read_params,
    sweep_cells,
)
from idkl_lib.utils.errors import CommandParser, run_command
from idkl_lib.utils.io import atomic_write_text

CORE_GROUPS = ("core",)
"""The baseline's objective: identity and triplet losses on both streams."""


@dataclass(frozen=True)
class TermGradient:
    """One loss term on one batch: weighted value, gradient norm, norm relative to the core's, cosine with it."""

    name: str
    value: float
    grad_norm: float
    share: float
    cosine: float


def _flat_grad(loss: Tensor, params: Sequence[nn.Parameter]) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params, strict=True)]
    )


def term_gradients(terms: dict[str, Tensor], params: Sequence[nn.Parameter]) -> list[TermGradient]:
    """Gradient norm, share of the core's and cosine with the core's for each weighted term of one forward pass.

    Args:
        terms: ``{name: weighted scalar term}`` as :func:`~idkl_lib.losses.compute_losses` returns (one graph).
        params: The weights the gradients are taken with respect to.

    Returns:
        One row per term, then ``core`` (the sum of the ID + triplet terms) and ``total`` (the sum of all terms).

    Raises:
        ValueError: ``terms`` holds no identity or triplet term (the share would have no reference).
    """
    core_names = {n for g in CORE_GROUPS for n in LossWeights.GROUPS[g]}
    core_terms = [t for n, t in terms.items() if n in core_names]
    if not core_terms:
        raise ValueError(
            f"term_gradients needs at least one identity or triplet term as the reference, got {sorted(terms)}"
        )
    grads = {n: _flat_grad(t, params) for n, t in terms.items()}
    grads["core"] = torch.stack([grads[n] for n in terms if n in core_names]).sum(0)
    grads["total"] = torch.stack([grads[n] for n in terms]).sum(0)
    values = {n: float(t.detach()) for n, t in terms.items()}
    values["core"] = sum(values[n] for n in terms if n in core_names)
    values["total"] = sum(float(t.detach()) for t in terms.values())
    core = grads["core"]
    core_norm = float(core.norm())
    rows = []
    for name, g in grads.items():
        norm = float(g.norm())
        cosine = float(torch.dot(g, core) / (norm * core_norm)) if norm > 0 and core_norm > 0 else 0.0
        rows.append(TermGradient(name, values[name], norm, norm / core_norm if core_norm > 0 else math.inf, cosine))
    return rows


def feature_scale(feat_sh: Tensor, feat_sp: Tensor) -> dict[str, float]:
    """The scale of the pre-BN features that TGSA turns into logits.

    Returns:
        ``norm_sh`` / ``norm_sp``: mean L2 norm of a feature; ``distance_sh``: mean pairwise Euclidean distance
        between the shared features of the batch (TGSA's logits); ``tgsa_entropy``: mean entropy of the softmax over
        each row of those distances, divided by the entropy of a uniform row (1 = flat, 0 = one-hot).
    """
    feat_sh, feat_sp = feat_sh.detach().float(), feat_sp.detach().float()
    logits = distance_logits(feat_sh)
    prob = logits.softmax(dim=1)
    entropy = -(prob * prob.clamp_min(1e-30).log()).sum(dim=1)
    return {
        "norm_sh": float(feat_sh.norm(dim=1).mean()),
        "norm_sp": float(feat_sp.norm(dim=1).mean()),
        "distance_sh": float(logits.mean()),
        "tgsa_entropy": float((entropy / math.log(logits.size(1))).mean()),
    }


def analyse_model(
    model: nn.Module, batches: Sequence[tuple[Tensor, Tensor, Tensor]], weights: LossWeights, *, margin: float
) -> dict[str, Any]:
    """Average :func:`term_gradients` and :func:`feature_scale` over training batches ``(images, pids, modality)``.

    The model runs in training mode (BatchNorm on batch statistics, as in training); its weights are not changed.
    """
    was_training = model.training
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    per_term: dict[str, list[TermGradient]] = {}
    scales: list[dict[str, float]] = []
    try:
        for images, pids, modality in batches:
            out = model(images, modality)
            terms = compute_losses(out, pids, modality, weights, margin=margin)
            for row in term_gradients(terms, params):
                per_term.setdefault(row.name, []).append(row)
            scales.append(feature_scale(out.feat_sh, out.feat_sp))
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    n = len(scales)
    if n == 0:
        raise ValueError("analyse_model needs at least one batch")
    mean_rows = {
        name: {k: sum(getattr(r, k) for r in rows) / n for k in ("value", "grad_norm", "share", "cosine")}
        for name, rows in per_term.items()
    }
    return {"batches": n, "terms": mean_rows, "features": {k: sum(s[k] for s in scales) / n for k in scales[0]}}


def analyse_checkpoint(
    checkpoint: str | Path, weights: LossWeights | str, *, batches: int = 4, untrained: bool = False
) -> dict[str, Any]:
    """:func:`analyse_model` on a checkpoint's network (or, with ``untrained``, the same network at initialisation)
    with ``batches`` training batches of its own recipe (epoch 0's sampler and augmentation, the run's seed).

    ``weights`` (a :class:`LossWeights` or a preset name such as ``"full@small_batch"``) chooses the terms
    measured; ``active`` in the result lists the terms the checkpoint was trained with.
    """
    from idkl_lib.checkpoint import load_trained_model, untrained_model
    from idkl_lib.train.loop import build_loader, load_dataset

    model, cfg, state = load_trained_model(checkpoint)
    if untrained:
        model = untrained_model(cfg, int(model.classifier_sh.weight.shape[0]))
    if isinstance(weights, str):
        weights = LossWeights.preset(weights)
    dataset = load_dataset(cfg)
    loader = build_loader(cfg, dataset, epoch=0)
    drawn = []
    for images, pids, _cams, modality, _idx in loader:
        drawn.append((images, pids, modality))
        if len(drawn) == batches:
            break
    result = analyse_model(model, drawn, weights, margin=cfg.margin)
    trained_with = cfg.loss_weights()
    result["active"] = [n for n in LossWeights.names() if getattr(trained_with, n) > 0]
    result["checkpoint"] = str(checkpoint)
    result["epoch"] = 0 if untrained else int(state.get("epoch", 0))
    return result


def analyse_sweep(
    sweep_dir: str | Path, weights: str, *, batches: int = 4, step: str = TRAIN_STEP, at_start: bool = False
) -> list[dict]:
    """:func:`analyse_checkpoint` for every cell of a sweep folder that has ``<cell>/<step>/checkpoint.pth`` (with
    ``at_start``, also for its network at initialisation, under ``"start"``)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"--sweep-dir {sweep_dir} does not exist; give a sweep folder")
    folders = (
        sweep_cells(sweep_dir, state=None) if is_sweep(sweep_dir) else [p for p in sweep_dir.iterdir() if p.is_dir()]
    )
    cells = sorted(cell for cell in folders if optional_checkpoint(cell, step=step))
    if not cells:
        raise FileNotFoundError(
            f"no cell of {sweep_dir} has a checkpoint of step {step}: give a sweep folder whose cells finished training"
        )
    rows = []
    for cell in cells:
        params = read_params(cell) or {}
        result = analyse_checkpoint(checkpoint_path(cell, step=step), weights, batches=batches)
        if at_start:
            result["start"] = analyse_checkpoint(
                checkpoint_path(cell, step=step), weights, batches=batches, untrained=True
            )
        rows.append({"cell": cell.name, "params": params, **result})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m idkl_lib.experiments.term_analysis``: exit 0, or 2 for bad input (one line; ``--debug``)."""
    parser = CommandParser(prog="python -m idkl_lib.experiments.term_analysis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep-dir", required=True, help="sweep folder (cells that finished training)")
    parser.add_argument("--weights", default="full@small_batch", help="loss preset whose terms are measured")
    parser.add_argument("--batches", type=int, default=4, help="training batches averaged per cell")
    parser.add_argument("--at-start", action="store_true", help="also measure each cell's network at initialisation")
    return run_command(parser, _analysis_command, argv)


def _analysis_command(args: argparse.Namespace) -> int:
    if args.batches < 1:
        raise ValueError(f"--batches {args.batches}: give at least 1")
    LossWeights.preset(args.weights)  # an unknown preset fails before any work
    rows = analyse_sweep(args.sweep_dir, args.weights, batches=args.batches, at_start=args.at_start)
    out = Path(args.sweep_dir) / TERM_ANALYSIS_NAME
    atomic_write_text(out, json.dumps({"weights": args.weights, "cells": rows}, indent=1))
    for row in rows:
        t, f = row["terms"], row["features"]
        shares = ", ".join(f"{n} {v['share']:.2f}" for n, v in t.items() if n not in ("core", "total"))
        print(
            f"{row['cell']}: |f_sh| {f['norm_sh']:.2f}, d_sh {f['distance_sh']:.2f}, "
            f"TGSA entropy {f['tgsa_entropy']:.3f}; share: {shares}"
        )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
