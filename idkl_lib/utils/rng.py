"""Snapshots of every random generator a training run uses (python, numpy's global generator, torch CPU and CUDA),
stored in checkpoints so that a resumed run draws what an uninterrupted one would."""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


def capture_rng_state() -> dict[str, Any]:
    """Snapshot python ``random``, numpy's global generator, torch CPU and every CUDA generator.

    Returns:
        A dict of tensors and plain Python values (storable in a ``weights_only`` checkpoint); pass it to
        :func:`restore_rng_state`. CUDA states are only captured when CUDA is available.
    """
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)  # type: ignore[misc]  # noqa: NPY002
    return {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generators saved by :func:`capture_rng_state`.

    CUDA states are restored for the devices present; a different device count warns.

    Args:
        state: The dict returned by :func:`capture_rng_state` (possibly after a save/load round trip).

    Raises:
        ValueError: ``state`` lacks one of the keys ``python``, ``numpy``, ``torch``.
    """
    missing = [key for key in ("python", "numpy", "torch") if key not in state]
    if missing:
        raise ValueError(f"rng state is missing {missing}; pass the dict returned by capture_rng_state()")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    keys = np_state["keys"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state(  # noqa: NPY002 - the legacy global generator is what we restore
        (np_state["name"], keys.astype(np.uint32), np_state["pos"], np_state["has_gauss"], np_state["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda_states = list(state.get("cuda") or [])
    if cuda_states:
        if not torch.cuda.is_available():
            warnings.warn("rng state holds CUDA generator states but CUDA is not available; not restored", stacklevel=2)
            return
        count = torch.cuda.device_count()
        if count != len(cuda_states):
            warnings.warn(
                f"rng state holds {len(cuda_states)} CUDA generator state(s), this machine has {count} device(s); "
                f"restoring the first {min(count, len(cuda_states))}",
                stacklevel=2,
            )
        for index, cuda_state in enumerate(cuda_states[:count]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)
