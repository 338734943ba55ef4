"""Checks around the training loop: what :func:`idkl_lib.train.train` verifies before the first step (so a mistake
costs seconds, not an epoch), the checks at every log flush (NaN/inf, and the divergence rule) with the errors they
raise (:class:`NonFiniteLossError`, :class:`DivergedLossError`; both re-exported by :mod:`idkl_lib.train.loop`), and the
changes a resumed run may make when :attr:`~idkl_lib.config.TrainConfig.resume_changes` allows them."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from idkl_lib.config import TrainConfig
from idkl_lib.data import VIDataset
from idkl_lib.data.validate import check_dataset, check_writable

__all__ = [
    "DIVERGENCE_WARMUP",
    "DIVERGENCE_WINDOW",
    "DivergedLossError",
    "NonFiniteLossError",
    "apply_resume_changes",
    "divergent_row",
    "flush_losses",
    "non_finite_tensors",
    "preflight",
    "reduce_scalar",
]

DIVERGENCE_WINDOW = 50
"""Logged losses whose median a new total loss is compared with."""
DIVERGENCE_WARMUP = 10
"""Logged losses needed before the divergence rule applies."""
SYSU_EVAL_TRIALS = 10
"""Trials :func:`idkl_lib.train.loop.evaluate_model` runs on SYSU-MM01 (the protocols' default)."""


class NonFiniteLossError(RuntimeError):
    """Training diverged: a loss term, or a weight of the model, became NaN or infinite.

    Loss terms are checked at every log flush, the model's parameters and buffers at the end of every epoch; both
    checks run before the epoch's checkpoint is written, so the checkpoint on disk is the last good one.

    Attributes:
        step: Global step (1-based) of the first non-finite loss; for ``kind="weights"``, the epoch's last step.
        terms: The non-finite loss terms (``kind="loss"``) or model tensors (``kind="weights"``).
        checkpoint: The last good checkpoint, or None if this call has none (a fresh run in its first epoch).
        kind: ``"loss"`` or ``"weights"``.
    """

    def __init__(self, step: int, terms: Sequence[str], checkpoint: Path | None, kind: str = "loss") -> None:
        self.step, self.terms, self.checkpoint, self.kind = step, list(terms), checkpoint, kind
        kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was written yet"
        shown = ", ".join(self.terms[:10]) + (f" and {len(self.terms) - 10} more" if len(self.terms) > 10 else "")
        what = f"loss became non-finite at step {step} in term(s) {shown}"
        if kind == "weights":
            what = f"the model's weights became non-finite by step {step} (a NaN/inf gradient): {shown}"
        super().__init__(
            f"{what}; training stopped and {kept}. "
            "Lower the learning rate, enable grad_clip, or switch amp to 'bf16'/'off', then resume allowing that "
            "change (--resume --resume-changes lr,grad_clip,amp)."
        )


class DivergedLossError(NonFiniteLossError):
    """Training diverged: the total loss grew to more than ``TrainConfig.divergence_factor`` times the median of the
    recent logged losses. The same guarantees as :class:`NonFiniteLossError` (the last good checkpoint is kept).

    Attributes:
        value: The total loss at ``step``.
        median: The running median it was compared with.
    """

    def __init__(self, step: int, value: float, median: float, factor: float, checkpoint: Path | None) -> None:
        super().__init__(step, ["total"], checkpoint)
        self.value, self.median, self.kind = value, median, "divergence"
        kept = f"the last good checkpoint is kept at {checkpoint}" if checkpoint else "no checkpoint was written yet"
        self.args = (
            f"loss diverged at step {step}: total {value:.3g} > {factor:g} x the running median {median:.3g} "
            f"(divergence_factor); training stopped and {kept}. Lower the learning rate, enable grad_clip, or switch "
            "amp to 'bf16'/'off', then resume allowing that change (--resume --resume-changes lr,grad_clip,amp), "
            "or raise --divergence-factor (0 = off).",
        )

    def __str__(self) -> str:
        return str(self.args[0])


def reduce_scalar(value: float, op: str, device: torch.device, world: int) -> float:
    """``value`` reduced (``"min"`` or ``"max"``) over all processes: one all-reduce, so that all ranks decide alike."""
    if world <= 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.MAX)
    return float(tensor.item())


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's floating-point parameters and buffers holding a NaN or an infinity (one sync)."""
    named = [(name, t) for name, t in model.state_dict().items() if t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).cpu().tolist()
    return [name for (name, _), ok in zip(named, finite, strict=True) if not ok]


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
    advice = (  # the trainer evaluates a fixed number of trials: name what it can change
        "evaluate after training with notebook 03 (num_trials <= {trials}) and train with TrainConfig.final_eval=false "
        "and TrainConfig.eval_every=0"
    )
    checked = check_dataset(dataset, num_trials=trials, skip_corrupt=cfg.skip_corrupt, fewer_trials=advice).dataset
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


def flush_losses(
    pending: list[tuple[int, dict[str, Tensor]]],
    epoch: int,
    optimizer: torch.optim.Optimizer,
    history: list[dict[str, float]],
    on_log: Callable[[dict[str, float]], None] | None,
    bar: Any,
    last_good: Path | None,
    world: int = 1,
    factor: float = 0.0,
) -> None:
    """Move the pending loss tensors to the host in one transfer, check them, and log them.

    In a distributed run the ranks agree (one all-reduce) on the first non-finite step of any of them, so that all
    stop together instead of the others waiting forever in the next gradient all-reduce.
    """
    names = list(pending[0][1])
    stacked = torch.stack([torch.stack([row[n].float() for n in names]) for _, row in pending])
    values = stacked.cpu()
    finite = torch.isfinite(values)
    bad_rows = (~finite).any(1).nonzero().flatten().tolist()
    local_first = float(pending[bad_rows[0]][0]) if bad_rows else math.inf
    first = reduce_scalar(local_first, "min", stacked.device, world)
    if first < math.inf:
        terms = ["(on another process)"]
        if first == local_first:
            row = finite[bad_rows[0]].tolist()
            terms = [n for n, ok in zip(names, row, strict=True) if not ok and n != "total"] or ["total"]
        raise NonFiniteLossError(int(first), terms, last_good)
    diverged = divergent_row(history, values[:, names.index("total")].tolist(), factor)
    local_div = float(pending[diverged[0]][0]) if diverged else math.inf
    first_div = reduce_scalar(local_div, "min", stacked.device, world)
    if first_div < math.inf:
        value, median = (diverged[1], diverged[2]) if diverged and first_div == local_div else (math.nan, math.nan)
        raise DivergedLossError(int(first_div), value, median, factor, last_good)
    lr = optimizer.param_groups[0]["lr"]
    for (step, _), row in zip(pending, values.tolist(), strict=True):
        entry = {"step": float(step), "epoch": float(epoch + 1), "lr": lr, **dict(zip(names, row, strict=True))}
        history.append(entry)
        if on_log is not None:
            on_log(entry)
    if bar is not None:
        bar.set_postfix(loss=f"{values[-1, 0].item():.3f}")
