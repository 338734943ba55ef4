"""One training epoch: the step of the IDKL objective (forward, the gathered global batch of a multi-process run,
``compute_losses``, backward, optimiser) and the batched logging and checks of the losses.

:func:`idkl_lib.train.train` builds the objects once per run and calls :func:`train_epoch` per epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.losses import compute_losses
from idkl_lib.train.checks import flush_losses
from idkl_lib.train.distributed import gather_batch, gather_fields

__all__ = ["EpochState", "train_epoch"]


def _batch_augment(cfg: TrainConfig) -> Callable[[Tensor], Tensor] | None:
    """The on-device augmentation of ``--decoded-cache`` batches (None without the cache)."""
    if not cfg.decoded_cache:
        return None
    from idkl_lib.data.gpu_augment import BatchAugment

    return BatchAugment(
        random_erasing=cfg.random_erasing if cfg.augment else 0.0, flip=cfg.augment, pad=10 * cfg.augment
    )


@dataclass
class EpochState:
    """What every training epoch works with: the objects built once per :func:`train` call, the running step count
    and the checkpoint a divergence falls back to."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    weights: LossWeights
    cfg: TrainConfig
    device: torch.device
    amp: torch.dtype | None
    history: list[dict[str, float]]
    on_log: Callable[[dict[str, float]], None] | None
    progress: bool
    rank: int
    world: int
    step: int = 0
    last_good: Path | None = None


def train_epoch(run: EpochState, loader: DataLoader, epoch: int) -> int:
    """One pass over ``loader``; appends logged rows to ``run.history`` and returns the global step count."""
    model, optimizer, scaler, weights, cfg = run.model, run.optimizer, run.scaler, run.weights, run.cfg
    device, amp, step, history, on_log = run.device, run.amp, run.step, run.history, run.on_log
    progress, last_good, rank, world = run.progress, run.last_good, run.rank, run.world
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    try:
        pending: list[tuple[int, dict[str, Tensor]]] = []
        batch_augment = _batch_augment(cfg)
        for images, pids, _cams, modality, _idx in loader:
            images = images.to(device, non_blocking=True)
            if batch_augment is not None:  # --decoded-cache: uint8 batch -> augmented, normalised
                images = batch_augment(images)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            pids = pids.to(device, non_blocking=True)
            modality = modality.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = model(images, modality)
            if world > 1 and cfg.distributed_batch == "global":  # every process: the losses of the global batch
                out, pids, modality = gather_fields(out), gather_batch(pids), gather_batch(modality)
            terms = compute_losses(out, pids, modality, weights, margin=cfg.margin)  # fp32 inside
            loss = torch.stack(list(terms.values())).sum()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            step += 1
            pending.append((step, {"total": loss.detach(), **{k: v.detach() for k, v in terms.items()}}))
            if len(pending) >= cfg.log_every:  # every rank flushes at the same steps (equal batch counts)
                flush_losses(pending, epoch, optimizer, history, on_log, bar, last_good, world, cfg.divergence_factor)
                pending = []
            if bar is not None:
                bar.update(1)
        if pending:  # always before the epoch's checkpoint is written
            flush_losses(pending, epoch, optimizer, history, on_log, bar, last_good, world, cfg.divergence_factor)
    finally:
        if bar is not None:
            bar.close()
    return step
