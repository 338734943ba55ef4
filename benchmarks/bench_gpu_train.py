"""GPU training throughput of the full IDKL step at the paper's size, its MFU, peak memory, and whether the data
loader keeps up.

Needs ``--device cuda``; on a machine without a GPU it prints why and exits (status 0) unless ``--dry-run`` is given.
``--dry-run`` runs every code path once at tiny sizes (one step, a few loader batches) on the chosen device, so the
script can be smoke-tested on a CPU; its numbers mean nothing.

Measured:

* ``train``: images/s of the IDKL training step (forward, ``compute_losses`` with the ``sysu`` preset, backward,
  Adam) on a batch already on the GPU: B = 120 (P = 12 x K = 10) at 384x144, bf16 autocast, channels_last,
  optionally ``torch.compile`` (``--compile``). Each timed repeat runs ``--steps`` steps and synchronises once.
* MFU: (FLOPs of one step, counted by ``torch.utils.flop_counter`` on the eager model: forward + backward) / step time
  / peak. The peak is the GPU's dense bf16 figure: H100 SXM and H200 989.4 TFLOPS, H100 PCIe 756, A100 312 (detected
  from ``torch.cuda.get_device_name``), or ``--peak-tflops``. The analytic figure of
  docs/method.md#27-compute-cost (70.1 GFLOP per image at 384x144, 6 x MACs) is reported beside the counted one.
* peak GPU memory of one step (``torch.cuda.max_memory_allocated``).
* ``loader``: images/s of the real training loader alone (``idkl_lib.train.build_loader``: P x K sampler, JPEG decode,
  training augmentation, ``--num-workers`` workers, pinned memory), after its first batch; and ``end_to_end``: images/s
  of training steps fed by that loader. The loader keeps up when its rate is at least the training rate.
  Images: a synthetic SYSU-MM01 folder written at ``--image-height`` x ``--image-width`` (or ``--data-root``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks._common import PeakMemory, base_parser, count_flops, measure, setup, synchronize, write_result
from benchmarks.bench_train_step import Batch, adam, amp_dtype, build_idkl, idkl_step_fn, make_batch
from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.data import build_dataset, write_synthetic
from idkl_lib.losses import compute_losses
from idkl_lib.models import IDKLOutput

NAME = "bench_gpu_train"
ANALYTIC_GFLOP_PER_IMAGE_384x144 = 70.1  # docs/method.md#27-compute-cost, training = 6 x MACs
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.4), ("H200", 989.4), ("GH200", 989.4), ("A100", 312.0))


def detect_peak_tflops(device: torch.device, override: float | None) -> tuple[float | None, str]:
    """Dense bf16 peak of the GPU (TFLOPS) and where the figure comes from."""
    if override is not None:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no GPU"
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_BF16_TFLOPS:
        if all(part in name for part in key.split()):
            return peak, f"dense bf16 of {key} (detected from {name!r})"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--dry-run", action="store_true", help="run every path once at tiny sizes (any device)")
    parser.add_argument("--arch", choices=("resnet50", "resnet18"), default=None, help="default resnet50")
    parser.add_argument("--p", type=int, default=None, help="identities per batch (12)")
    parser.add_argument("--k", type=int, default=None, help="images per identity (10)")
    parser.add_argument("--height", type=int, default=None, help="input height (384)")
    parser.add_argument("--width", type=int, default=None, help="input width (144)")
    parser.add_argument("--num-classes", type=int, default=395)
    parser.add_argument("--amp", choices=("off", "bf16"), default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (warm-up compiles)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed repeat (10)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the detected dense bf16 peak")
    parser.add_argument("--num-workers", type=int, default=None, help="loader workers (8)")
    parser.add_argument("--loader-batches", type=int, default=None, help="batches timed for the loader (12)")
    parser.add_argument("--data-root", type=Path, default=None, help="SYSU-MM01 folder (real or synthetic)")
    parser.add_argument("--image-height", type=int, default=288, help="size of the synthetic JPEGs")
    parser.add_argument("--image-width", type=int, default=144, help="size of the synthetic JPEGs")
    args = parser.parse_args(argv)
    tiny = args.dry_run or args.quick
    tiny_sizes = {"arch": "resnet18", "p": 2, "k": 2, "height": 64, "width": 32, "steps": 1}
    full_sizes = {"arch": "resnet50", "p": 12, "k": 10, "height": 384, "width": 144, "steps": 10}
    defaults = {**tiny_sizes, "num_workers": 0, "loader_batches": 2} if tiny else {
        **full_sizes, "num_workers": 8, "loader_batches": 12,
    }  # fmt: skip
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if tiny:
        args.image_height, args.image_width = min(args.image_height, 64), min(args.image_width, 32)
    return args


def step_flops(model: torch.nn.Module, batch: Batch, device: torch.device, amp: torch.dtype | None) -> int:
    """FLOPs of forward + loss + backward of one step (eager model; the optimiser has no matmuls)."""

    def run() -> None:
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            out = model(batch.images, batch.modality)
        terms = compute_losses(out, batch.pids, batch.modality, LossWeights.preset("sysu"))
        torch.stack(list(terms.values())).sum().backward()

    flops = count_flops(run)
    model.zero_grad(set_to_none=True)
    return flops


def training_loader(args: argparse.Namespace, root: Path) -> DataLoader:
    """``idkl_lib.train.build_loader`` on a SYSU folder (a synthetic one is written there unless ``--data-root``)."""
    from idkl_lib.train.loop import build_loader

    if args.data_root is None:
        tiny = args.dry_run or args.quick
        write_synthetic(
            root,
            layout="sysu",
            num_train_ids=args.p * (2 if tiny else 4),  # 4 P ids x 4 chunks of K/2 infrared images: 16 batches
            num_test_ids=2,
            images_per_camera=4 if tiny else 10,
            height=args.image_height,
            width=args.image_width,
            seed=args.seed,
        )
    cfg = TrainConfig(
        dataset="sysu",
        data_root=str(args.data_root or root),
        arch=args.arch,
        pretrained=False,
        height=args.height,
        width=args.width,
        p=args.p,
        k=args.k,
        num_workers=args.num_workers,
        seed=args.seed,
    )
    return build_loader(cfg, build_dataset("sysu", cfg.data_root), epoch=0)


def time_loader(loader: DataLoader, batches: int, device: torch.device) -> tuple[float, int, float]:
    """(images/s after the first batch, images counted, seconds to the first batch), cycling epochs if needed."""
    start = time.perf_counter()
    first_s = None
    count, t0 = 0, 0.0
    while True:
        for images, *_ in loader:
            images = images.to(device, non_blocking=True)
            if first_s is None:
                first_s = time.perf_counter() - start
                t0 = time.perf_counter()
                continue
            count += int(images.size(0))
            if count >= batches * images.size(0):
                synchronize(device)
                return count / (time.perf_counter() - t0), count, first_s
        loader.sampler.set_epoch(loader.sampler.epoch + 1)


def time_end_to_end(
    loader: DataLoader,
    args: argparse.Namespace,
    model: nn.Module,
    forward: Callable[..., IDKLOutput],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    amp: torch.dtype | None,
) -> float | None:
    """Images/s of training steps fed by ``loader`` (one epoch at most, after its first batch)."""
    loader.sampler.set_epoch(loader.sampler.epoch + 1)
    weights = LossWeights.preset("sysu")
    count, t0 = 0, None
    for i, (images, pids, _cams, modality, _idx) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        batch = Batch(images, pids.to(device, non_blocking=True), modality.to(device, non_blocking=True))
        idkl_step_fn(model, forward, optimizer, batch, device, amp, weights)()
        if i == 0:  # the first batch pays for the worker start-up
            synchronize(device)
            t0 = time.perf_counter()
            continue
        count += batch.size
        if i >= args.loader_batches:
            break
    synchronize(device)
    return count / (time.perf_counter() - t0) if t0 is not None and count else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device != "cuda" and not args.dry_run:
        print(
            f"[{NAME}] this benchmark measures GPU training and needs --device cuda (with a CUDA GPU). "
            "On a CPU, run it with --dry-run to check the code paths, or use benchmarks.bench_train_step."
        )
        return 0
    device = setup(args, repeats=1 if args.dry_run or args.quick else 5, warmup=1 if args.dry_run else 3)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    amp = amp_dtype(args.amp)
    batch = make_batch(args.p, args.k, args.height, args.width, args.num_classes, device, args.channels_last, args.seed)
    model = build_idkl(args.arch, args.num_classes, device, args.channels_last)
    flops = step_flops(model, batch, device, amp)
    forward = torch.compile(model) if args.compile else model
    optimizer = adam(model)
    step = idkl_step_fn(model, forward, optimizer, batch, device, amp, LossWeights.preset("sysu"))

    def steps() -> None:
        for _ in range(args.steps):
            step()

    if args.compile:  # compilation happens on the first calls; keep it out of the timed warm-up rounds
        for _ in range(2):
            step()
    timing = measure({"train": steps}, repeats=args.repeats, warmup=args.warmup, device=device)["train"]
    step_s = timing.median / args.steps
    b = batch.size
    train_ips = b / step_s
    with PeakMemory(device) as mem:
        step()
    peak, peak_source = detect_peak_tflops(device, args.peak_tflops)
    achieved_tflops = flops / step_s / 1e12
    mfu = achieved_tflops / peak if peak else None
    spec_flops = ANALYTIC_GFLOP_PER_IMAGE_384x144 * 1e9 * b
    spec_mfu = spec_flops / step_s / 1e12 / peak if peak else None

    with tempfile.TemporaryDirectory(prefix="bench_gpu_train_") as tmp:
        loader = training_loader(args, Path(tmp) / "sysu")
        loader_ips, loader_count, loader_first_s = time_loader(loader, args.loader_batches, device)
        e2e_ips = time_end_to_end(loader, args, model, forward, optimizer, device, amp)

    keeps_up = loader_ips >= train_ips
    results = {
        "train": timing.as_dict(),
        "step_seconds": step_s,
        "train_images_per_s": train_ips,
        "flops_per_step_counted": flops,
        "flops_per_image_counted_g": flops / b / 1e9,
        "spec_flops_per_image_g": ANALYTIC_GFLOP_PER_IMAGE_384x144,
        "achieved_tflops": achieved_tflops,
        "peak_tflops": peak,
        "peak_source": peak_source,
        "mfu_counted": mfu,
        "mfu_spec_flops": spec_mfu,
        "memory": mem.as_dict(),
        "loader_images_per_s": loader_ips,
        "loader_images_timed": loader_count,
        "loader_first_batch_s": loader_first_s,
        "end_to_end_images_per_s": e2e_ips,
        "loader_keeps_up": keeps_up,
    }
    mfu_text = f"MFU {100 * mfu:.1f}% of {peak:g} TFLOPS" if mfu is not None else f"MFU n/a ({peak_source})"
    summary = (
        f"{'DRY RUN (numbers meaningless): ' if args.dry_run else ''}{args.arch} B={b} at {args.height}x{args.width}, "
        f"amp={args.amp}, channels_last={args.channels_last}, compile={args.compile}: train {train_ips:.4g} img/s "
        f"({achieved_tflops:.3g} TFLOPS, {mfu_text}); peak memory {mem.as_dict()['peak_mib']:.0f} MiB; loader "
        f"({args.num_workers} workers) {loader_ips:.4g} img/s -> {'keeps up' if keeps_up else 'does NOT keep up'}; "
        f"end to end {e2e_ips or 0:.4g} img/s"
    )
    settings = {
        "dry_run": args.dry_run,
        "arch": args.arch,
        "p": args.p,
        "k": args.k,
        "batch": b,
        "height": args.height,
        "width": args.width,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "compile": args.compile,
        "steps_per_repeat": args.steps,
        "num_workers": args.num_workers,
        "loader_batches": args.loader_batches,
        "images": str(args.data_root) if args.data_root else f"synthetic {args.image_height}x{args.image_width} JPEG",
    }
    write_result(args, NAME, device, settings, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
