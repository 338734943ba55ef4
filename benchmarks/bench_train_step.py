"""One IDKL training step against one bare torchvision ResNet step, on the same batch and image size.

Measured (interleaved, median of several repeats):

* ``idkl_step``: the full IDKL step as ``idkl_lib.train`` runs it: forward through the stem, both tails, the purifier
  and every head (under autocast when ``--amp bf16``), :func:`idkl_lib.losses.compute_losses` with every term of the
  ``sysu`` preset (float32), backward, ``Adam.step``;
* ``idkl_surrogate_step``: the same step with the loss block replaced by a trivial loss that still reaches every
  output (sum of the outputs' means), so ``idkl_step - idkl_surrogate_step`` is what the loss block adds;
* ``loss_block``: ``compute_losses`` + its backward alone, on detached copies of one real model output;
* ``bare_step``: a torchvision ResNet of the same depth (``resnet50`` or ``resnet18``, standard last stride 2,
  ``num_classes`` outputs) with plain cross-entropy, backward and Adam.

The step-time ratio is compared with the FLOP ratio: the analytic count of docs/method.md#27-compute-cost (IDKL layout
8.76 GMAC vs bare ResNet-50 3.44 GMAC at 288x144, i.e. 2.55x) and the forward FLOPs ``torch.utils.flop_counter`` counts
for the two models at the benchmark's own size (which also counts the purifier's gating convolutions).

CPU default: ResNet-50 layout, P=4 x K=4 (B=16) at 128x64. CUDA default: B=120 (P=12 x K=10) at 384x144, bf16,
channels_last. ``--quick``: ResNet-18 layout, P=2 x K=2 at 64x32.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from benchmarks._common import PeakMemory, base_parser, count_flops, measure, ratio, setup, write_result
from idkl_lib.config import LossWeights, ModelConfig
from idkl_lib.losses import compute_losses
from idkl_lib.models import IDKLModel, IDKLOutput, build_model

NAME = "bench_train_step"
ANALYTIC_GMAC = {"idkl_288x144": 8.76, "resnet50_288x144": 3.44}  # docs/method.md#27-compute-cost
ANALYTIC_FLOP_RATIO = ANALYTIC_GMAC["idkl_288x144"] / ANALYTIC_GMAC["resnet50_288x144"]
LOSS_SHARE_GOAL = 0.05


# ------------------------------------------------------------------------------------------ reusable step builders
@dataclass
class Batch:
    """A batch in the sampler layout: P identities x K images, infrared / visible interleaved.

    See docs/method.md#31-notation-and-batch-layout.
    """

    images: Tensor
    pids: Tensor
    modality: Tensor

    @property
    def size(self) -> int:
        return int(self.images.size(0))


def make_batch(
    p: int, k: int, height: int, width: int, num_classes: int, device: torch.device, channels_last: bool, seed: int = 0
) -> Batch:
    """Random images with labels in the layout :func:`~idkl_lib.losses.compute_losses` checks."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(p * k, 3, height, width, generator=gen)
    ids = torch.randperm(num_classes, generator=gen)[:p]
    images = images.to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return Batch(
        images=images,
        pids=ids.repeat_interleave(k).to(device),
        modality=torch.tensor([1, 0]).repeat(p * k // 2).to(device),
    )


def build_idkl(arch: str, num_classes: int, device: torch.device, channels_last: bool) -> IDKLModel:
    """Randomly initialised IDKL model in train mode (ImageNet weights do not change the cost)."""
    model = build_model(ModelConfig(num_classes=num_classes, arch=arch, pretrained=False)).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


def build_bare(arch: str, num_classes: int, device: torch.device, channels_last: bool) -> nn.Module:
    """A bare torchvision ResNet (standard last stride 2) with a ``num_classes`` head, in train mode."""
    model = getattr(torchvision.models, arch)(num_classes=num_classes).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def adam(model: nn.Module) -> torch.optim.Optimizer:
    """The reference optimiser: Adam, lr 3.5e-4, coupled weight decay 5e-3.

    See docs/method.md#44-optimiser-schedule-and-precision.
    """
    return torch.optim.Adam(model.parameters(), lr=3.5e-4, weight_decay=5e-3)


def _autocast(device: torch.device, amp: torch.dtype | None) -> torch.autocast:
    return torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None)


def surrogate_loss(out: IDKLOutput) -> Tensor:
    """A trivial loss that sends a gradient into every output field (so backward covers the whole network)."""
    return torch.stack([getattr(out, f.name).float().mean() for f in dataclasses.fields(out)]).sum()


def idkl_step_fn(
    model: nn.Module,
    forward_model: Callable[..., IDKLOutput],
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    device: torch.device,
    amp: torch.dtype | None,
    weights: LossWeights | None,
) -> Callable[[], Tensor]:
    """One IDKL training step as ``idkl_lib.train`` runs it (``weights=None``: :func:`surrogate_loss` instead)."""

    def step() -> Tensor:
        with _autocast(device, amp):
            out = forward_model(batch.images, batch.modality)
        if weights is None:
            loss = surrogate_loss(out)
        else:
            terms = compute_losses(out, batch.pids, batch.modality, weights)  # float32 inside, outside autocast
            loss = torch.stack(list(terms.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def bare_step_fn(
    forward_model: Callable[[Tensor], Tensor],
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    device: torch.device,
    amp: torch.dtype | None,
) -> Callable[[], Tensor]:
    """One step of the bare ResNet: forward, cross-entropy, backward, Adam."""

    def step() -> Tensor:
        with _autocast(device, amp):
            logits = forward_model(batch.images)
        loss = F.cross_entropy(logits.float(), batch.pids)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def loss_block_fn(model: IDKLModel, batch: Batch, device: torch.device, amp: torch.dtype | None) -> Callable[[], None]:
    """``compute_losses`` (sysu preset) forward + backward on detached copies of one real output of ``model``."""
    with torch.no_grad(), _autocast(device, amp):
        out = model(batch.images, batch.modality)
    leaves = {f.name: getattr(out, f.name).detach().clone().requires_grad_() for f in dataclasses.fields(out)}
    detached = IDKLOutput(**leaves)
    weights = LossWeights.preset("sysu")

    def run() -> None:
        for leaf in leaves.values():
            leaf.grad = None
        terms = compute_losses(detached, batch.pids, batch.modality, weights)
        torch.stack(list(terms.values())).sum().backward()

    return run


def forward_gmac_per_image(model: nn.Module, height: int, width: int, device: torch.device) -> float:
    """Forward multiply-adds per image (eval mode, batch of 2), in GMAC."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            flops = count_flops(lambda: model(torch.zeros(2, 3, height, width, device=device)))
    finally:
        model.train(was_training)
    return flops / 2 / 2 / 1e9


def amp_dtype(name: str) -> torch.dtype | None:
    return {"off": None, "bf16": torch.bfloat16}[name]


# ---------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--arch", choices=("resnet50", "resnet18"), default=None, help="default resnet50")
    parser.add_argument("--p", type=int, default=None, help="identities per batch (CPU 4, CUDA 12)")
    parser.add_argument("--k", type=int, default=None, help="images per identity, even (CPU 4, CUDA 10)")
    parser.add_argument("--height", type=int, default=None, help="CPU 128, CUDA 384")
    parser.add_argument("--width", type=int, default=None, help="CPU 64, CUDA 144")
    parser.add_argument("--num-classes", type=int, default=395, help="identity classes (SYSU-MM01: 395)")
    parser.add_argument("--amp", choices=("off", "bf16"), default=None, help="autocast dtype (CUDA bf16, CPU off)")
    parser.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction, default=None, help="default: on for CUDA"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile both models (warm-up compiles)")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if args.quick:
        defaults = {"arch": "resnet18", "p": 2, "k": 2, "height": 64, "width": 32}
    elif cuda:
        defaults = {"arch": "resnet50", "p": 12, "k": 10, "height": 384, "width": 144}
    else:
        defaults = {"arch": "resnet50", "p": 4, "k": 4, "height": 128, "width": 64}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.amp is None:
        args.amp = "bf16" if cuda else "off"
    if args.channels_last is None:
        args.channels_last = cuda
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(
        args, repeats=2 if args.quick else (10 if args.device == "cuda" else 9), warmup=1 if args.quick else 2
    )
    amp = amp_dtype(args.amp)
    batch = make_batch(args.p, args.k, args.height, args.width, args.num_classes, device, args.channels_last, args.seed)
    idkl = build_idkl(args.arch, args.num_classes, device, args.channels_last)
    bare = build_bare(args.arch, args.num_classes, device, args.channels_last)
    gmac_idkl = forward_gmac_per_image(idkl, args.height, args.width, device)
    gmac_bare = forward_gmac_per_image(bare, args.height, args.width, device)
    idkl_fwd = torch.compile(idkl) if args.compile else idkl
    bare_fwd = torch.compile(bare) if args.compile else bare
    idkl_opt, bare_opt = adam(idkl), adam(bare)

    steps = {
        "idkl_step": idkl_step_fn(idkl, idkl_fwd, idkl_opt, batch, device, amp, LossWeights.preset("sysu")),
        "idkl_surrogate_step": idkl_step_fn(idkl, idkl_fwd, idkl_opt, batch, device, amp, None),
        "bare_step": bare_step_fn(bare_fwd, bare_opt, batch, device, amp),
        "loss_block": loss_block_fn(idkl, batch, device, amp),
    }
    timings = measure(steps, repeats=args.repeats, warmup=args.warmup, device=device)

    memory = {}
    for name in ("idkl_step", "bare_step"):
        with PeakMemory(device) as mem:
            steps[name]()
        memory[name] = mem.as_dict()

    b = batch.size
    t_idkl, t_sur, t_bare, t_loss = (
        timings[n] for n in ("idkl_step", "idkl_surrogate_step", "bare_step", "loss_block")
    )
    step_ratio = ratio(t_idkl, t_bare)
    counted_ratio = gmac_idkl / gmac_bare
    loss_share = t_loss.median / t_idkl.median
    marginal = ratio(t_idkl, t_sur)
    marginal_share = (t_idkl.median - t_sur.median) / t_idkl.median
    goal_met = loss_share < LOSS_SHARE_GOAL
    verdict = "not assessed at --quick sizes" if args.quick else ("met" if goal_met else "NOT met")
    results = {
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "images_per_s": {"idkl": b / t_idkl.median, "bare": b / t_bare.median, "idkl_surrogate": b / t_sur.median},
        "step_time_ratio_idkl_over_bare": step_ratio,
        "flops": {
            "spec_flop_ratio_resnet50": ANALYTIC_FLOP_RATIO,
            "spec_gmac": ANALYTIC_GMAC,
            "counted_fwd_gmac_per_image": {"idkl": gmac_idkl, "bare": gmac_bare},
            "counted_flop_ratio": counted_ratio,
            "measured_over_counted": step_ratio["ratio_of_medians"] / counted_ratio,
        },
        "loss_block": {
            "share_of_step_direct": loss_share,
            "share_of_step_marginal": marginal_share,
            "idkl_over_surrogate_step": marginal,
        },
        "memory": memory,
    }
    summary = (
        f"{args.arch} layout, B={b} ({args.p}x{args.k}) at {args.height}x{args.width}, amp={args.amp}, "
        f"channels_last={args.channels_last}, compile={args.compile}: IDKL {b / t_idkl.median:.3g} img/s vs bare "
        f"{b / t_bare.median:.3g} img/s -> step-time ratio {step_ratio['ratio_of_medians']:.2f}x "
        f"(paired {step_ratio['paired_min']:.2f}-{step_ratio['paired_max']:.2f}) vs FLOP ratio "
        f"{counted_ratio:.2f}x counted (analytic resnet50 {ANALYTIC_FLOP_RATIO:.2f}x); loss block "
        f"{100 * loss_share:.2f}% of the step directly, {100 * marginal_share:.2f}% marginal "
        f"(goal < {100 * LOSS_SHARE_GOAL:.0f}%: {verdict})"
    )
    settings = {
        "arch": args.arch,
        "p": args.p,
        "k": args.k,
        "batch": b,
        "height": args.height,
        "width": args.width,
        "num_classes": args.num_classes,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "loss_preset": "sysu",
        "optimizer": "Adam lr 3.5e-4 wd 5e-3",
    }
    goal = {
        "loss_share_below": LOSS_SHARE_GOAL,
        "loss_share_direct": loss_share,
        "met": None if args.quick else goal_met,
    }
    write_result(args, NAME, device, settings, results, summary, goal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
