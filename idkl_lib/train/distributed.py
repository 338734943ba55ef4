"""Multi-process training that computes the one-process objective.

IDKL's losses look at the whole batch at once: batch-hard triplet mining, the TGSA affinity graphs, the CSA
identity sets and the confuser's pseudo-labels all depend on which images share a batch, and so do the
BatchNorm statistics. With ``torchrun --nproc_per_node N`` the global batch therefore stays the recipe's P x K:
every process forwards P/N whole identity blocks, the outputs are gathered with an autograd-aware all-gather so
that every process evaluates the same loss on the same global batch, and BatchNorm layers normalise with the
global batch statistics. DistributedDataParallel then averages gradients that are each N times the global
objective's share of that process, which gives exactly the gradient of the one-process objective.

torch's :class:`~torch.nn.SyncBatchNorm` is used on CUDA; it refuses CPU tensors, so on CPU (gloo, which is how
the equality tests run) :class:`GlobalBatchNorm` computes the same statistics with two autograd-aware
all-reduces.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, TypeVar

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.losses import compute_losses

__all__ = [
    "GlobalBatchNorm",
    "GlobalInstanceNorm",
    "convert_batchnorm",
    "freeze_unused_parameters",
    "gather_batch",
    "gather_fields",
    "init_distributed",
    "world_size",
]

T = TypeVar("T")


def init_distributed() -> tuple[int, int]:
    """``(rank, world_size)`` of a torchrun launch; initialises the process group on first use (NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def world_size() -> int:
    """Number of processes of the initialised group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather_batch(tensor: Tensor) -> Tensor:
    """The rank-ordered concatenation of every process's ``tensor`` along dim 0 (identity with one process).

    Gradients flow back to each process's own rows (see :class:`_AllGather`); tensors that
    do not require gradients (labels) are gathered without autograd. Every process must pass the same shape.
    """
    if world_size() <= 1:
        return tensor
    if tensor.requires_grad:
        return _AllGather.apply(tensor)
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


def gather_fields(output: T) -> T:
    """A dataclass of batch tensors (e.g. :class:`~idkl_lib.models.idkl.IDKLOutput`) with every field gathered."""
    if world_size() <= 1:
        return output
    values = {f.name: gather_batch(getattr(output, f.name)) for f in dataclasses.fields(output)}  # type: ignore[arg-type]
    return dataclasses.replace(output, **values)  # type: ignore[type-var]


class _AllGather(torch.autograd.Function):
    """Concatenate every process's rows; backward: the sum over processes of the gradient of this process's rows.

    Written on ``dist.all_gather`` / ``dist.all_reduce`` (stable on every backend, gloo included) rather than on
    torch's functional collectives, whose autograd support changed between the torch versions we accept.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        parts = [torch.empty_like(tensor) for _ in range(world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows, ctx.rank = tensor.shape[0], dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; backward: the sum over processes of the output gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _all_reduce_sum(tensor: Tensor) -> Tensor:
    return _AllReduceSum.apply(tensor)


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of all processes, on any device (the CPU counterpart of SyncBatchNorm).

    In training mode with more than one process, the per-channel mean and (biased) variance are those of the
    concatenated batch, computed in two passes (mean, then the centred sum of squares) so that they equal the
    one-process values to float rounding; the running statistics are updated as one process would (unbiased
    variance over the global count). Otherwise it is a plain BatchNorm.
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) input, got {input.dim()}D")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        if not (self.training and world_size() > 1):
            return super().forward(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input if input.dtype in (torch.float32, torch.float64) else input.float()  # statistics in >= fp32
        count = x.numel() // x.shape[1] * world_size()
        mean = _all_reduce_sum(x.sum(dims)) / count
        centred = x - mean.view(shape)
        var = _all_reduce_sum(centred.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                assert self.num_batches_tracked is not None
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), factor)
                unbiased = var.detach() * count / max(count - 1, 1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


class GlobalInstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d whose running statistics (used in eval mode when ``track_running_stats``, as the purifier's
    IN layer does) are averaged over the global batch, as one process would average them.

    The normalisation itself is per image and needs no communication; only the running-statistics update does.
    """

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and self.track_running_stats and world_size() > 1):
            return super().forward(input)
        out = F.instance_norm(input, None, None, self.weight, self.bias, True, 0.0, self.eps)
        with torch.no_grad():
            x = input.detach().float()
            stats = torch.stack([x.mean((2, 3)).sum(0), x.var((2, 3), unbiased=True).sum(0)])
            stats = torch.cat([stats.flatten(), stats.new_tensor([x.shape[0]])])
            dist.all_reduce(stats)
            count = stats[-1]
            mean, var = (stats[:-1] / count).view(2, -1)
            assert self.running_mean is not None and self.running_var is not None
            factor = self.momentum if self.momentum is not None else 0.0  # as torch's InstanceNorm
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
            self.running_var.lerp_(var.to(self.running_var.dtype), factor)
        return out


def freeze_unused_parameters(
    model: nn.Module, cfg: TrainConfig, weights: LossWeights, device: torch.device
) -> list[str]:
    """Switch off ``requires_grad`` of the parameters that no active loss term reaches; their names.

    An ablation preset (``baseline``, ``+ip``, ...) leaves the heads of its switched-off terms without a gradient,
    though their outputs are part of the model's. One process leaves those gradients None and Adam skips the
    parameters; DistributedDataParallel instead waits for them and stops at the second step ("Expected to have
    finished reduction in the prior iteration": ``find_unused_parameters`` walks the graph from the outputs, so it
    counts them as used; ``static_graph`` left the ranks' weights apart here). Frozen, they are left out of DDP's
    reduction and stay as they are, as in one process.

    Which parameters are reached depends on the loss weights only, so one probe finds them: a forward and backward
    pass of a made-up batch of 2 identities x ``cfg.k`` images in the sampler's layout, in eval mode (BatchNorm's
    running statistics and the random number generators are left untouched), before the model is distributed.
    """
    k = max(2, cfg.k - cfg.k % 2)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2 * k, 3, cfg.height, cfg.width, generator=generator).to(device)
    pids = torch.arange(2).repeat_interleave(k).to(device)
    modality = torch.tensor([1, 0]).repeat(k).to(device)  # per identity [I, V, I, V, ...]
    was_training = model.training
    model.eval()
    try:
        terms = compute_losses(model(images, modality), pids, modality, weights, margin=cfg.margin)
        torch.stack(list(terms.values())).sum().backward()
    finally:
        model.train(was_training)
    frozen = []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and parameter.grad is None:
            parameter.requires_grad_(False)
            frozen.append(name)
        parameter.grad = None
    return frozen


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every normalisation layer with batch-dependent statistics by its global-batch version, keeping
    weights and buffers: BatchNorm layers (torch's :class:`~torch.nn.SyncBatchNorm` on CUDA,
    :class:`GlobalBatchNorm` elsewhere) and InstanceNorm2d layers that track running statistics
    (:class:`GlobalInstanceNorm`). Subclasses that freeze a parameter (the BNNeck's bias) keep that parameter's
    ``requires_grad``.
    """
    module = _convert_instance_norm(module)
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:  # the same Parameter objects: requires_grad and optimiser references are kept
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, device))
    return module


def _convert_instance_norm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.InstanceNorm2d) and module.track_running_stats:
        if isinstance(module, GlobalInstanceNorm):
            return module
        # momentum None (a cumulative average) is valid at run time; torch annotates it as float
        new = GlobalInstanceNorm(module.num_features, module.eps, module.momentum, module.affine, True)  # type: ignore[arg-type]
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert_instance_norm(child))
    return module
