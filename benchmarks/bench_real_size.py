"""One training step of the SYSU recipe at its real size on this machine, and one evaluation forward.

The recipe: IDKL ResNet-50 layout (random initialisation), 384x144 inputs, B = 120 (P = 12 identities x K = 10
images), 395 classes, the ``sysu`` loss weights, Adam (lr 3.5e-4, wd 5e-3), bf16 autocast (``--amp off`` for
float32), channels_last. The step is the one ``idkl_lib.train`` runs (forward under autocast, ``compute_losses`` in
float32, backward, Adam); its loss terms are checked to be finite. Then one evaluation forward of ``--eval-batch``
images (the retrieval feature, ``model.eval()``, no gradient). Reported: the time of each (a single call: a
real-size step is too slow to repeat here) and the process's peak resident memory (``ru_maxrss``).

``--processes 2`` runs the step with ``torch.distributed`` (gloo) in 2 processes under DistributedDataParallel, P
divided among them (each forwards P/2 identities x K images), and reports each process's time and peak memory. The
losses here run on each process's local half-batch: the scheme ``idkl_lib.train`` used before it gathered the
outputs. ``idkl_lib.train`` now gathers every process's outputs and computes the losses on the global batch
(docs/method.md#45-multi-gpu-training); the gather and the global loss block are not part of this measurement.

A watchdog ends the run (exit status 3, the message says so) when the resident memory of a process passes
``--max-rss-gib``, so a run that does not fit never pushes a shared machine into swapping or the OOM killer.
``--quick`` (the smoke test): ResNet-18 layout, P = 2 per process x K = 2 at 64x32.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from benchmarks._common import MiB, base_parser, release_free_memory, setup, write_result
from benchmarks.bench_train_step import adam, amp_dtype, build_idkl, make_batch
from idkl_lib.config import LossWeights
from idkl_lib.losses import compute_losses

NAME = "bench_real_size"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = base_parser(NAME, __doc__.split("\n", 1)[0])
    parser.add_argument("--arch", choices=("resnet50", "resnet18"), default=None, help="default resnet50")
    parser.add_argument("--p", type=int, default=None, help="identities per (global) batch (12)")
    parser.add_argument("--k", type=int, default=None, help="images per identity (10)")
    parser.add_argument("--height", type=int, default=None, help="input height (384)")
    parser.add_argument("--width", type=int, default=None, help="input width (144)")
    parser.add_argument("--num-classes", type=int, default=395)
    parser.add_argument("--amp", choices=("off", "bf16"), default="bf16")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--eval-batch", type=int, default=None, help="images in the evaluation forward (64)")
    parser.add_argument("--processes", type=int, default=1, help="1, or N > 1 gloo processes (P divided, local losses)")
    parser.add_argument("--max-rss-gib", type=float, default=14.0, help="abort a process above this resident size")
    args = parser.parse_args(argv)
    tiny = {"arch": "resnet18", "p": 2 * args.processes, "k": 2, "height": 64, "width": 32, "eval_batch": 4}
    full = {"arch": "resnet50", "p": 12, "k": 10, "height": 384, "width": 144, "eval_batch": 64}
    for key, value in (tiny if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.processes < 1 or args.p % args.processes or args.p // args.processes < 2:
        parser.error(f"--processes {args.processes} must divide --p {args.p} and leave >= 2 identities per process")
    return args


def _watchdog(limit_bytes: float, rank: int) -> None:
    """End this process (status 3) when its resident set passes ``limit_bytes``."""

    def run() -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while True:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * page
            if rss > limit_bytes:
                print(
                    f"[{NAME}] process {rank}: resident memory {rss / 2**30:.1f} GiB passed --max-rss-gib "
                    f"{limit_bytes / 2**30:.1f}; stopping (the step does not fit in the memory allowed)",
                    flush=True,
                )
                os._exit(3)
            time.sleep(0.05)

    threading.Thread(target=run, daemon=True).start()


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MiB  # Linux: KiB


def run_step(args: argparse.Namespace, rank: int = 0, world: int = 1) -> dict[str, Any]:
    """Build the model, run one training step and one evaluation forward; times, losses and memory."""
    device = torch.device("cpu")
    torch.manual_seed(args.seed)  # the same initial weights in every process
    model = build_idkl(args.arch, args.num_classes, device, args.channels_last)
    forward: torch.nn.Module = model
    if world > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model)
    p_local = args.p // world
    batch = make_batch(
        p_local, args.k, args.height, args.width, args.num_classes, device, args.channels_last, args.seed + rank
    )
    amp = amp_dtype(args.amp)
    weights = LossWeights.preset("sysu")
    optimizer = adam(model)
    release_free_memory()
    rss_before = _maxrss_mib()
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
        out = forward(batch.images, batch.modality)
    forward_s = time.perf_counter() - start
    losses = compute_losses(out, batch.pids, batch.modality, weights)  # as idkl_lib.train: float32 inside
    loss = torch.stack(list(losses.values())).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    step_s = time.perf_counter() - start
    step_maxrss = _maxrss_mib()
    terms = {name: float(v.detach()) for name, v in losses.items()}
    del out, losses, loss
    model.eval()
    eval_images = make_batch(1, args.eval_batch, args.height, args.width, 2, device, args.channels_last).images
    start = time.perf_counter()
    with torch.no_grad(), torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
        feats = model.embed(eval_images, torch.ones(args.eval_batch, dtype=torch.long))
    eval_s = time.perf_counter() - start
    params_finite = all(torch.isfinite(p).all() for p in model.parameters())
    return {
        "rank": rank,
        "world": world,
        "local_batch": batch.size,
        "local_ids": p_local,
        "step_seconds": step_s,
        "forward_seconds": forward_s,
        "images_per_s": batch.size / step_s,
        "loss_terms": terms,
        "losses_finite": all(math.isfinite(v) for v in terms.values()),
        "params_finite_after_step": bool(params_finite),
        "eval_seconds": eval_s,
        "eval_images_per_s": args.eval_batch / eval_s,
        "eval_feature_shape": list(feats.shape),
        "eval_feature_finite": bool(torch.isfinite(feats).all()),
        "maxrss_mib_before_step": rss_before,
        "maxrss_mib_after_step": step_maxrss,
        "maxrss_mib_end": _maxrss_mib(),
    }


def _worker(rank: int, world: int, args: argparse.Namespace, port: int, queue: Any) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    if args.threads:
        torch.set_num_threads(args.threads)
    _watchdog(args.max_rss_gib * 2**30, rank)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        queue.put(run_step(args, rank, world))
    finally:
        dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device != "cpu":
        print(f"[{NAME}] measures the CPU (bf16 autocast on CPU); for a GPU use benchmarks.gpu_check")
        return 0
    device = setup(args, repeats=1, warmup=0)
    if args.processes == 1:
        _watchdog(args.max_rss_gib * 2**30, 0)
        per_process = [run_step(args)]
    else:
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        port = 29500 + os.getpid() % 1000
        procs = [
            ctx.Process(target=_worker, args=(r, args.processes, args, port, queue)) for r in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            print(f"[{NAME}] a process failed (exit codes {[p.exitcode for p in procs]}); see the messages above")
            return 3 if 3 in failed else 1
        per_process = sorted((queue.get() for _ in procs), key=lambda r: r["rank"])
    ok = all(r["losses_finite"] and r["params_finite_after_step"] and r["eval_feature_finite"] for r in per_process)
    worst = max(per_process, key=lambda r: r["step_seconds"])
    peak = max(r["maxrss_mib_end"] for r in per_process)
    summary = (
        f"{args.arch} {args.height}x{args.width}, global B={args.p * args.k} (P={args.p} x K={args.k}), "
        f"amp={args.amp}, "
        f"{args.processes} process(es) x {worst['local_batch']} images: step {worst['step_seconds']:.1f} s "
        f"({args.p * args.k / worst['step_seconds']:.2f} img/s), eval forward of {args.eval_batch} images "
        f"{worst['eval_seconds']:.1f} s; peak RSS {peak / 1024:.2f} GiB per process; losses finite: {ok}"
    )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_result(args, NAME, device, settings, {"per_process": per_process, "all_finite": ok}, summary)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
