"""Versioned, atomic training checkpoints.

A checkpoint is one ``torch.save`` file holding a dict::

    {"format_version": 1, "idkl_lib_version": "0.1.0", "created": "2026-...Z",
     "model_state": {...}, "optimizer_state": ..., "scheduler_state": ..., "scaler_state": ...,
     "epoch": int, "step": int, "rng_state": ..., "config": {...}, "extra": ...}

It is written through :func:`idkl_lib.utils.io.atomic_write` (temporary file, fsync, rename), so a crash while
saving leaves the previous file intact, and read with ``torch.load(weights_only=True)``: only tensors and
plain Python containers/scalars may be stored (``config`` must be JSON-serialisable: use
``dataclasses.asdict`` and ``str`` paths). The RNG state from :func:`capture_rng_state` is stored in that
form too.

File names: :func:`checkpoint_path` gives ``<folder>/epoch_0012.pt``; :func:`latest_checkpoint` returns
the highest epoch (then step) among files named that way, else the newest ``*.pt``/``*.pth`` file (e.g. a
single ``checkpoint.pth`` overwritten every epoch), for resuming.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import errno
import json
import os
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import numpy as np
import torch

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]
from torch import nn

from idkl_lib.utils.io import atomic_write
from idkl_lib.utils.rng import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    from idkl_lib.config import TrainConfig
    from idkl_lib.models import IDKLModel

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "CheckpointError",
    "capture_rng_state",
    "checkpoint_path",
    "latest_checkpoint",
    "load_checkpoint",
    "load_model_state",
    "load_trained_model",
    "restore_rng_state",
    "save_checkpoint",
    "untrained_model",
]

CHECKPOINT_FORMAT_VERSION = 1
"""Bump when the layout of the saved dict changes; :func:`load_checkpoint` refuses newer versions."""

_NAME_RE = re.compile(r"^epoch_(\d+)(?:_step_(\d+))?\.pth?$")
_SUFFIXES = (".pt", ".pth")
_REQUIRED_KEYS = ("format_version", "model_state", "epoch", "step", "config")


class CheckpointError(ValueError):
    """A file cannot be used as an idkl_lib checkpoint (corrupt, foreign or from a newer idkl_lib), or a checkpoint
    could not be written (full disk, file-size limit, read-only folder)."""


def _library_version() -> str:
    from idkl_lib import __version__

    return __version__


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/tensors; other non-plain objects raise.

    ``torch.load(weights_only=True)`` refuses arbitrary pickled objects, so they are caught when saving rather
    than when resuming.
    """
    if isinstance(obj, np.generic):  # first: np.float64 is also a float
        return obj.item()
    if obj is None or isinstance(obj, str | int | float | bool | torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Mapping):
        return {key: _plain(value, f"{where}[{key!r}]") for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        items = [_plain(value, f"{where}[{i}]") for i, value in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(
        f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints hold only tensors, numbers, "
        "strings, None, lists, tuples and dicts (convert it, e.g. str(path), dataclasses.asdict(obj))"
    )


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
    scaler_state: Mapping[str, Any] | None = None,
    epoch: int,
    step: int,
    rng_state: Mapping[str, Any] | None = None,
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint (``path`` is replaced only once the new file is complete).

    Args:
        path: Destination file; parent folders are created.
        model_state: ``model.state_dict()`` (unwrap ``DistributedDataParallel`` first: ``model.module``).
        optimizer_state: ``optimizer.state_dict()``.
        scheduler_state: ``scheduler.state_dict()``.
        scaler_state: ``GradScaler.state_dict()``.
        epoch: Number of completed epochs.
        step: Number of completed optimizer steps.
        rng_state: :func:`capture_rng_state` output, for an exactly resumable run.
        config: The run's configuration as a JSON-serialisable dict (``dataclasses.asdict(cfg)``).
        extra: Anything else made of tensors and plain Python values (best metric, EMA weights, ...); numpy
            scalars and arrays are converted to Python numbers and tensors.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        TypeError: ``config`` is not a JSON-serialisable mapping, ``extra`` holds an object other than tensors
            and plain values, or ``model_state`` is not a mapping.
        ValueError: ``epoch`` or ``step`` is not a non-negative integer.
        CheckpointError: the file could not be written (full disk, file-size limit, read-only folder): the message
            names the file, the real cause, the free space on its file system and what to do; a previous file at
            ``path`` is unchanged.
    """
    if not isinstance(model_state, Mapping):
        raise TypeError(f"model_state must be a state dict (model.state_dict()), got {type(model_state).__name__}")
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict (dataclasses.asdict(cfg)), got {type(config).__name__}")
    if extra is not None and not isinstance(extra, Mapping):
        raise TypeError(f"extra must be a dict, got {type(extra).__name__}")
    plain_config = _plain(config, "config")
    try:
        json.dumps(plain_config, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"config must be JSON-serialisable (plain numbers, strings, lists, dicts; str paths): {exc}"
        ) from exc
    payload = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "idkl_lib_version": _library_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model_state": dict(model_state),
        "optimizer_state": optimizer_state,
        "scheduler_state": scheduler_state,
        "scaler_state": scaler_state,
        "epoch": epoch,
        "step": step,
        "rng_state": dict(rng_state) if rng_state is not None else None,
        "config": plain_config,
        "extra": _plain(extra, "extra") if extra is not None else {},
    }
    recorder: list[_RecordingWriter] = []

    def write(fh: Any) -> None:
        recorder.append(_RecordingWriter(fh))
        torch.save(payload, cast(IO[bytes], recorder[0]))

    try:
        return atomic_write(path, write)
    except (RuntimeError, OSError) as exc:
        cause = recorder[0].error if recorder and recorder[0].error is not None else exc
        if not isinstance(cause, OSError) and "inline_container" not in str(exc):
            raise  # not a failed write
        raise CheckpointError(_write_failure(Path(path), cause, _payload_bytes(payload))) from exc


class _RecordingWriter:
    """A file wrapper that keeps the OSError of a failed write: torch's zip writer swallows it and reports only
    ``[enforce fail at inline_container.cc] unexpected pos``."""

    def __init__(self, fh: Any) -> None:
        self.fh = fh
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.fh.flush()


def _payload_bytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, Mapping):
        return sum(_payload_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_payload_bytes(v) for v in obj)
    return 0


def _write_failure(path: Path, cause: BaseException, size: int) -> str:
    """A message naming the checkpoint, the real cause, the free space where it goes and what to do."""
    reason = f"{cause.strerror} (errno {cause.errno})" if isinstance(cause, OSError) and cause.strerror else str(cause)
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "unknown free space"
    hint = "free space on that disk or pass an out-dir on another disk"
    if isinstance(cause, OSError) and cause.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource is not None else -1
        shown = f"{limit} bytes" if limit >= 0 else "set"
        hint = f"the file-size limit of this process (ulimit -f: {shown}) is too small; raise it, or {hint}"
    return (
        f"could not write checkpoint {path}: {reason}. The file system of {folder} has {free}; the checkpoint needs "
        f"about {size / 2**20:.1f} MiB. To fix: {hint}. Any previous checkpoint at {path} is unchanged."
    )


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: The checkpoint file.
        map_location: Where tensors are loaded (``torch.load``'s ``map_location``).

    Returns:
        The checkpoint dict (keys listed in the module docstring).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file is truncated or corrupt, is not an idkl_lib checkpoint, or was written by a
            newer idkl_lib with a format this version cannot read.
    """
    path = Path(path)
    if not path.is_file():
        hint = ""
        if path.parent.is_dir():
            found = latest_checkpoint(path.parent)
            hint = f" (latest checkpoint in that folder: {found.name})" if found is not None else ""
        raise FileNotFoundError(f"checkpoint {path} does not exist{hint}")
    corrupt = f"{path} is truncated or not a checkpoint"
    advice = "delete it or pick the previous one"
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{corrupt}: it is not a torch.save archive ({path.stat().st_size} bytes); {advice}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        if "weights only" in str(exc).lower():
            culprit = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            what = f" such as {culprit.group(1)}" if culprit else ""
            raise CheckpointError(
                f"{path} is not an idkl_lib checkpoint: it holds pickled Python objects{what} that are not loaded "
                "for safety; checkpoints hold only tensors and plain values"
            ) from exc
        raise CheckpointError(f"{corrupt}: {type(exc).__name__}: {exc}; {advice}") from exc
    if not isinstance(obj, dict) or "format_version" not in obj:
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(
                f"{path} is a bare state_dict, not an idkl_lib checkpoint: load it with "
                "load_model_state(model, torch.load(path, weights_only=True))"
            )
        raise CheckpointError(f"{path} is not an idkl_lib checkpoint (no 'format_version' key)")
    version = obj["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path} is not an idkl_lib checkpoint (format_version={version!r})")
    if version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version} (written by idkl_lib "
            f"{obj.get('idkl_lib_version', '?')}); this idkl_lib {_library_version()} reads versions up to "
            f"{CHECKPOINT_FORMAT_VERSION}: upgrade idkl_lib"
        )
    missing = [key for key in _REQUIRED_KEYS if key not in obj]
    if missing:
        raise CheckpointError(f"{path} is not a complete idkl_lib checkpoint: missing keys {missing}")
    return obj


def load_model_state(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], strict: bool = True
) -> nn.modules.module._IncompatibleKeys:
    """Load ``state_dict`` into ``model``, explaining any mismatch.

    Args:
        model: The model to fill.
        state_dict: ``checkpoint["model_state"]`` or any state dict.
        strict: If True, missing and unexpected keys are errors; if False they are returned. Shape mismatches
            are always errors.

    Returns:
        ``load_state_dict``'s ``(missing_keys, unexpected_keys)``.

    Raises:
        ValueError: Listing the missing keys, unexpected keys and shape mismatches (key, checkpoint shape,
            model shape), with a hint when a classifier's class count differs.
        TypeError: ``state_dict`` is a whole checkpoint rather than its ``model_state``.
    """
    if "format_version" in state_dict and "model_state" in state_dict:
        raise TypeError("state_dict is a whole checkpoint: pass checkpoint['model_state']")
    own = model.state_dict()
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    shapes = [
        (key, tuple(state_dict[key].shape), tuple(own[key].shape))
        for key in own
        if key in state_dict and tuple(state_dict[key].shape) != tuple(own[key].shape)
    ]
    if shapes or (strict and (missing or unexpected)):
        raise ValueError(_mismatch_message(missing, unexpected, shapes, strict))
    return model.load_state_dict(dict(state_dict), strict=strict)


def _mismatch_message(
    missing: list[str], unexpected: list[str], shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]], strict: bool
) -> str:
    lines = ["the state dict does not fit the model:"]
    if shapes:
        lines.append(f"  shape mismatches ({len(shapes)}), checkpoint vs model:")
        for key, theirs, ours in shapes:
            note = ""
            if "classifier" in key and len(theirs) == len(ours) >= 1 and theirs[1:] == ours[1:]:
                note = f": checkpoint was trained with {theirs[0]} classes, the model was built for {ours[0]}"
            lines.append(f"    {key}: {theirs} vs {ours}{note}")
    if strict and missing:
        lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    if strict and unexpected:
        more = " ..." if len(unexpected) > 20 else ""
        lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}{more}")
    if unexpected and all(key.startswith("module.") for key in unexpected):
        lines.append("  hint: keys start with 'module.' (saved from DistributedDataParallel): save model.module")
    lines.append("build the model with the configuration stored in checkpoint['config'], or pick the right checkpoint")
    return "\n".join(lines)


def checkpoint_path(folder: str | os.PathLike[str], epoch: int, step: int | None = None) -> Path:
    """The conventional file name for a checkpoint: ``<folder>/epoch_0012.pt`` or ``epoch_0012_step_000345.pt``."""
    name = f"epoch_{epoch:04d}" + (f"_step_{step:06d}" if step is not None else "") + ".pt"
    return Path(folder) / name


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The checkpoint to resume from in ``folder`` (not recursive).

    Files named as :func:`checkpoint_path` does are ordered by (epoch, step); if there are none, the most
    recently modified ``*.pt``/``*.pth`` file is taken. Hidden files (atomic-write temporaries) are ignored.

    Args:
        folder: Folder to search. A missing folder has no checkpoint.

    Returns:
        The path, or None if there is none.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = [p for p in folder.iterdir() if p.suffix in _SUFFIXES and not p.name.startswith(".") and p.is_file()]
    named = [(m, p) for p in files if (m := _NAME_RE.match(p.name)) is not None]
    if named:
        return max(named, key=lambda mp: (int(mp[0].group(1)), int(mp[0].group(2) or -1)))[1]
    return max(files, key=lambda p: p.stat().st_mtime_ns, default=None)


# ------------------------------------------------------------------------------------------ rebuilding a model


def load_trained_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[IDKLModel, TrainConfig, dict[str, Any]]:
    """Rebuild a trained model from a checkpoint written by :func:`idkl_lib.train.train`.

    The architecture comes from the training configuration stored in the checkpoint; the weights are the
    checkpoint's (no ImageNet download). The model is returned in eval mode on ``device``.

    Returns:
        ``(model, training config, checkpoint dict)``.

    Raises:
        FileNotFoundError / idkl_lib.checkpoint.CheckpointError: Missing or unreadable file.
        ValueError: The stored configuration does not build a model matching the weights.
    """
    from idkl_lib.config import TrainConfig
    from idkl_lib.models import build_model
    from idkl_lib.utils.runtime import resolve_device

    state = load_checkpoint(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    num_classes = state.get("extra", {}).get("num_classes")
    if num_classes is None:  # older checkpoints: the classifier's row count
        num_classes = int(state["model_state"]["classifier_sh.weight"].shape[0])
    model_cfg = cfg.model_config(int(num_classes))
    model = build_model(dataclasses.replace(model_cfg, pretrained=False))  # the weights come from the checkpoint
    load_model_state(model, state["model_state"])
    return model.to(resolve_device(device)).eval(), cfg, state


def untrained_model(cfg: TrainConfig, num_classes: int, device: str | torch.device = "cpu") -> IDKLModel:
    """The network of ``cfg`` as training starts (same seed, same initialisation), in eval mode: the reference
    that shows how much of a score is learned."""
    from idkl_lib.models import build_model
    from idkl_lib.utils.runtime import seed_everything

    seed_everything(cfg.seed)
    return build_model(cfg.model_config(num_classes)).to(device).eval()
