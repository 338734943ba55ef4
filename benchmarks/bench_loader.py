"""Training input pipeline throughput: images/s per worker of JPEG decode + the training augmentation.

Measured on a synthetic SYSU-MM01 folder (JPEGs of ``--image-height`` x ``--image-width``) with the training
transform of ``idkl_lib.data.transforms`` (resize to 384x144, flip, pad 10 + random crop, to-tensor, normalise,
random erasing p = 0.5):

* ``per_worker``: one process decoding and augmenting images one by one (``ImageDataset[i]``, what one DataLoader
  worker does), images per CPU-second (what a worker with a core of its own delivers; load-independent) and per
  wall-clock second;
* ``loader``: the real training loader (``idkl_lib.train.build_loader``: P x K sampler, collation,
  ``--num-workers`` worker processes), images/s after its first batch;
* the projection ``16 x per_worker`` against the rate a GPU needs (``--needed``, 5,000 images/s: IDKL at 35% MFU on
  an H100-class GPU);
* with ``--decoded-cache``: the same per-image work read from the decoded uint8 cache
  (:mod:`idkl_lib.data.cache`) with flip / pad + crop / erasing applied in batches by
  :mod:`idkl_lib.data.gpu_augment` on ``--device``: read only and read + augment, images per CPU-second and per
  second, and the ratio to the PIL path per CPU-second.

``--quick``: a tiny folder at 64x32 (the smoke test).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import base_parser, setup, synchronize, write_result
from idkl_lib.config import TrainConfig
from idkl_lib.data import ImageDataset, build_dataset, build_transforms, write_synthetic

NAME = "bench_loader"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--height", type=int, default=None, help="training input height (384)")
    parser.add_argument("--width", type=int, default=None, help="training input width (144)")
    parser.add_argument("--image-height", type=int, default=None, help="JPEG height on disk (288)")
    parser.add_argument("--image-width", type=int, default=None, help="JPEG width on disk (144)")
    parser.add_argument("--ids", type=int, default=None, help="synthetic training identities (24)")
    parser.add_argument("--images", type=int, default=None, help="images timed per measurement (600)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers of the loader measurement")
    parser.add_argument("--needed", type=float, default=5000.0, help="images/s the GPU consumes")
    parser.add_argument("--data-root", type=Path, default=None, help="a SYSU-MM01 folder instead of a synthetic one")
    parser.add_argument("--decoded-cache", action="store_true", help="also time the decoded cache + batched aug")
    args = parser.parse_args(argv)
    tiny = {"height": 64, "width": 32, "image_height": 64, "image_width": 32, "ids": 4, "images": 16}
    full = {"height": 384, "width": 144, "image_height": 288, "image_width": 144, "ids": 24, "images": 600}
    for key, value in (tiny if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def per_worker_rate(dataset: ImageDataset, n: int) -> tuple[float, float]:
    """(images/s of wall time, images per CPU-second) of ``dataset[i]`` (decode + augment) in this process.

    The CPU-time rate is what one worker gets from a core of its own (it does not depend on the machine's load)."""
    dataset[0]  # warm-up (imports, first file open)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        dataset[i % len(dataset)]
    return n / (time.perf_counter() - start), n / (time.process_time() - cpu)


def loader_rate(cfg: TrainConfig, n: int) -> float:
    """Images/s of the training loader after its first batch (epochs are cycled when needed)."""
    from idkl_lib.train.loop import build_loader

    dataset = build_dataset("sysu", cfg.data_root)
    count, t0, epoch = 0, None, 0
    while True:
        for images, *_ in build_loader(cfg, dataset, epoch=epoch):
            if t0 is None:
                t0 = time.perf_counter()
                continue
            count += int(images.size(0))
            if count >= n:
                return count / (time.perf_counter() - t0)
        epoch += 1


def cache_rate(args: argparse.Namespace, root: Path, run_dir: Path, device: torch.device) -> dict[str, float]:
    """Images/s of reading the decoded cache and augmenting whole batches on ``device``."""
    from idkl_lib.data.cache import DecodedImageCache
    from idkl_lib.data.gpu_augment import BatchAugment

    dataset = build_dataset("sysu", root)
    start = time.perf_counter()
    cache = DecodedImageCache.build(dataset.train, run_dir / "decoded", args.height, args.width)
    build_s = time.perf_counter() - start
    augment = BatchAugment(random_erasing=0.5)
    batch = 120 if not args.quick else 8
    index = torch.arange(len(dataset.train))
    rates = {}
    for name, with_augment in (("read_only", False), ("read_and_augment", True)):
        synchronize(device)
        start, cpu = time.perf_counter(), time.process_time()
        count = 0
        while count < args.images:
            rows = index[torch.randint(len(index), (batch,))]
            images = cache.read(rows.numpy()).to(device, non_blocking=True)
            if with_augment:
                augment(images)
            count += batch
        synchronize(device)
        rates[f"{name}_images_per_s"] = count / (time.perf_counter() - start)
        rates[f"{name}_images_per_cpu_s"] = count / (time.process_time() - cpu)
    return {**rates, "images_per_s": rates["read_and_augment_images_per_s"], "build_seconds": build_s, "batch": batch}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args, repeats=1, warmup=0)
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        root = args.data_root or Path(tmp) / "sysu"
        if args.data_root is None:
            write_synthetic(
                root,
                layout="sysu",
                num_train_ids=args.ids,
                num_test_ids=2,
                images_per_camera=6,
                height=args.image_height,
                width=args.image_width,
                seed=args.seed,
            )
        samples = build_dataset("sysu", root).train
        dataset = ImageDataset(samples, build_transforms(args.height, args.width, train=True, random_erasing=0.5))
        worker_wall, worker = per_worker_rate(dataset, args.images)
        cfg = TrainConfig(
            data_root=str(root),
            height=args.height,
            width=args.width,
            p=min(12, args.ids // 2),
            k=10 if not args.quick else 2,
            num_workers=args.num_workers,
            seed=args.seed,
        )
        loader = loader_rate(cfg, args.images)
        cached = cache_rate(args, root, Path(tmp), device) if args.decoded_cache else None
    projected = 16 * worker
    results = {
        "per_worker_images_per_s": worker_wall,
        "per_worker_images_per_cpu_s": worker,
        "loader_images_per_s": loader,
        "loader_workers": args.num_workers,
        "projected_16_workers_images_per_s": projected,
        "needed_images_per_s": args.needed,
        "sixteen_workers_suffice": projected >= args.needed,
        "decoded_cache": cached,
        "decoded_cache_vs_pil_per_cpu_s": cached["read_and_augment_images_per_cpu_s"] / worker if cached else None,
    }
    summary = (
        f"JPEG {args.image_height}x{args.image_width} -> train aug {args.height}x{args.width}: {worker:.0f} img/s per "
        f"worker-core ({worker_wall:.0f} wall on this shared machine; x16 = {projected:.0f}, need {args.needed:.0f}: "
        f"{'enough' if projected >= args.needed else 'NOT enough'}); "
        f"training loader with {args.num_workers} workers {loader:.0f} img/s"
    )
    if cached:
        summary += (
            f"; decoded cache: read {cached['read_only_images_per_cpu_s']:.0f} img/CPU-s, read + batched augmentation "
            f"on {device.type} {cached['read_and_augment_images_per_cpu_s']:.0f} img/CPU-s "
            f"({results['decoded_cache_vs_pil_per_cpu_s']:.1f}x the PIL path per CPU-second)"
        )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_result(args, NAME, device, settings, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
