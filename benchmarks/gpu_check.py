"""GPU check of the full SYSU-MM01 recipe: one command that answers "how long is an epoch, how much memory per GPU".

On a CUDA machine (``python -m benchmarks.gpu_check``) it:

1. writes a full-size synthetic SYSU-MM01 folder (:func:`idkl_lib.data.write_synthetic`): 395 training and 96 test
   identities, 15 images per person per camera (395 x 4 x 15 = 23,700 visible and 395 x 2 x 15 = 11,850 infrared
   training images; the real dataset has 22,258 and 11,909), JPEGs of ``--image-size`` (default 288x144; the real
   crops vary in size: pass ``--data-root`` to use the real folder instead);
2. runs one epoch of the SYSU recipe through the pipeline's ``full`` preset (``python -m idkl_lib.pipeline --preset
   full --only 02_train``, pretrained weights off, ``epochs 1``, no final evaluation) and records its wall time, the
   images/s the training loop reports and the GPU memory in use (``nvidia-smi``, sampled every 0.5 s);
3. times the training step in-process on a resident batch (B = 120 at 384x144): bf16 autocast vs float32, eager
   vs ``torch.compile``; MFU against the analytic FLOP count (70.1 GFLOP per image at 384x144, 6 x MACs) and against
   the FLOPs ``torch.utils.flop_counter`` counts; peak ``torch.cuda.max_memory_allocated``;
4. times the training loader alone with the configured workers (the ``full`` preset's 8) against the step's rate;
5. runs ``torchrun --standalone --nproc_per_node 1 -m idkl_lib.train`` for one epoch and records its wall time and
   images/s (P is left at its default 12: torchrun's parser takes ``--p`` for an abbreviation of its own options);
6. writes the table "time per epoch / memory per GPU" and the figures with the GPU's name into
   ``benchmarks/README.md``, the one home of the project's times (between ``<!-- gpu_check:begin -->`` /
   ``<!-- gpu_check:end -->`` markers, so a later run rewrites them), and the full JSON into ``--out``.

``--dry-run`` runs every path at tiny sizes on the CPU (ResNet-18 layout, 8 wide, 64x32, a 14-identity folder, the
compile path with the ``eager`` backend) and writes the README section into a copy under the work folder: its
numbers mean nothing; it checks that the command works before GPU time is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import PeakMemory, measure, synchronize
from benchmarks.bench_gpu_train import ANALYTIC_GFLOP_PER_IMAGE_384x144 as ANALYTIC_GFLOP_PER_IMAGE
from benchmarks.bench_gpu_train import detect_peak_tflops, step_flops, time_loader
from benchmarks.bench_train_step import adam, amp_dtype, build_idkl, idkl_step_fn, make_batch
from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.data import CrossModalityIdentitySampler, build_dataset, write_synthetic
from idkl_lib.utils.io import atomic_write_json, atomic_write_text

NAME = "gpu_check"
REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- gpu_check:begin -->", "<!-- gpu_check:end -->"
SYSU_FULL = {"train_ids": 395, "test_ids": 96, "images_per_camera": 15}
TINY = {"train_ids": 14, "test_ids": 4, "images_per_camera": 2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.{NAME}", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dry-run", action="store_true", help="every path at tiny sizes on the CPU (a smoke test)")
    parser.add_argument("--work-dir", type=Path, default=REPO / "runs" / NAME, help="dataset, runs and README copies")
    parser.add_argument("--data-root", type=Path, default=None, help="an existing SYSU-MM01 folder (real or synthetic)")
    parser.add_argument("--image-size", default="288x144", help="HxW of the synthetic JPEGs")
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed repeat (10)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats of each step variant (3)")
    parser.add_argument("--loader-batches", type=int, default=None, help="batches timed for the loader (30)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the detected dense bf16 peak")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: pipeline,compile,torchrun")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / f"{NAME}.json")
    parser.add_argument("--bench-readme", type=Path, default=None, help="benchmarks README to update (dry run: a copy)")
    args = parser.parse_args(argv)
    tiny = args.dry_run
    defaults = (
        {"steps": 1, "repeats": 1, "loader_batches": 2} if tiny else {"steps": 10, "repeats": 3, "loader_batches": 30}
    )
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    match = re.fullmatch(r"(\d+)x(\d+)", args.image_size)
    if not match:
        parser.error(f"--image-size {args.image_size!r}: use HxW, e.g. 288x144")
    args.image_hw = (64, 32) if tiny else (int(match[1]), int(match[2]))
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = args.skip - {"pipeline", "compile", "torchrun"}
    if unknown:
        parser.error(f"--skip {sorted(unknown)}: choose from pipeline, compile, torchrun")
    return args


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """The training parameters of the run (the ``full`` preset; tiny sizes for the dry run)."""
    if args.dry_run:
        return {"arch": "resnet18", "base_width": 8, "height": 64, "width": 32, "p": 4, "k": 2, "num_workers": 0}
    return {"arch": "resnet50", "base_width": 64, "height": 384, "width": 144, "p": 12, "k": 10, "num_workers": 8}


def prepare_dataset(args: argparse.Namespace) -> Path:
    if args.data_root is not None:
        return args.data_root
    sizes = TINY if args.dry_run else SYSU_FULL
    root = args.work_dir / "sysu_synthetic"
    start = time.perf_counter()
    write_synthetic(
        root,
        layout="sysu",
        num_train_ids=sizes["train_ids"],
        num_test_ids=sizes["test_ids"],
        images_per_camera=sizes["images_per_camera"],
        height=args.image_hw[0],
        width=args.image_hw[1],
        seed=0,
        overwrite=True,
        workers=min(16, os.cpu_count() or 1),
    )
    print(f"[{NAME}] dataset ready in {root} ({time.perf_counter() - start:.0f} s)", flush=True)
    return root


class GpuMemorySampler:
    """Highest ``memory.used`` (MiB) of every GPU reported by ``nvidia-smi`` while the block runs (None without it)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_mib: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _query(self) -> list[float] | None:
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return [float(x) for x in out.split()]

    def _run(self) -> None:
        while not self._stop.is_set():
            used = self._query()
            if used:
                self.peak_mib = max(self.peak_mib or 0.0, max(used))
            time.sleep(self.interval)

    def __enter__(self) -> GpuMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_pipeline_epoch(args: argparse.Namespace, root: Path, device: torch.device) -> dict[str, Any]:
    """One epoch through the pipeline's ``full`` preset (notebook 02 only); wall time, img/s, GPU memory."""
    from idkl_lib.pipeline.run import run_pipeline

    params: dict[str, Any] = {
        "data_root": str(root),
        "pretrained": False,
        "epochs": 1,
        "milestones": [],
        "final_eval": False,
        "device": device.type,
    }
    if args.dry_run:
        params |= {k: v for k, v in recipe(args).items()} | {"cpu_threads": 1}
    run_dir = args.work_dir / "pipeline_full_1epoch"
    start = time.perf_counter()
    with GpuMemorySampler() as gpu_mem:
        result = run_pipeline(
            run_dir, preset="full", params=params, notebooks_dir=REPO / "notebooks", only=["02_train"], verbose=False
        )
    wall = time.perf_counter() - start
    step = next(s for s in result.steps if s.name == "02_train")
    return {
        "wall_seconds": wall,
        "notebook_seconds": step.duration_s,
        "images_per_s": step.metrics.get("images_per_second"),
        "steps": step.metrics.get("steps"),
        "gpu_memory_used_peak_mib": gpu_mem.peak_mib,
        "run_dir": str(run_dir),
    }


def time_steps(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Step images/s on a resident batch: bf16 vs float32, eager vs compiled; MFU; peak memory."""
    r = recipe(args)
    weights = LossWeights.preset("sysu")
    batch = make_batch(r["p"], r["k"], r["height"], r["width"], 395, device, True)
    peak, peak_source = detect_peak_tflops(device, args.peak_tflops)
    out: dict[str, Any] = {"batch": batch.size, "peak_tflops": peak, "peak_source": peak_source}
    variants = [("bf16_eager", "bf16", False), ("fp32_eager", "off", False)]
    if "compile" not in args.skip:
        variants.append(("bf16_compiled", "bf16", True))
    for name, amp_name, compiled in variants:
        torch.manual_seed(0)
        model = build_idkl(r["arch"], 395, device, True)
        amp = amp_dtype(amp_name)
        flops = step_flops(model, batch, device, amp) if name == "bf16_eager" else None
        forward = torch.compile(model, backend="eager" if args.dry_run else "inductor") if compiled else model
        step = idkl_step_fn(model, forward, adam(model), batch, device, amp, weights)
        for _ in range(2 if compiled else 1):  # compilation / cudnn autotuning outside the timing
            step()

        def steps(step: Any = step) -> None:
            for _ in range(args.steps):
                step()

        timing = measure({name: steps}, repeats=args.repeats, warmup=0, device=device)[name]
        step_s = timing.median / args.steps
        with PeakMemory(device) as mem:
            step()
        entry: dict[str, Any] = {
            "step_seconds": step_s,
            "images_per_s": batch.size / step_s,
            "memory": mem.as_dict(),
            "timing": timing.as_dict(),
        }
        if flops is not None:
            out["flops_per_image_counted_g"] = flops / batch.size / 1e9
        if peak:
            analytic = ANALYTIC_GFLOP_PER_IMAGE * 1e9 * batch.size
            entry["mfu_analytic"] = analytic / step_s / (peak * 1e12)
            entry["mfu_counted"] = out["flops_per_image_counted_g"] * 1e9 * batch.size / step_s / (peak * 1e12)
        out[name] = entry
        del model, forward, step
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def time_loader_alone(args: argparse.Namespace, root: Path, device: torch.device) -> dict[str, Any]:
    from idkl_lib.train.loop import build_loader

    r = recipe(args)
    cfg = TrainConfig(data_root=str(root), height=r["height"], width=r["width"], p=r["p"], k=r["k"],
                      num_workers=r["num_workers"], pretrained=False)  # fmt: skip
    dataset = build_dataset("sysu", str(root))
    loader = build_loader(cfg, dataset, epoch=0)
    ips, count, first_s = time_loader(loader, args.loader_batches, device)
    sampler = CrossModalityIdentitySampler(dataset.train, p=r["p"], k=r["k"], seed=cfg.seed)
    return {
        "workers": r["num_workers"],
        "images_per_s": ips,
        "images_timed": count,
        "first_batch_s": first_s,
        "images_per_epoch": len(sampler),
        "train_images": len(dataset.train),
    }


def run_torchrun(args: argparse.Namespace, root: Path, device: torch.device) -> dict[str, Any]:
    """One epoch with ``torchrun --standalone --nproc_per_node 1 -m idkl_lib.train``."""
    r = recipe(args)
    options = {
        "dataset": "sysu",
        "data-root": str(root),
        "pretrained": "false",
        "epochs": 1,
        "milestones": None,
        "final-eval": "false",
        "out-dir": str(args.work_dir / "torchrun_1proc"),
        "device": device.type,
        "no-progress": None,
        # P stays at the recipe's default 12: torchrun's own parser rejects "--p" as an ambiguous abbreviation
        **{key.replace("_", "-"): value for key, value in r.items() if key != "p"},
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    command += ["-m", "idkl_lib.train"]
    for key, value in options.items():
        command += [f"--{key}"] + ([] if value is None else [str(value)])
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - start
    match = re.search(r"\(([\d.]+) img/s\)", done.stdout)
    result = {
        "command": " ".join(command[2:]).replace("torch.distributed.run", "torchrun", 1),
        "returncode": done.returncode,
        "wall_seconds": wall,
        "images_per_s": float(match[1]) if match else None,
    }
    if done.returncode:
        result["stderr_tail"] = done.stderr[-2000:]
    return result


def _replace_between_markers(path: Path, body: str, heading: str) -> None:
    text = path.read_text() if path.exists() else ""
    block = f"{BEGIN}\n{body.rstrip()}\n{END}"
    lines = text.split("\n")  # the markers count only on lines of their own
    if BEGIN in lines and END in lines and lines.index(BEGIN) < lines.index(END):
        lines[lines.index(BEGIN) : lines.index(END) + 1] = [block]
        text = "\n".join(lines)
    else:
        text = text.rstrip() + f"\n\n{heading}\n\n{block}\n"
    atomic_write_text(path, text)


def _fmt(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{unit}"


def write_readmes(args: argparse.Namespace, res: dict[str, Any]) -> None:
    gpu, steps, loader = res["gpu"], res["steps"], res["loader"]
    pipe, trun = res.get("pipeline") or {}, res.get("torchrun") or {}
    b16 = steps["bf16_eager"]
    epoch_s = loader["images_per_epoch"] / b16["images_per_s"]
    mem_gib = b16["memory"]["peak_mib"] / 1024 if b16["memory"]["peak_mib"] else None
    label = "DRY RUN on CPU, numbers meaningless" if args.dry_run else f"{gpu}, {res['date']}"
    table = (
        f"Measured by `python -m benchmarks.gpu_check` ({label}); SYSU-MM01 recipe (ResNet-50 layout, 384x144, "
        f"B = 120, bf16), {loader['images_per_epoch']:,} images per epoch:\n\n"
        "| GPU | time per epoch (1 GPU) | images/s | memory per GPU |\n|---|---|---|---|\n"
        f"| {gpu} | {_fmt(epoch_s / 60, '.1f', ' min')} (step only); {_fmt(pipe.get('wall_seconds'), '.0f', ' s')} "
        f"through the pipeline | {_fmt(b16['images_per_s'])} | {_fmt(mem_gib, '.1f', ' GiB')} allocated; "
        f"{_fmt(pipe.get('gpu_memory_used_peak_mib'), '.0f', ' MiB')} in use (nvidia-smi) |\n"
    )
    rows = [
        ("step bf16, eager", b16),
        ("step float32, eager", steps["fp32_eager"]),
        ("step bf16, torch.compile", steps.get("bf16_compiled")),
    ]
    bench = [
        f"GPU check ({label}; peak {steps['peak_tflops']} TFLOPS: {steps['peak_source']}).\n",
        "| what | images/s | MFU (analytic 70.1 GFLOP/img) | MFU (counted) | peak memory |",
        "|---|---|---|---|---|",
    ]
    for name, entry in rows:
        if entry:
            bench.append(
                f"| {name} | {_fmt(entry['images_per_s'])} | {_fmt(entry.get('mfu_analytic'), '.1%')} | "
                f"{_fmt(entry.get('mfu_counted'), '.1%')} | {_fmt(entry['memory']['peak_mib'], '.0f', ' MiB')} |"
            )
    bench.append(
        f"| loader alone, {loader['workers']} workers | {_fmt(loader['images_per_s'])} | | | |\n"
        f"| one epoch via the pipeline (`full`, 02_train) | {_fmt(pipe.get('images_per_s'))} | | | "
        f"{_fmt(pipe.get('gpu_memory_used_peak_mib'), '.0f', ' MiB')} (nvidia-smi) |\n"
        f"| one epoch via `torchrun --nproc_per_node 1` | {_fmt(trun.get('images_per_s'))} | | | |"
    )
    bench.append(
        f"\nLoader keeps up: {loader['images_per_s'] >= b16['images_per_s']} "
        f"(loader {_fmt(loader['images_per_s'])} vs step {_fmt(b16['images_per_s'])} images/s). "
        f"Epoch wall time: pipeline {_fmt(pipe.get('wall_seconds'), '.0f', ' s')}, torchrun "
        f"{_fmt(trun.get('wall_seconds'), '.0f', ' s')} (exit {trun.get('returncode', 'n/a')})."
    )
    bench_readme = args.bench_readme or (
        args.work_dir / "benchmarks_README.md" if args.dry_run else REPO / "benchmarks" / "README.md"
    )
    if args.dry_run and not bench_readme.exists():
        shutil.copyfile(REPO / "benchmarks" / "README.md", bench_readme)
    body = table + "\n" + "\n".join(bench)  # one home for the numbers: the top-level README links here
    _replace_between_markers(bench_readme, body, "## GPU check (`python -m benchmarks.gpu_check`)")
    res["readmes"] = [str(bench_readme)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        print(f"[{NAME}] needs a CUDA GPU; on a CPU run it with --dry-run to check the code paths")
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.dry_run:
        torch.set_num_threads(1)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    root = prepare_dataset(args)
    res: dict[str, Any] = {
        "dry_run": args.dry_run,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "torch": torch.__version__,
        "data_root": str(root),
        "recipe": recipe(args),
    }
    print(f"[{NAME}] timing the training step variants", flush=True)
    res["steps"] = time_steps(args, device)
    print(f"[{NAME}] timing the loader", flush=True)
    res["loader"] = time_loader_alone(args, root, device)
    if "pipeline" not in args.skip:
        print(f"[{NAME}] one epoch through the pipeline's full preset", flush=True)
        res["pipeline"] = run_pipeline_epoch(args, root, device)
    if "torchrun" not in args.skip:
        print(f"[{NAME}] one epoch with torchrun --nproc_per_node 1", flush=True)
        res["torchrun"] = run_torchrun(args, root, device)
    synchronize(device)
    write_readmes(args, res)
    atomic_write_json(args.out, json.loads(json.dumps(res, default=str)))
    b16 = res["steps"]["bf16_eager"]
    print(
        f"[{NAME}] {res['gpu']}: step bf16 {b16['images_per_s']:.4g} img/s "
        f"(MFU {_fmt(b16.get('mfu_analytic'), '.1%')} analytic); loader {res['loader']['images_per_s']:.4g} img/s; "
        f"torchrun exit {res.get('torchrun', {}).get('returncode', 'skipped')}; wrote {args.out} and {res['readmes']}"
    )
    failed = res.get("torchrun", {}).get("returncode", 0)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
