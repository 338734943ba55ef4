"""Helpers shared by the benchmark scripts: timing, peak memory, FLOP counting, the machine record and the result file.

Timing rules (every benchmark follows them):

* ``time.perf_counter`` around the measured call, with ``torch.cuda.synchronize`` before and after on a GPU;
* warm-up calls first (allocator, cuDNN autotuning, lazy initialisation), then several repeats;
* the candidate and its baseline are measured *interleaved* (A, B, A, B, ...) so that drift and load from other
  processes hit both alike; the reported ratio is the ratio of the medians, with the spread of the per-repeat ratios;
* median and inter-quartile range (plus min / max) are reported, never a single run.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``; on CPU the process's
resident set size sampled by a background thread (``/proc/self/statm``) above its value on entry, plus the
process-lifetime ``resource.getrusage().ru_maxrss``. ``tracemalloc`` is used only for numpy-only code (it sees numpy's
allocations but not torch's). Memory is measured in a separate, untimed call, because the sampler thread competes for
the GIL.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import math
import os
import platform
import resource
import statistics
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idkl_lib.utils.io import atomic_write_json
from idkl_lib.utils.runtime import git_state

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MiB = 1024**2


# ------------------------------------------------------------------------------------------------------ arguments
def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The options every benchmark shares: ``--device``, ``--quick``, ``--out``, ``--repeats``, ``--warmup``,
    ``--threads``, ``--seed``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m benchmarks.{name}",
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats (the smoke test)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR / f"{name}.json", help="JSON result file (written atomically)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default: per benchmark)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up calls (default: per benchmark)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    return parser


def setup(args: argparse.Namespace, repeats: int, warmup: int) -> torch.device:
    """Apply ``--threads``/``--seed``, fill in the default repeats / warm-up and return the device.

    Exits with a clear message when ``--device cuda`` is asked for on a machine without a GPU.
    """
    if args.repeats is None:
        args.repeats = repeats
    if args.warmup is None:
        args.warmup = warmup
    if args.repeats < 1 or args.warmup < 0:
        raise SystemExit(f"--repeats must be >= 1 and --warmup >= 0, got {args.repeats} and {args.warmup}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return resolve_device(args.device)


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``; exits (status 2) with a message when CUDA is asked for and absent."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for, but torch sees no CUDA GPU on this machine; use --device cpu")
    return torch.device(name)


# --------------------------------------------------------------------------------------------------------- timing
def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work (no-op on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed repeat."""

    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "q1_s": self.q1,
            "q3_s": self.q3,
            "min_s": self.min,
            "max_s": self.max,
            "repeats": len(self.samples),
            "samples_s": list(self.samples),
        }

    def fmt(self, unit: str = "ms") -> str:
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[unit]
        return (
            f"{self.median * scale:.4g} {unit} (IQR {self.q1 * scale:.4g}-{self.q3 * scale:.4g}, "
            f"min {self.min * scale:.4g}, max {self.max * scale:.4g}, n={len(self.samples)})"
        )


def time_call(fn: Callable[[], object], device: torch.device | str) -> float:
    """Seconds of one call of ``fn``, synchronising the GPU before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def measure(
    fns: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int, device: torch.device | str
) -> dict[str, Timing]:
    """Time several callables interleaved: ``warmup`` untimed rounds, then ``repeats`` rounds, each calling every
    function once in the given order. Returns ``{name: Timing}``."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
        synchronize(device)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, device))
    return {name: Timing(tuple(values)) for name, values in samples.items()}


def ratio(slow: Timing, fast: Timing) -> dict[str, float]:
    """``slow / fast``: the ratio of the medians, and the median / min / max of the per-repeat ratios (the two were
    measured interleaved, so repeat i of each ran at nearly the same moment)."""
    paired = [s / f for s, f in zip(slow.samples, fast.samples, strict=False) if f > 0]
    return {
        "ratio_of_medians": slow.median / fast.median if fast.median > 0 else math.inf,
        "paired_median": statistics.median(paired) if paired else math.nan,
        "paired_min": min(paired) if paired else math.nan,
        "paired_max": max(paired) if paired else math.nan,
    }


# --------------------------------------------------------------------------------------------------------- memory
def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_free_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``), so the RSS falls to the live set and a
    later peak above it measures what the measured code allocated (no-op where glibc is absent)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def maxrss_bytes() -> int:
    """Process-lifetime peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


class PeakMemory:
    """Peak memory of the code inside ``with PeakMemory(device) as mem:``; read ``mem.as_dict()`` afterwards.

    CUDA: ``peak_bytes`` = ``torch.cuda.max_memory_allocated`` during the block, ``start_bytes`` the allocated memory
    on entry (so ``peak_bytes - start_bytes`` is what the block added). CPU: free heap pages are first returned to the
    OS (:func:`release_free_memory`); ``peak_bytes`` = the highest resident set size sampled every ``interval``
    seconds, ``start_bytes`` the RSS on entry; ``maxrss_bytes`` is the process-lifetime peak (an upper bound that also
    covers anything the sampler missed).
    """

    def __init__(self, device: torch.device | str, interval: float = 0.002) -> None:
        self.device = torch.device(device)
        self.interval = interval
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            release_free_memory()
            self.start_bytes = _rss_bytes()
            self.peak_bytes = self.start_bytes
            if self.start_bytes is not None:
                self._thread = threading.Thread(target=self._sample, daemon=True)
                self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            rss = _rss_bytes()
            if rss is not None and (self.peak_bytes is None or rss > self.peak_bytes):
                self.peak_bytes = rss
            time.sleep(self.interval)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            rss = _rss_bytes()
            if rss is not None and self.peak_bytes is not None:
                self.peak_bytes = max(self.peak_bytes, rss)

    def as_dict(self) -> dict[str, Any]:
        added = None
        if self.peak_bytes is not None and self.start_bytes is not None:
            added = (self.peak_bytes - self.start_bytes) / MiB
        out: dict[str, Any] = {
            "kind": "cuda max_memory_allocated" if self.device.type == "cuda" else "cpu sampled RSS",
            "peak_mib": None if self.peak_bytes is None else self.peak_bytes / MiB,
            "start_mib": None if self.start_bytes is None else self.start_bytes / MiB,
            "added_mib": added,
        }
        if self.device.type != "cuda":
            out["process_maxrss_mib"] = maxrss_bytes() / MiB
        return out


def traced_peak_mib(fn: Callable[[], object]) -> float:
    """Peak Python + numpy heap (``tracemalloc``) allocated while ``fn`` runs, in MiB (torch allocations are not
    seen). Slows pure-Python code down, so never call it inside a timed region."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return (peak - base) / MiB


# ---------------------------------------------------------------------------------------------------------- FLOPs
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs (2 per multiply-add) of the matmuls / convolutions ``fn`` runs, by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_dispatched_ops(fn: Callable[[], object]) -> dict[str, int]:
    """Aten operators ``fn`` dispatches below autograd (forward and backward kernels alike): ``total``, ``views``
    (no kernel) and ``kernels`` = total - views. On a GPU each kernel is at least one launch, so this bounds the
    launch overhead of small-tensor code such as the loss block."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = {"total": 0, "views": 0}

    class _Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            counts["total"] += 1
            counts["views"] += int(bool(getattr(func, "is_view", False)))
            return func(*args, **(kwargs or {}))

    with _Count():
        fn()
    return {**counts, "kernels": counts["total"] - counts["views"]}


# -------------------------------------------------------------------------------------------------------- machine
def cpu_model() -> str:
    """``model name`` of the first processor in ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: torch.device | str) -> dict[str, Any]:
    """What ran the benchmark: CPU model and cores, load, library versions, GPU, date, git commit."""
    import torchvision

    device = torch.device(device)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15min": load,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "device": str(device),
        **git_state(Path(__file__).resolve().parent),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {
            "gpu": torch.cuda.get_device_name(device),
            "gpu_memory_gib": props.total_memory / 1024**3,
            "gpu_capability": f"{props.major}.{props.minor}",
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
        }
    return info


# ---------------------------------------------------------------------------------------------------------- output
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (Path, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, Timing):
        return _jsonable(obj.as_dict())
    return obj


def write_result(
    args: argparse.Namespace,
    name: str,
    device: torch.device | str,
    settings: Mapping[str, Any],
    results: Mapping[str, Any],
    summary: str,
    goal: Mapping[str, Any] | None = None,
) -> Path:
    """Print the summary line and write the JSON result file atomically (non-finite numbers become ``null``)."""
    payload = {
        "benchmark": name,
        "command": " ".join([f"python -m benchmarks.{name}", *sys.argv[1:]]),
        "quick": bool(args.quick),
        "machine": machine_info(device),
        "settings": dict(settings),
        "timing": {"repeats": args.repeats, "warmup": args.warmup, "clock": "time.perf_counter, interleaved"},
        "results": dict(results),
        "goal": dict(goal) if goal is not None else None,
        "summary": summary,
    }
    path = atomic_write_json(args.out, _jsonable(payload))
    print(f"[{name}] {summary}")
    print(f"[{name}] wrote {path}")
    return path
