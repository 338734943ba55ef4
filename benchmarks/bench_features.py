"""Feature-extraction throughput of :func:`idkl_lib.eval.extract_features`, with the data loader in the loop.

Images: JPEG files written by :func:`idkl_lib.data.write_synthetic` (SYSU-MM01 layout, 128x64 pixels), read through
``ImageDataset`` + the test transform (resize to the model's input size, normalise) by a ``DataLoader``.

Measured (interleaved, images/s = N / median seconds):

* ``extract``: ``extract_features(model, samples, H, W)`` (post-BN shared feature, one forward per image);
* ``extract_flip``: the same with ``flip=True`` (image and mirror in one batched forward of 2 B images);
* ``loader``: the same ``DataLoader`` iterated alone (decode + resize + normalise + collate), no model.

Peak memory of one ``extract`` call (CUDA: ``max_memory_allocated``; CPU: sampled RSS above the start).

CPU default: ResNet-50 layout at 256x128, 96 images, batch 32, 0 workers. CUDA default: 384x144, 1,024 images,
batch 128, 8 workers, bf16, channels_last. ``--quick``: ResNet-18 layout at 64x32, 16 images, batch 8.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks._common import PeakMemory, base_parser, measure, ratio, setup, write_result
from idkl_lib.config import ModelConfig
from idkl_lib.data import ImageDataset, build_dataset, build_transforms, write_synthetic
from idkl_lib.eval.features import extract_features
from idkl_lib.models import build_model

NAME = "bench_features"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--arch", choices=("resnet50", "resnet18"), default=None, help="default resnet50")
    parser.add_argument("--height", type=int, default=None, help="model input height (CPU 256, CUDA 384)")
    parser.add_argument("--width", type=int, default=None, help="model input width (CPU 128, CUDA 144)")
    parser.add_argument("--num-images", type=int, default=None, help="images per pass (CPU 96, CUDA 1024)")
    parser.add_argument("--batch-size", type=int, default=None, help="CPU 32, CUDA 128")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers (CPU 0, CUDA 8)")
    parser.add_argument("--amp", choices=("off", "bf16"), default=None, help="autocast dtype (CUDA bf16, CPU off)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None, help="default: CUDA")
    parser.add_argument("--data-root", type=Path, default=None, help="synthetic SYSU folder to reuse (else a temp dir)")
    args = parser.parse_args(argv)
    cuda = args.device == "cuda"
    if args.quick:
        defaults = {"arch": "resnet18", "height": 64, "width": 32, "num_images": 16, "batch_size": 8, "num_workers": 0}
    elif cuda:
        defaults = {
            "arch": "resnet50", "height": 384, "width": 144, "num_images": 1024, "batch_size": 128, "num_workers": 8,
        }  # fmt: skip
    else:
        defaults = {
            "arch": "resnet50",
            "height": 256,
            "width": 128,
            "num_images": 96,
            "batch_size": 32,
            "num_workers": 0,
        }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.amp is None:
        args.amp = "bf16" if cuda else "off"
    if args.channels_last is None:
        args.channels_last = cuda
    return args


def synthetic_samples(root: Path, num_images: int, seed: int) -> list:
    """At least ``num_images`` test records (gallery then query) of a synthetic SYSU folder at 128x64."""
    per_cam = 4
    test_ids = max(2, -(-num_images // (6 * per_cam)))  # every test person has 6 cameras x per_cam images
    path = write_synthetic(
        root, layout="sysu", num_train_ids=2, num_test_ids=test_ids, images_per_camera=per_cam, seed=seed
    )
    ds = build_dataset("sysu", path)
    samples = list(ds.gallery) + list(ds.query)
    if len(samples) < num_images:
        raise SystemExit(f"the synthetic folder {path} holds {len(samples)} test images, fewer than {num_images}")
    return samples[:num_images]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args, repeats=2 if args.quick else 5, warmup=1)
    amp = {"off": None, "bf16": torch.bfloat16}[args.amp]
    with tempfile.TemporaryDirectory(prefix="bench_features_") as tmp:
        root = args.data_root if args.data_root is not None else Path(tmp) / "sysu"
        samples = synthetic_samples(root, args.num_images, args.seed)
        n = len(samples)
        model = build_model(ModelConfig(num_classes=395, arch=args.arch, pretrained=False)).to(device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        common = {
            "batch_size": args.batch_size,
            "num_workers": args.num_workers,
            "device": device,
            "amp_dtype": amp,
            "channels_last": args.channels_last,
        }
        loader = DataLoader(
            ImageDataset(samples, build_transforms(args.height, args.width, train=False)),
            batch_size=args.batch_size,
            shuffle=False,
            num_workers=args.num_workers,
            pin_memory=device.type == "cuda",
        )

        def load_only() -> int:
            count = 0
            for images, *_ in loader:
                count += int(images.size(0))
            return count

        fns = {
            "extract": lambda: extract_features(model, samples, args.height, args.width, **common),
            "extract_flip": lambda: extract_features(model, samples, args.height, args.width, flip=True, **common),
            "loader": load_only,
        }
        timings = measure(fns, repeats=args.repeats, warmup=args.warmup, device=device)
        feats = fns["extract"]()
        assert feats.shape == (n, model.feature_dim) and torch.isfinite(feats).all()
        memory = {}
        for name in ("extract", "extract_flip"):
            with PeakMemory(device) as mem:
                fns[name]()
            memory[name] = mem.as_dict()

    ips = {name: n / t.median for name, t in timings.items()}
    flip_cost = ratio(timings["extract_flip"], timings["extract"])
    loader_share = timings["loader"].median / timings["extract"].median
    results = {
        "timings": {name: t.as_dict() for name, t in timings.items()},
        "images_per_s": ips,
        "flip_over_plain_time": flip_cost,
        "loader_time_share_of_extract": loader_share,
        "memory": memory,
    }
    summary = (
        f"{args.arch} layout at {args.height}x{args.width}, {n} JPEGs (128x64 on disk), batch {args.batch_size}, "
        f"{args.num_workers} workers, amp={args.amp}, {device.type}: extract_features {ips['extract']:.3g} img/s, "
        f"with flip {ips['extract_flip']:.3g} img/s ({flip_cost['ratio_of_medians']:.2f}x the time), loader alone "
        f"{ips['loader']:.3g} img/s (loading is {100 * loader_share:.0f}% of the extraction time)"
    )
    settings = {
        "arch": args.arch,
        "height": args.height,
        "width": args.width,
        "num_images": n,
        "stored_image_size": "128x64 JPEG (write_synthetic)",
        "batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "feature": "shared post-BN (which='shared')",
    }
    write_result(args, NAME, device, settings, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
