"""The IDKL training loop (nanoGPT-sized, no framework) and its command line.

One call, :func:`train`, builds the dataset, the sampler, the model and the optimiser from a frozen
:class:`~idkl_lib.config.TrainConfig`, trains with the reference recipe
(docs/method.md#44-optimiser-schedule-and-precision: Adam, MultiStepLR stepped per epoch, optional linear warm-up),
checkpoints atomically after every epoch and, with ``resume=True``, continues a killed run so that the result equals
an uninterrupted run (every epoch re-seeds its RNGs from ``(seed, epoch)``, so an epoch replayed after a kill draws
the same batches, augmentations and dropout masks; with ``deterministic=True`` the resumed weights are bit-identical
to an uninterrupted run's, which ``tests/test_train.py`` checks, including after a SIGKILL in the middle of an epoch).

Guarantees:

* The checkpoint is only ever replaced by a complete file (temporary file + rename); temporaries left by a process
  killed while saving are removed by the next run in that folder.
* Loss values are checked for NaN/inf and for divergence (a total loss above ``divergence_factor`` x its running
  median) at every log flush (every ``log_every`` steps and at the end of every epoch), and the weights at the end of
  every epoch, before the epoch's checkpoint is written: a diverged run stops with :class:`NonFiniteLossError` (or
  its :class:`DivergedLossError`) and the checkpoint on disk stays the last good one.
* A resumed run must use the configuration stored in the checkpoint (only
  :attr:`~idkl_lib.config.TrainConfig.RESUMABLE_CHANGES`, such as ``epochs``, may differ, and ``lr``, ``grad_clip``,
  ``amp`` when ``resume_changes`` names them: recorded in the checkpoint's ``extra["resume_changes"]``) and ask for
  at least the epochs already done; otherwise ``ValueError``.
* The out-dir is checked, locked and claimed (``run.json``) before the first step; one holding another run's results
  is refused without ``resume`` or ``overwrite`` (:mod:`idkl_lib.runs.guard`). The dataset's images and evaluation
  files, the free space and the pretrained weights are checked before the first step too
  (:func:`idkl_lib.train.checks.preflight`).
* Evaluations during training (``eval_every``) are reported only; the final checkpoint is the last epoch's.

Multi-GPU: launch the same entry point with ``torchrun --nproc_per_node N -m idkl_lib.train ...``. The global batch
stays the recipe's P x K: each process forwards P/N whole identity blocks, the outputs are gathered (with autograd)
so that every process computes the losses of the global batch, BatchNorm uses global statistics, and
DistributedDataParallel's averaged gradients are those of the one-process objective (:mod:`idkl_lib.train.distributed`;
``tests/test_train_ddp.py`` checks losses, gradients and an optimiser step against one process). Rank 0 writes
checkpoints and evaluates.

Command line::

    python -m idkl_lib.train --dataset regdb --data-root /data/RegDB --out-dir runs/regdb

(the dataset's recipe, docs/method.md#41-recipe-per-dataset; any option given overrides it).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from idkl_lib.checkpoint import capture_rng_state, load_checkpoint, load_model_state, save_checkpoint
from idkl_lib.config import TrainConfig
from idkl_lib.config.recipe import recipe_line
from idkl_lib.data import CrossModalityIdentitySampler, ImageDataset, VIDataset, build_dataset, build_transforms
from idkl_lib.eval import evaluate_dataset
from idkl_lib.eval.features import extract_features
from idkl_lib.models import IDKLModel, build_model
from idkl_lib.models.complexity import model_complexity
from idkl_lib.runs.guard import guard_run_folder
from idkl_lib.runs.layout import CHECKPOINT_NAME, METRICS_NAME
from idkl_lib.train.checks import (
    DivergedLossError,  # noqa: F401  (re-exported: the training errors are imported from here)
    NonFiniteLossError,
    apply_resume_changes,
    non_finite_tensors,
    preflight,
    reduce_scalar,
    resume_epochs_problem,
)
from idkl_lib.train.distributed import convert_batchnorm, freeze_unused_parameters, init_distributed
from idkl_lib.train.epoch import EpochState, train_epoch
from idkl_lib.train.tensorboard import TrainingBoard
from idkl_lib.utils.io import atomic_write_json
from idkl_lib.utils.runtime import resolve_device, seed_everything, seed_worker


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (unwrapped from DDP), in eval mode.
        history: One dict per training step (also the steps before a resume): ``step``, ``epoch`` (1-based),
            ``lr``, ``total`` and every weighted loss term; on rank 0 of a distributed run, rank 0's losses.
        metrics: Evaluation results of the final evaluation (``{protocol name: ProtocolResult.as_dict()}``), or {}
            (``final_eval=False``, or a rank other than 0).
        checkpoint: Path of the final checkpoint.
        images_per_second: Mean training throughput over the epochs run in this call (NaN if none ran).
        epochs_run: Epochs trained in this call (fewer than ``cfg.epochs`` after a resume).
        eval_history: The ``eval_every`` evaluations, ``[{"epoch": e, "metrics": {...}}, ...]`` (reported only,
            never used to pick a checkpoint).
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


def _remove_stale_temporaries(out_dir: Path) -> None:
    """Delete temporaries of :func:`~idkl_lib.utils.io.atomic_write` left by a process killed while saving."""
    for name in (CHECKPOINT_NAME, METRICS_NAME):
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def load_dataset(cfg: TrainConfig) -> VIDataset:
    """Parse the dataset named by ``cfg`` (RegDB gets its split number ``cfg.regdb_trial``)."""
    return build_dataset(cfg.dataset, cfg.data_root, trial=cfg.regdb_trial)


def build_loader(cfg: TrainConfig, dataset: VIDataset, epoch: int, rank: int = 0, world: int = 1) -> DataLoader:
    """The training loader for one epoch of process ``rank``: P x K cross-modality batches (this process's identity
    blocks of each global batch, or whole batches with ``distributed_batch="per_process"``), augmentation, seeded
    workers."""
    shard = "identity_blocks" if cfg.distributed_batch == "global" else "batches"
    sampler = CrossModalityIdentitySampler(
        dataset.train,
        p=cfg.p,
        k=cfg.k,
        seed=cfg.seed,
        epoch=epoch,
        num_replicas=world,
        rank=rank,
        shard=shard,
        identity_choice=cfg.identity_choice,  # type: ignore[arg-type]
    )
    transform = build_transforms(
        cfg.height, cfg.width, train=cfg.augment, random_erasing=cfg.random_erasing, channel_augment=cfg.channel_augment
    )
    generator = torch.Generator().manual_seed(_epoch_seed(cfg, epoch, rank))
    images: Any = ImageDataset(dataset.train, transform)
    if cfg.decoded_cache:  # uint8 images from the cache; train_epoch augments the batch on the device
        from idkl_lib.data.cache import CachedImageDataset, DecodedImageCache

        cache = DecodedImageCache.build(dataset.train, Path(cfg.out_dir) / "decoded_cache", cfg.height, cfg.width)
        images = CachedImageDataset(dataset.train, cache)
    return DataLoader(
        images,
        batch_size=sampler.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=cfg.num_workers,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
    )


def _epoch_seed(cfg: TrainConfig, epoch: int, rank: int = 0) -> int:
    """The seed of ``epoch`` on process ``rank``: a 32-bit hash of ``(seed, epoch, rank)`` (valid for every seed)."""
    return int(np.random.SeedSequence([cfg.seed, epoch, rank]).generate_state(1)[0])


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
    print_recipe: bool = True,
) -> TrainResult:
    """Train IDKL as configured by ``cfg`` and return the model, loss history and final metrics.

    After every epoch ``<out_dir>/checkpoint.pth`` is replaced atomically (model, optimiser, scheduler, scaler,
    epoch, step, config, loss history). With ``final_eval`` the final model is evaluated with the dataset's standard
    protocols and ``<out_dir>/metrics.json`` is written: ``{"final": {protocol: result}, "during_training":
    [{"epoch": e, "metrics": {...}}, ...]}``; the ``eval_every`` evaluations are for learning curves only and
    never select a checkpoint (no model selection on test data). Rank 0 also writes every logged loss term, the
    learning rate, images/s and the evaluations to ``<out_dir>/tensorboard/`` (:mod:`idkl_lib.train.tensorboard`; a
    log that cannot be written only warns).

    Args:
        cfg: Training configuration (validated on construction).
        dataset: An already parsed dataset; parsed from ``cfg.dataset`` / ``cfg.data_root`` when omitted.
        resume: ``True`` continues from ``<out_dir>/checkpoint.pth`` if it exists (else starts afresh); a path
            resumes from that file. Without resume an ``out_dir`` holding a run's results is refused
            (:class:`~idkl_lib.runs.guard.RunFolderError`) unless ``cfg.overwrite``.
        progress: Show a tqdm bar with the running losses.
        on_log: Called with every logged history row (e.g. to update a live plot in a notebook).
        print_recipe: Print the recipe line (:func:`~idkl_lib.config.recipe.recipe_line`) first; notebook 02
            prints it with its configuration instead.

    Before the first step the dataset's images and evaluation files, the out-dir and the pretrained weights are
    checked (:func:`idkl_lib.train.checks.preflight`); the out-dir is locked and claimed (``run.json``) while the
    run writes it (:func:`idkl_lib.runs.guard.guard_run_folder`).

    Raises:
        NonFiniteLossError: A loss term or a weight became NaN/inf, or the loss diverged (:class:`DivergedLossError`);
            the last good checkpoint is kept.
        idkl_lib.runs.guard.RunFolderError: ``out_dir`` holds another run's results.
        idkl_lib.utils.lock.FolderLockTimeout: another process trains into ``out_dir``.
        ValueError: The resumed checkpoint was trained with another configuration (the message lists the fields)
            or for more epochs than asked, ``p`` is not divisible by the number of processes, or a pre-check failed
            (``DatasetCheckError``, a pretrained file that is not a state dict).
        FileNotFoundError: ``resume`` names a missing file, or the dataset is missing.
    """
    rank, world = init_distributed()
    if rank == 0 and print_recipe:
        print(recipe_line(cfg), flush=True)  # the dataset's recipe and what differs from it
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    seed_everything(cfg.seed, deterministic=cfg.deterministic)
    dataset = dataset if dataset is not None else load_dataset(cfg)
    if world > 1 and cfg.distributed_batch == "global" and cfg.p % world:
        works = ", ".join(str(n) for n in range(1, cfg.p + 1) if cfg.p % n == 0)
        raise ValueError(
            f"TrainConfig.p={cfg.p}: its {cfg.p} identity blocks cannot be split over {world} processes; "
            f"use --nproc_per_node in ({works}) or a p divisible by {world} (distributed_batch='per_process' gives "
            "each process its own batch instead, a deviation from the recipe)"
        )
    if world > 1 and rank == 0 and (cfg.distributed_batch != "global" or not cfg.sync_batchnorm):
        warnings.warn(
            f"distributed_batch={cfg.distributed_batch!r}, sync_batchnorm={cfg.sync_batchnorm}: the {world} processes "
            "do not compute the one-process objective (docs/method.md#45-multi-gpu-training)",
            RuntimeWarning,
            stacklevel=2,
        )
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME

    model = build_model(cfg.model_config(dataset.num_train_ids)).to(device)
    dataset = preflight(cfg, dataset, model)
    continues = resume is True or (
        not isinstance(resume, bool) and bool(resume) and Path(resume).expanduser().resolve() == ckpt_path.resolve()
    )
    guard = (
        guard_run_folder(
            out_dir,
            "train",
            cfg.to_dict(),
            resume=continues,
            overwrite=cfg.overwrite,
            ignore=TrainConfig.RESUMABLE_CHANGES,
        )
        if rank == 0
        else contextlib.nullcontext()
    )
    with guard:
        return _train_in_folder(cfg, dataset, model, resume, progress, on_log, device, rank, world)


def _train_in_folder(
    cfg: TrainConfig,
    dataset: VIDataset,
    model: IDKLModel,
    resume: bool | str | Path,
    progress: bool,
    on_log: Callable[[dict[str, float]], None] | None,
    device: torch.device,
    rank: int,
    world: int,
) -> TrainResult:
    """The body of :func:`train` once the out-dir is checked, locked and claimed."""
    out_dir = Path(cfg.out_dir)
    ckpt_path = out_dir / CHECKPOINT_NAME
    complexity = model_complexity(model, cfg.height, cfg.width)  # docs/method.md#27-compute-cost
    if rank == 0:
        print(complexity.line(), flush=True)
    weights = cfg.loss_weights()
    if world > 1:  # an ablation preset's switched-off heads: no gradient here, none to wait for in DDP
        freeze_unused_parameters(model, cfg, weights, device)
    if world > 1 and cfg.sync_batchnorm:
        model = convert_batchnorm(model, device)  # type: ignore[assignment]
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, cfg))
    amp = _amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    start_epoch, step, history, eval_history, changes = 0, 0, [], [], []
    source = ckpt_path if resume is True else (Path(resume) if resume else None)
    last_good: Path | None = None  # the checkpoint a divergence falls back to
    if source is not None and source.exists():
        state = load_checkpoint(source)
        changed = cfg.resume_mismatches(state["config"])
        if changed:
            raise ValueError(
                f"cannot resume from {source}: it was trained with another configuration ({'; '.join(changed)}). "
                f"Only {', '.join(TrainConfig.RESUMABLE_CHANGES)} may change on resume, and lr, grad_clip, amp when "
                "TrainConfig.resume_changes names them; use the checkpoint's values, or a new out_dir for a new run"
            )
        problem = resume_epochs_problem(source, int(state["epoch"]), cfg)
        if problem:
            raise ValueError(problem)
        load_model_state(model, state["model_state"])
        optimizer.load_state_dict(state["optimizer_state"])
        scheduler.load_state_dict(state["scheduler_state"])
        if state["config"].get("amp", cfg.amp) == cfg.amp:  # another precision starts with a fresh scaler
            scaler.load_state_dict(state["scaler_state"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        history = list(state.get("extra", {}).get("history", []))
        eval_history = list(state.get("extra", {}).get("eval_history", []))
        changes = list(state.get("extra", {}).get("resume_changes", []))
        change = apply_resume_changes(cfg, state["config"], optimizer, scheduler, start_epoch)
        if change is not None:
            changes.append(change)
            if rank == 0:
                warnings.warn(f"resuming {source} with {change['changes']} at epoch {start_epoch}", stacklevel=2)
        last_good = source
    elif resume and resume is not True:
        raise FileNotFoundError(f"resume checkpoint {source} does not exist; pass resume=True to use {ckpt_path}")

    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    if rank == 0:
        _remove_stale_temporaries(out_dir)
    images_seen, train_time = 0, 0.0
    board = TrainingBoard.open(out_dir, rank=rank, start_step=step)  # <out_dir>/tensorboard/, never stops training
    on_log = board.wrap(on_log)
    run = EpochState(ddp_model, optimizer, scaler, weights, cfg, device, amp, history, on_log, progress, rank, world)
    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(_epoch_seed(cfg, epoch, rank), deterministic=cfg.deterministic)
        loader = build_loader(cfg, dataset, epoch, rank, world)
        ddp_model.train()
        epoch_start = time.perf_counter()
        run.step, run.last_good = step, last_good
        step = train_epoch(run, loader, epoch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_time = time.perf_counter() - epoch_start
        train_time += epoch_time
        images_seen += len(loader) * loader.batch_size * world  # type: ignore[operator]
        board.log_epoch(step, len(loader) * loader.batch_size * world, epoch_time)  # type: ignore[operator]
        # a NaN/inf gradient in the epoch's last step leaves a finite loss but broken weights: never save those
        broken = non_finite_tensors(model)
        if reduce_scalar(float(bool(broken)), "max", device, world) > 0:
            raise NonFiniteLossError(step, broken or ["(on another process)"], last_good, kind="weights")
        scheduler.step()
        if rank == 0 and cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs:
            eval_history.append({"epoch": epoch + 1, "metrics": evaluate_model(model, dataset, cfg, device)})
            board.log_metrics(step, eval_history[-1]["metrics"])
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
                extra={
                    "history": history,
                    "eval_history": eval_history,
                    "num_classes": dataset.num_train_ids,
                    "resume_changes": changes,
                    "complexity": complexity.as_dict(),
                },
            )
            last_good = ckpt_path
        if world > 1:
            dist.barrier()

    model.eval()
    metrics: dict[str, Any] = {}
    if rank == 0 and cfg.final_eval:
        metrics = evaluate_model(model, dataset, cfg, device)
        board.log_metrics(step, metrics)
    board.close()
    if rank == 0 and (cfg.final_eval or eval_history):
        summary = {"final": metrics, "during_training": eval_history, "complexity": complexity.as_dict()}
        atomic_write_json(out_dir / METRICS_NAME, summary)
    if rank == 0 and not ckpt_path.exists():  # resumed from another file, all epochs done, nothing written here
        raise RuntimeError(f"no checkpoint at {ckpt_path} after training; check out_dir")
    ips = images_seen / train_time if train_time > 0 else math.nan
    epochs_run = max(0, cfg.epochs - start_epoch)
    return TrainResult(model, history, metrics, ckpt_path, ips, epochs_run, eval_history)
