"""ONNX export (:func:`idkl_lib.export.export_onnx`): export time, file size, parity with PyTorch and inference speed.

Two randomly initialised checkpoints are written and exported (the parity batch is seeded random inputs, as for a
checkpoint whose data is gone): the demo model (``SYNTHETIC_RECIPE``: ResNet-18 layout, base width 8, 128x64) and
the ResNet-50 layout at 384x144. For each: export time (load, trace, serialise, the parity check), file size, max abs
difference and min cosine of the normalised features, whether the top-10 lists agree, and the time of one batch
through onnxruntime against PyTorch (``RetrievalModule`` under ``torch.no_grad``), interleaved.

``--quick``: only the demo model, at 64x32.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import base_parser, measure, ratio, setup, write_result
from idkl_lib.checkpoint import save_checkpoint
from idkl_lib.config import TrainConfig
from idkl_lib.export import export_onnx
from idkl_lib.features import onnx_session
from idkl_lib.models import build_model
from idkl_lib.models.retrieval import RetrievalModule

NAME = "bench_export"
NUM_CLASSES = 395
LAYOUTS = {
    "demo": {"arch": "resnet18", "base_width": 8, "height": 128, "width": 64},
    "resnet50": {"arch": "resnet50", "base_width": None, "height": 384, "width": 144},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--batch", type=int, default=8, help="images per timed inference batch and parity check")
    return parser.parse_args(argv)


def write_checkpoint(folder: Path, name: str, fields: dict[str, object]) -> tuple[Path, TrainConfig]:
    """A checkpoint of a randomly initialised model of ``fields``' layout."""
    cfg = TrainConfig(dataset="sysu", data_root=str(folder / "no-data"), pretrained=False, **fields)  # type: ignore[arg-type]
    model = build_model(cfg.model_config(NUM_CLASSES))
    path = folder / f"{name}.pth"
    save_checkpoint(
        path, model_state=model.state_dict(), epoch=0, step=0, config=cfg.to_dict(), extra={"num_classes": NUM_CLASSES}
    )
    return path, cfg


def bench_layout(folder: Path, name: str, fields: dict[str, object], args: argparse.Namespace) -> dict[str, object]:
    """Export one layout and time a batch through onnxruntime and PyTorch."""
    ckpt, cfg = write_checkpoint(folder, name, fields)
    out = folder / f"{name}.onnx"
    exported = export_onnx(ckpt, out, batch=args.batch)
    model = build_model(cfg.model_config(NUM_CLASSES))
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model_state"])
    module = RetrievalModule(model).eval()
    session = onnx_session(out)
    images = torch.randn(args.batch, 3, cfg.height, cfg.width)

    def run_torch() -> object:
        with torch.no_grad():
            return module(images)

    timings = measure(
        {"onnxruntime": lambda: session.run(None, {"images": images.numpy()}), "torch": run_torch},
        repeats=args.repeats,
        warmup=args.warmup,
        device="cpu",
    )
    parity = exported.parity
    return {
        **fields,
        "export_s": exported.seconds,
        "size_mib": exported.size_bytes / 2**20,
        "max_abs_diff": parity.max_abs_diff,
        "min_cosine": parity.min_cosine,
        "same_top10": parity.same_topk,
        "feature_dim": exported.info.dim,
        "timings": {key: t.as_dict() for key, t in timings.items()},
        "torch_over_onnxruntime_time": ratio(timings["torch"], timings["onnxruntime"]),
    }


def _line(name: str, r: dict[str, Any]) -> str:
    same = "same" if r["same_top10"] else "DIFFERENT"
    return (
        f"{name} {r['height']}x{r['width']}: export {r['export_s']:.3g} s, {r['size_mib']:.3g} MiB, max abs diff "
        f"{r['max_abs_diff']:.2g}, min cosine {r['min_cosine']:.7f}, top-10 {same}, PyTorch/onnxruntime time "
        f"{r['torch_over_onnxruntime_time']['ratio_of_medians']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = setup(args, repeats=2 if args.quick else 3, warmup=1)
    if device.type != "cpu":
        raise SystemExit("bench_export runs on the CPU (onnxruntime's CPU provider); use --device cpu")
    layouts = {"demo": {**LAYOUTS["demo"], "height": 64, "width": 32}} if args.quick else LAYOUTS
    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        results = {name: bench_layout(Path(tmp), name, fields, args) for name, fields in layouts.items()}
    summary = "; ".join(_line(name, r) for name, r in results.items())
    write_result(args, NAME, device, {"batch": args.batch, "layouts": layouts, "weights": "random"}, results, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
