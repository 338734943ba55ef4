"""The IDKL training loop (nanoGPT-sized, no framework) and its command line.

One call, :func:`train`, builds the dataset, the sampler, the model and the optimiser from a frozen
:class:`~idkl_lib.config.TrainConfig`, trains with the reference recipe (SPEC.md §3: Adam, MultiStepLR stepped per
epoch, optional linear warm-up), checkpoints atomically after every epoch and, with ``resume=True``, continues a
killed run so that the result equals an uninterrupted run (every epoch re-seeds its RNGs from ``(seed, epoch)``, so
an epoch replayed after a kill draws the same batches, augmentations and dropout masks).

Multi-GPU: launch the same entry point with ``torchrun --nproc_per_node N -m idkl_lib.train ...``; each process
trains on its own share of the identity batches (DistributedDataParallel, gradients averaged), rank 0 writes
checkpoints and evaluates.

Command line::

    python -m idkl_lib.train --dataset sysu --data-root /data/SYSU-MM01 --arch resnet50 --pretrained true \\
        --out-dir runs/sysu --epochs 160
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .checkpoint import capture_rng_state, load_checkpoint, load_model_state, save_checkpoint
from .config import LossWeights, TrainConfig
from .data import CrossModalityIdentitySampler, ImageDataset, VIDataset, build_dataset, build_transforms
from .eval import evaluate_dataset
from .eval.features import extract_features
from .losses import compute_losses
from .models import IDKLModel, build_model
from .utils.io import atomic_write_json
from .utils.runtime import resolve_device, seed_everything, seed_worker

CHECKPOINT_NAME = "checkpoint.pth"


class NonFiniteLossError(RuntimeError):
    """Raised when a loss term becomes NaN or infinite; the last good checkpoint is left in place."""

    def __init__(self, step: int, terms: Sequence[str], checkpoint: Path | None) -> None:
        self.step, self.terms, self.checkpoint = step, list(terms), checkpoint
        kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was written yet"
        super().__init__(
            f"loss became non-finite at step {step} in term(s) {', '.join(terms)}; training stopped and {kept}. "
            "Lower the learning rate, enable grad_clip, or switch amp to 'bf16'/'off', then resume."
        )


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (unwrapped from DDP), in eval mode.
        history: One dict per logged step: ``step``, ``epoch``, ``lr``, ``total`` and every weighted loss term.
        metrics: Evaluation results of the final evaluation (``{protocol name: ProtocolResult.as_dict()}``), or {}.
        checkpoint: Path of the final checkpoint.
        images_per_second: Mean training throughput over the epochs run in this call.
        epochs_run: Epochs trained in this call (fewer than ``cfg.epochs`` after a resume).
    """

    model: IDKLModel
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    checkpoint: Path
    images_per_second: float
    epochs_run: int
    eval_history: list[dict[str, Any]] = field(default_factory=list)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier for ``epoch``: linear warm-up over ``warmup_epochs``, then x``gamma`` per milestone."""
    warm = min(1.0, (epoch + 1) / cfg.warmup_epochs) if cfg.warmup_epochs > 0 else 1.0
    return warm * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)


def _amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp in ("auto", "bf16"):
        return torch.bfloat16
    return torch.float16


def _distributed() -> tuple[int, int]:
    """(rank, world_size) of a torchrun launch, initialising the process group on first use."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def load_dataset(cfg: TrainConfig) -> VIDataset:
    """Parse the dataset named by ``cfg`` (RegDB gets its split number ``cfg.regdb_trial``)."""
    kwargs: dict[str, Any] = {"trial": cfg.regdb_trial} if cfg.dataset == "regdb" else {}
    return build_dataset(cfg.dataset, cfg.data_root, **kwargs)


def build_loader(cfg: TrainConfig, dataset: VIDataset, epoch: int, rank: int = 0, world: int = 1) -> DataLoader:
    """The training loader for one epoch: P x K cross-modality batches, augmentation, seeded workers."""
    sampler = CrossModalityIdentitySampler(
        dataset.train, p=cfg.p, k=cfg.k, seed=cfg.seed, epoch=epoch, num_replicas=world, rank=rank
    )
    transform = build_transforms(
        cfg.height, cfg.width, train=cfg.augment, random_erasing=cfg.random_erasing, channel_augment=cfg.channel_augment
    )
    generator = torch.Generator().manual_seed(_epoch_seed(cfg, epoch) + rank)
    return DataLoader(
        ImageDataset(dataset.train, transform),
        batch_size=cfg.p * cfg.k,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def _epoch_seed(cfg: TrainConfig, epoch: int) -> int:
    return cfg.seed * 1_000_003 + epoch


def evaluate_model(
    model: IDKLModel,
    dataset: VIDataset,
    cfg: TrainConfig,
    device: torch.device,
    *,
    progress: bool = False,
    **protocol_options: Any,
) -> dict[str, Any]:
    """Extract query/gallery features and run the dataset's standard protocols; returns ``{name: result dict}``."""
    amp = _amp_dtype(cfg, device)
    common = dict(which="shared", batch_size=cfg.eval_batch_size, device=device, amp_dtype=amp, progress=progress)
    q = extract_features(model, dataset.query, cfg.height, cfg.width, desc="query", **common)  # type: ignore[arg-type]
    g = extract_features(model, dataset.gallery, cfg.height, cfg.width, desc="gallery", **common)  # type: ignore[arg-type]
    results = evaluate_dataset(dataset, q, g, **protocol_options)
    return {name: res.as_dict() for name, res in results.items()}


def train(
    cfg: TrainConfig,
    *,
    dataset: VIDataset | None = None,
    resume: bool | str | Path = False,
    progress: bool = True,
    on_log: Callable[[dict[str, float]], None] | None = None,
) -> TrainResult:
    """Train IDKL as configured by ``cfg`` and return the model, loss history and final metrics.

    Args:
        cfg: Training configuration (validated on construction).
        dataset: An already parsed dataset; parsed from ``cfg.dataset`` / ``cfg.data_root`` when omitted.
        resume: ``True`` continues from ``<out_dir>/checkpoint.pth`` if it exists; a path resumes from that file.
        progress: Show a tqdm bar with the running losses.
        on_log: Called with every logged history row (e.g. to update a live plot in a notebook).
    """
    rank, world = _distributed()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    dataset = dataset if dataset is not None else load_dataset(cfg)
    if cfg.p > 0 and cfg.p % world:
        raise ValueError(f"p={cfg.p} identities per batch must be divisible by the number of processes ({world})")
    local = dataclasses.replace(cfg, p=cfg.p // world)
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME

    model = build_model(cfg.model_config(dataset.num_train_ids)).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg))
    amp = _amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    weights = cfg.loss_weights()

    start_epoch, step, history, eval_history = 0, 0, [], []
    source = ckpt_path if resume is True else (Path(resume) if resume else None)
    if source is not None and source.exists():
        state = load_checkpoint(source)
        load_model_state(model, state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        scaler.load_state_dict(state["scaler_state"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history = list(state.get("extra", {}).get("history", []))
        eval_history = list(state.get("extra", {}).get("eval_history", []))
    elif resume and resume is not True:
        raise FileNotFoundError(f"resume checkpoint {source} does not exist; pass resume=True to use {ckpt_path}")

    ddp_model: nn.Module = model
    if world > 1:
        # ablation presets leave some heads without gradient: DDP must then look for unused parameters
        ddp_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=len(weights.active()) < len(weights.names()),
        )

    images_seen, train_time = 0, 0.0
    last_good = ckpt_path if ckpt_path.exists() else None
    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(_epoch_seed(cfg, epoch) + rank, deterministic=cfg.deterministic)
        loader = build_loader(local, dataset, epoch, rank, world)
        ddp_model.train()
        epoch_start = time.perf_counter()
        step = _train_epoch(
            ddp_model, loader, optimizer, scaler, weights, cfg, device, amp, epoch, step, history, on_log, progress,
            last_good, rank,
        )  # fmt: skip
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_time += time.perf_counter() - epoch_start
        images_seen += len(loader) * loader.batch_size * world  # type: ignore[operator]
        scheduler.step()
        if rank == 0 and cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs:
            metrics = evaluate_model(model, dataset, cfg, device)
            eval_history.append({"epoch": epoch + 1, "metrics": metrics})
        if rank == 0:
            save_checkpoint(
                ckpt_path,
                model_state=model.state_dict(),
                optimizer_state=optimizer.state_dict(),
                scheduler_state=scheduler.state_dict(),
                scaler_state=scaler.state_dict(),
                epoch=epoch + 1,
                step=step,
                rng_state=capture_rng_state(),
                config=cfg.to_dict(),
                extra={"history": history, "eval_history": eval_history, "num_classes": dataset.num_train_ids},
            )
            last_good = ckpt_path
        if world > 1:
            dist.barrier()

    model.eval()
    metrics: dict[str, Any] = {}
    if rank == 0 and cfg.final_eval:
        metrics = evaluate_model(model, dataset, cfg, device)
        atomic_write_json(out_dir / "metrics.json", {"final": metrics, "during_training": eval_history})
    if rank == 0 and not ckpt_path.exists():  # epochs already complete and nothing written in this call
        raise RuntimeError(f"no checkpoint at {ckpt_path} after training; check out_dir")
    ips = images_seen / train_time if train_time > 0 else math.nan
    return TrainResult(model, history, metrics, ckpt_path, ips, cfg.epochs - start_epoch, eval_history)


def _train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    weights: LossWeights,
    cfg: TrainConfig,
    device: torch.device,
    amp: torch.dtype | None,
    epoch: int,
    step: int,
    history: list[dict[str, float]],
    on_log: Callable[[dict[str, float]], None] | None,
    progress: bool,
    last_good: Path | None,
    rank: int,
) -> int:
    """One pass over ``loader``; appends logged rows to ``history`` and returns the global step count."""
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    pending: list[tuple[int, dict[str, Tensor]]] = []
    for images, pids, _cams, modality, _idx in loader:
        images = images.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        pids = pids.to(device, non_blocking=True)
        modality = modality.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(images, modality)
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
        if len(pending) >= cfg.log_every or step % len(loader) == 0:
            _flush(pending, epoch, optimizer, history, on_log, bar, last_good)
            pending = []
        if bar is not None:
            bar.update(1)
    if pending:
        _flush(pending, epoch, optimizer, history, on_log, bar, last_good)
    if bar is not None:
        bar.close()
    return step


def _flush(
    pending: list[tuple[int, dict[str, Tensor]]],
    epoch: int,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, float]],
    on_log: Callable[[dict[str, float]], None] | None,
    bar: Any,
    last_good: Path | None,
) -> None:
    """Move the pending loss tensors to the host in one transfer, check them, and log them."""
    names = list(pending[0][1])
    values = torch.stack([torch.stack([row[n].float() for n in names]) for _, row in pending]).cpu()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad_row = int((~finite).any(1).nonzero()[0])
        bad_terms = [n for n, ok in zip(names, finite[bad_row].tolist(), strict=True) if not ok and n != "total"]
        raise NonFiniteLossError(pending[bad_row][0], bad_terms or ["total"], last_good)
    lr = optimizer.param_groups[0]["lr"]
    for (step, _), row in zip(pending, values.tolist(), strict=True):
        entry = {"step": float(step), "epoch": float(epoch + 1), "lr": lr, **dict(zip(names, row, strict=True))}
        history.append(entry)
        if on_log is not None:
            on_log(entry)
    if bar is not None:
        bar.set_postfix(loss=f"{values[-1, 0].item():.3f}")


# ----------------------------------------------------------------------------------------------- command line


def _parse_bool_or_path(text: str) -> bool | str:
    low = text.lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    return text


def build_arg_parser() -> argparse.ArgumentParser:
    """An argument parser with one ``--option`` per :class:`TrainConfig` field (defaults from the dataclass)."""
    parser = argparse.ArgumentParser(prog="python -m idkl_lib.train", description="Train IDKL on a VI-ReID dataset.")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.name == "pretrained":
            parser.add_argument(flag, type=_parse_bool_or_path, default=default, help="true, false or a .pth path")
        elif f.name == "milestones":
            parser.add_argument(flag, type=int, nargs="+", default=list(default or ()), help="epochs where lr x gamma")
        elif isinstance(default, bool):
            parser.add_argument(flag, type=_parse_bool_or_path, default=default, help="true or false")
        elif isinstance(default, int | float | str) or default is None:
            kind = type(default) if default is not None else str
            parser.add_argument(flag, type=kind, default=default)
    parser.add_argument("--resume", action="store_true", help="continue from <out-dir>/checkpoint.pth if present")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (batch logs)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    args = vars(build_arg_parser().parse_args(argv))
    resume, no_progress = args.pop("resume"), args.pop("no_progress")
    args["milestones"] = tuple(args["milestones"])
    try:
        cfg = TrainConfig(**{k: v for k, v in args.items() if v is not None})
        result = train(cfg, resume=resume, progress=not no_progress)
    except (ValueError, FileNotFoundError, NonFiniteLossError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, res in result.metrics.items():
        mean = res.get("mean", res)
        print(f"{name}: " + "  ".join(f"{k} {v:.2f}" for k, v in mean.items() if isinstance(v, float)))
    print(f"checkpoint: {result.checkpoint}  ({result.images_per_second:.1f} img/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
