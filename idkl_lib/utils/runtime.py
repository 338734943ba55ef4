"""Run-time helpers: device resolution, seeding (incl. DataLoader workers) and the environment record.

Typical use in a notebook or in ``train.py``::

    device = resolve_device(device)            # "auto" | "cpu" | "cuda" | "cuda:1" | "mps"
    seed_everything(seed, deterministic=False)
    loader = DataLoader(ds, worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed))

``environment_info()`` is what the pipeline writes to ``reports/<run>/environment.json``.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import random
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["device_problem", "environment_info", "git_state", "resolve_device", "seed_everything", "seed_worker"]

_DEVICE_RE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")
_GIT_TIMEOUT_S = 5.0


def device_problem(device: object) -> str | None:
    """What is wrong with a device string (not whether this machine has it), or None: the accepted forms are
    ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` and ``"mps"``."""
    if not isinstance(device, str):
        return f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}"
    text = device.strip().lower()
    if text == "auto" or _DEVICE_RE.match(text):
        return None
    return "is not a device: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn a user-facing device string into a ``torch.device``, checking that it exists.

    Args:
        device: ``"auto"`` (CUDA if available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.

    Returns:
        The resolved device.

    Raises:
        ValueError: ``device`` is not one of the accepted forms, or names an accelerator this machine lacks.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    text = device.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    match = _DEVICE_RE.match(text)
    if match is None:
        raise ValueError(f"device={device!r} {device_problem(device)}")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} but no CUDA GPU is available on this machine: set the parameter device to "
                "'cpu' or 'auto' (auto picks CUDA when there is one)"
            )
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ValueError(f"device={device!r} but this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}")
    elif kind == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r} but MPS is not available here: set device to 'cpu' or 'auto'")
    elif index is not None and int(index) != 0:
        raise ValueError(f"device={device!r}: the CPU has no index, use 'cpu'")
    return torch.device(text)


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python ``random``, numpy's global generator and torch (CPU and every CUDA device).

    Args:
        seed: Seed in ``[0, 2**32)``.
        deterministic: If True, ask torch for deterministic algorithms (``warn_only=True``: an op without a
            deterministic implementation warns instead of failing), set ``cudnn.deterministic`` and turn
            ``cudnn.benchmark`` off, and set ``CUBLAS_WORKSPACE_CONFIG`` if unset (it only takes effect before
            the first cuBLAS call). If False, deterministic algorithms are switched off again; ``cudnn.benchmark``
            is left as it is.

    Raises:
        ValueError: ``seed`` is not an integer in ``[0, 2**32)``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeding the legacy global generator is the point
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=seed_worker)``: seed ``random`` and numpy in a worker from torch's worker seed.

    torch already seeds each worker's torch generator from the loader's ``generator``; this derives the python
    and numpy seeds from it, so augmentations that use them differ across workers and repeat across runs.

    Args:
        worker_id: Worker index (unused; the per-worker torch seed already encodes it).
    """
    del worker_id
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002
    random.seed(worker_seed)


def git_state(repo_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The git commit and dirty flag of the repository holding ``repo_dir`` (read-only git commands).

    Args:
        repo_dir: A folder inside the repository; default: the folder holding the ``idkl_lib`` package.

    Returns:
        ``{"git_commit": str | None, "git_dirty": bool | None}``; both None when git is missing, times out
        or ``repo_dir`` is not inside a repository.
    """
    folder = Path(repo_dir) if repo_dir is not None else Path(__file__).resolve().parents[2]
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    # --no-optional-locks: never refresh the index (another process may be using the repository).
    status = _git(folder, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}


def _git(folder: Path, *args: str) -> str | None:
    """Output of ``git -C folder args`` stripped, or None on any failure."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=_GIT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def environment_info(
    device: str | torch.device | None = None, repo_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Describe the software and hardware of this run (JSON-serialisable).

    Args:
        device: The run's device parameter; resolved with :func:`resolve_device` (an unavailable device is
            recorded as the error text instead of raising). Default: ``"auto"``.
        repo_dir: A folder inside the git repository to record (see :func:`git_state`).

    Returns:
        A flat dict: ``idkl_lib_version``, ``git_commit``, ``git_dirty``, ``python``, ``platform``, ``torch``,
        ``torchvision``, ``numpy``, ``cuda_available``, ``cuda_version``, ``cudnn_version``, ``gpus``,
        ``device``, ``hostname``, ``time`` (ISO 8601, UTC).
    """
    from idkl_lib import __version__

    try:
        import torchvision

        torchvision_version: str | None = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        torchvision_version = None
    try:
        resolved = str(resolve_device("auto" if device is None else device))
    except (ValueError, TypeError) as exc:
        resolved = f"unavailable: {exc}"
    cuda = torch.cuda.is_available()
    info: dict[str, Any] = {
        "idkl_lib_version": __version__,
        **git_state(repo_dir),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": torchvision_version,
        "numpy": np.__version__,
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cudnn_version": torch.backends.cudnn.version() if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "device": resolved,
        "hostname": socket.gethostname(),
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return info
