"""Model complexity: parameters and FLOPs per image, counted with PyTorch's own FLOP counter
(``torch.utils.flop_counter.FlopCounterMode``; docs/method.md#27-compute-cost).

Two paths of the IDKL network are measured at the run's input size:

* the **retrieval path**: what a deployed model runs per image, ``IDKLModel.embed(which="shared")`` (stem, ``layer1``,
  ``layer2``, the shared tail, GeM and the shared BNNeck), forward only;
* the **training graph**: ``IDKLModel.forward`` in train mode (both tails, purifier, every head) plus the backward
  pass of all its outputs, per training image.

The counter counts matrix multiplications and convolutions (2 FLOPs per multiply-add), which is what the analytic
figures count; element-wise operations (BN, ReLU, pooling) are left out. Counting runs on a copy of the model on
PyTorch's ``meta`` device, so no arithmetic is done and it costs about a second even for ResNet-50.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["Complexity", "count_flops", "count_parameters", "model_complexity", "used_parameters"]

_BATCH = 2  # BatchNorm in train mode needs more than one value per channel; results are per image


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the matrix multiplications and convolutions that ``fn()`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module`` (shared parameters counted once)."""
    return sum(p.numel() for p in module.parameters())


def used_parameters(module: nn.Module, fn: Callable[[], torch.Tensor]) -> int:
    """Number of parameter elements of ``module`` that the output of ``fn()`` depends on (those autograd reaches)."""
    params = [p for p in module.parameters() if p.requires_grad]
    out = fn()
    grads = torch.autograd.grad(out.sum(), params, allow_unused=True)
    return sum(p.numel() for p, g in zip(params, grads, strict=True) if g is not None)


@dataclass(frozen=True)
class Complexity:
    """Size and cost of a model at one input size.

    Attributes:
        height: Input height the FLOPs were counted at.
        width: Input width.
        params_total: Every parameter of the model.
        params_retrieval: Parameters the retrieval feature depends on.
        gflops_retrieval: GFLOPs per image of the retrieval path (forward).
        gflops_train: GFLOPs per image of one training step's graph (forward of the whole network + backward).
    """

    height: int
    width: int
    params_total: int
    params_retrieval: int
    gflops_retrieval: float
    gflops_train: float

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready dict (for the checkpoint's metadata and the run's metrics)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, float | int]) -> Complexity:
        """Inverse of :meth:`as_dict`."""
        return cls(**{name: values[name] for name in cls.__dataclass_fields__})  # type: ignore[arg-type]

    def line(self) -> str:
        """One line for logs: ``model: 24.3 M parameters (retrieval path 11.2 M); GFLOPs per 384x144 image: ...``."""
        return (
            f"model: {self.params_total / 1e6:.2f} M parameters (retrieval path {self.params_retrieval / 1e6:.2f} M); "
            f"GFLOPs per {self.height}x{self.width} image: retrieval {self.gflops_retrieval:.3g}, "
            f"training step {self.gflops_train:.3g} (torch.utils.flop_counter)"
        )


def _meta_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on the meta device (shapes only), in the same train/eval mode."""
    return copy.deepcopy(model).to("meta")


def model_complexity(model: nn.Module, height: int, width: int) -> Complexity:
    """Parameters and GFLOPs per image of an :class:`~idkl_lib.models.IDKLModel` at ``height`` x ``width``.

    ``model`` is not modified (a meta-device copy is measured). Works for any module with ``embed(images)`` (the
    retrieval path) and ``forward(images)`` returning a dataclass or tuple of tensors (the training graph).
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"model_complexity: {name} must be a positive int, got {value!r}")
    with torch.random.fork_rng(devices=[]):  # dropout on the meta copy must not advance the training's RNG
        return _measure(model, height, width)


def _measure(model: nn.Module, height: int, width: int) -> Complexity:
    meta = _meta_copy(model)
    images = torch.empty(_BATCH, 3, height, width, device="meta")
    embed: Callable[..., torch.Tensor] = meta.embed  # type: ignore[assignment]
    meta.eval()
    with torch.no_grad():
        retrieval = count_flops(lambda: embed(images))
    params_retrieval = used_parameters(meta, lambda: embed(images))
    meta.train()

    def train_step() -> None:
        out = meta(images)
        tensors = out if isinstance(out, tuple | list) else vars(out).values()
        total = sum(t.float().sum() for t in tensors if isinstance(t, torch.Tensor) and t.is_floating_point())
        total.backward()  # type: ignore[union-attr]

    training = count_flops(train_step)
    return Complexity(
        height=height,
        width=width,
        params_total=count_parameters(model),
        params_retrieval=params_retrieval,
        gflops_retrieval=retrieval / _BATCH / 1e9,
        gflops_train=training / _BATCH / 1e9,
    )
