"""Checks around the training loop: what :func:`idkl_lib.train.train` verifies before the first step (so a mistake
costs seconds, not an epoch), the divergence rule applied at every log flush, and the changes a resumed run may make
when :attr:`~idkl_lib.config.TrainConfig.resume_changes` allows them."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import TrainConfig
from .data import VIDataset
from .data.validate import check_dataset, check_writable

__all__ = ["DIVERGENCE_WARMUP", "DIVERGENCE_WINDOW", "apply_resume_changes", "divergent_row", "preflight"]

DIVERGENCE_WINDOW = 50
"""Logged losses whose median a new total loss is compared with."""
DIVERGENCE_WARMUP = 10
"""Logged losses needed before the divergence rule applies."""
SYSU_EVAL_TRIALS = 10
"""Trials :func:`idkl_lib.train.evaluate_model` runs on SYSU-MM01 (the protocols' default)."""


def checkpoint_bytes(model: nn.Module) -> int:
    """About the size of a checkpoint of ``model``: its tensors plus Adam's two moments, plus 10% for the rest."""
    size = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return int(1.1 * (size + 2 * params))


def preflight(cfg: TrainConfig, dataset: VIDataset, model: nn.Module) -> VIDataset:
    """The checks before the first training step; returns the dataset to train on (damaged images left out with
    ``cfg.skip_corrupt``).

    * every train/query/gallery image's header, and SYSU-MM01's ``exp/rand_perm_cam.mat`` against the trials the
      evaluation will run (:func:`~idkl_lib.data.validate.check_dataset`);
    * ``out_dir`` can be written and has room for two checkpoints (the new one is written before the old one goes).

    The pretrained weights are read (and checked) when the model is built, also before the first step.

    Raises:
        idkl_lib.data.validate.DatasetCheckError: damaged images or evaluation files that do not fit.
        NotADirectoryError, PermissionError, OSError: the out-dir is a file, read-only or too full.
    """
    evaluates = cfg.final_eval or cfg.eval_every > 0
    trials = SYSU_EVAL_TRIALS if evaluates and dataset.name == "sysu" else None
    checked = check_dataset(dataset, num_trials=trials, skip_corrupt=cfg.skip_corrupt).dataset
    check_writable(cfg.out_dir, 2 * checkpoint_bytes(model))
    return checked


def divergent_row(
    history: Sequence[Mapping[str, float]], totals: Sequence[float], factor: float
) -> tuple[int, float, float] | None:
    """The first of the new ``totals`` (logged after ``history``) that exceeds ``factor`` x the median of the
    :data:`DIVERGENCE_WINDOW` logged totals before it (the median counted as at least 1, so that a loss near zero
    does not trip on noise); ``(index into totals, value, median)``, or None.

    The rule applies once :data:`DIVERGENCE_WARMUP` totals have been logged; ``factor == 0`` turns it off.
    """
    if factor <= 0:
        return None
    past = [float(row["total"]) for row in history[-DIVERGENCE_WINDOW:]]
    for i, total in enumerate(totals):
        if len(past) >= DIVERGENCE_WARMUP:
            median = statistics.median(past[-DIVERGENCE_WINDOW:])
            if total > factor * max(abs(median), 1.0):
                return i, float(total), float(median)
        past.append(float(total))
    return None


def apply_resume_changes(
    cfg: TrainConfig, saved: Mapping[str, Any], optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int
) -> dict[str, Any] | None:
    """Apply the changes ``cfg.resume_changes`` allows against a checkpoint's ``saved`` config, after its optimiser
    and scheduler states were loaded: a new ``lr`` becomes the scheduler's base rate (the schedule's factor of
    ``epoch`` still applies). ``grad_clip`` and ``amp`` are read from ``cfg`` by the loop.

    Returns:
        ``{"epoch": epoch, "changes": {name: [old, new]}}`` for the run's record, or None when nothing changed.
    """
    changes = {
        name: [saved[name], getattr(cfg, name)]
        for name in cfg.allowed_resume_changes()
        if name in saved and saved[name] != getattr(cfg, name)
    }
    if not changes:
        return None
    if "lr" in changes:
        scheduler.base_lrs = [cfg.lr for _ in scheduler.base_lrs]
        for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            group["lr"] = group["initial_lr"] = cfg.lr
            group["lr"] = cfg.lr * factor(epoch)
    return {"epoch": epoch, "changes": changes}


def resume_epochs_problem(source: Path, done: int, cfg: TrainConfig) -> str | None:
    """Why a resume of ``source`` (``done`` epochs trained) cannot reach ``cfg.epochs``, or None."""
    if done <= cfg.epochs:
        return None
    return (
        f"cannot resume from {source}: it has trained {done} epochs, more than the {cfg.epochs} asked for "
        f"(TrainConfig.epochs={cfg.epochs}); ask for epochs >= {done}, or use a new out_dir for a shorter run"
    )
