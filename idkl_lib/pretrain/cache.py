"""The pretrained start's configuration and its per-machine cache: :class:`PretrainConfig`, :func:`ensure_pretrained`.

One file per configuration in the cache folder (``$IDKL_PRETRAIN_CACHE``, else ``~/.cache/idkl_lib/pretrain``):
``<arch>-w<width>-<H>x<W>-<digest>.pth`` (a torchvision-keyed state dict for ``pretrained=PATH``) and a ``.json``
beside it recording the configuration, the synthetic generator's version, the times and what the file is (the CPU
stand-in for ImageNet weights). The digest covers the configuration; the generator version is checked from the
record, so a file made by another version of the generator is found, rebuilt and said so once (a warning), and an
unchanged one is reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.synthetic import GENERATOR_VERSION, RESERVED_PID_START
from ..utils.io import atomic_write_json
from ..utils.lock import folder_lock
from .classify import train_classifier
from .population import check_disjoint, render_population

FORMAT_VERSION = 1
"""Version of this module's pretraining procedure; a change rebuilds every cached file like a generator change."""
CACHE_ENV = "IDKL_PRETRAIN_CACHE"
LABEL = (
    "CPU stand-in for ImageNet weights: a backbone pretrained by identity classification on a synthetic population "
    "disjoint from every split, visible light only (idkl_lib.pretrain). A real user starts from ImageNet weights."
)


@dataclass(frozen=True, kw_only=True)
class PretrainConfig:
    """Everything that decides the pretrained weights (the cache key, with the generator version).

    Attributes:
        arch: ``"resnet18"`` or ``"resnet50"``, as the network it will start.
        base_width: Stem width of that network (64 = standard).
        height: Image height of the rendered population.
        width: Image width.
        num_ids: Identities of the population (its classes).
        images_per_id: Visible images per identity (spread over four cameras no split uses).
        epochs: Training epochs.
        lr: Adam learning rate.
        batch_size: Images per step.
        seed: Seed of the rendering and of the training.
        first_pid: First identity number; must lie in the reserved range (see :mod:`.population`).
    """

    arch: str = "resnet18"
    base_width: int = 8
    height: int = 128
    width: int = 64
    num_ids: int = 1000
    images_per_id: int = 8
    epochs: int = 10
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    first_pid: int = RESERVED_PID_START

    def __post_init__(self) -> None:
        check_disjoint(self.first_pid, self.num_ids)
        for name in ("base_width", "height", "width", "images_per_id", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PretrainConfig.{name}={value!r} must be a positive int")
        if self.arch not in ("resnet18", "resnet50"):
            raise ValueError(f"PretrainConfig.arch={self.arch!r} is unknown; valid architectures: resnet18, resnet50")
        if not isinstance(self.lr, int | float) or isinstance(self.lr, bool) or not self.lr > 0:
            raise ValueError(f"PretrainConfig.lr={self.lr!r} must be a positive number")
        if self.batch_size > self.num_ids * self.images_per_id:
            raise ValueError(
                f"PretrainConfig.batch_size={self.batch_size} exceeds the population's "
                f"{self.num_ids * self.images_per_id} images"
            )

    def key(self) -> dict[str, Any]:
        """The configuration as a JSON-able dict (lr as float, so 0.001 and 1e-3 are one key)."""
        return {**dataclasses.asdict(self), "lr": float(self.lr)}

    def file_name(self) -> str:
        """``<arch>-w<width>-<H>x<W>-<digest>.pth``."""
        digest = hashlib.sha256(json.dumps(self.key(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.arch}-w{self.base_width}-{self.height}x{self.width}-{digest}.pth"


def default_cache_dir() -> Path:
    """``$IDKL_PRETRAIN_CACHE``, else ``~/.cache/idkl_lib/pretrain``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "idkl_lib" / "pretrain"


def _record_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_record(weights: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``.json`` record beside a cached weight file, or None."""
    path = _record_path(Path(weights))
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stale_reason(weights: Path, cfg: PretrainConfig) -> str | None:
    """None when ``weights`` is a usable cache of ``cfg``; else why not ("" when there is no cache at all)."""
    record = read_record(weights)
    if record is None or not weights.is_file():
        return ""
    if record.get("config") != cfg.key():
        return "its record holds another configuration"
    if record.get("generator_version") != GENERATOR_VERSION:
        return (
            f"it was made with synthetic generator version {record.get('generator_version')}, "
            f"this generator is version {GENERATOR_VERSION}"
        )
    if record.get("format_version") != FORMAT_VERSION:
        return f"it was made by pretraining format {record.get('format_version')}, this one is {FORMAT_VERSION}"
    return None


def ensure_pretrained(
    cfg: PretrainConfig,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    split_ids: int | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """The cached pretrained weights of ``cfg`` (the CPU stand-in for ImageNet weights), made first if needed.

    Args:
        cfg: The pretraining configuration.
        cache_dir: The cache folder; None: :func:`default_cache_dir`.
        split_ids: Identities of the synthetic dataset the weights will start (ids ``1..split_ids``): checked
            against the population once more (see :func:`.population.check_disjoint`).
        force: Rebuild even a valid cache.
        log: Where progress and the time go.

    Returns:
        The path of the ``.pth`` state dict, for ``pretrained=PATH``.

    Raises:
        ValueError: a population that would overlap a split.
    """
    check_disjoint(cfg.first_pid, cfg.num_ids, split_ids)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    weights = folder / cfg.file_name()
    with folder_lock(folder, timeout=-1, purpose="written (pretrained weights)"):
        reason = "forced" if force else _stale_reason(weights, cfg)
        if reason is None:
            record = read_record(weights) or {}
            log(f"pretrained start: reusing {weights} ({LABEL.split(':')[0]}; made in {record.get('seconds', '?')} s)")
            return weights
        if reason and reason != "forced":
            warnings.warn(f"pretrained start: rebuilding {weights}: {reason}", stacklevel=2)
        log(f"pretrained start: {LABEL}")
        log(f"pretrained start: rendering {cfg.num_ids} identities x {cfg.images_per_id} visible images")
        population = render_population(cfg.seed, cfg.first_pid, cfg.num_ids, cfg.images_per_id, cfg.height, cfg.width)
        result = train_classifier(
            population.images,
            population.labels,
            arch=cfg.arch,
            base_width=cfg.base_width,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            log=log,
        )
        folder.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_name(f".{weights.name}.tmp-{os.getpid()}")
        torch.save(result.net.torchvision_state_dict(), tmp)
        os.replace(tmp, weights)
        seconds = round(population.seconds + result.seconds, 1)
        atomic_write_json(
            _record_path(weights),
            {
                "what": LABEL,
                "config": cfg.key(),
                "generator_version": GENERATOR_VERSION,
                "format_version": FORMAT_VERSION,
                "identities": [cfg.first_pid, cfg.first_pid + cfg.num_ids - 1],
                "render_seconds": round(population.seconds, 1),
                "train_seconds": round(result.seconds, 1),
                "seconds": seconds,
                "final_loss": round(result.loss, 4),
                "final_train_accuracy": round(result.accuracy, 4),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine(),
                "made": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
        log(
            f"pretrained start: wrote {weights} in {seconds} s (rendering {population.seconds:.0f} s, "
            f"training {result.seconds:.0f} s, final train accuracy {result.accuracy:.3f})"
        )
        return weights


def pretrained_start(
    recipe: dict[str, Any],
    *,
    num_ids: int | None = None,
    epochs: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """The cached pretrained start for a training recipe (its ``arch``, ``base_width``, ``height``, ``width``), for
    notebook 02's ``synthetic_pretrain`` parameter; ``num_ids`` / ``epochs`` None keep :class:`PretrainConfig`'s.

    Raises:
        ValueError: the recipe already names pretrained weights (ImageNet or a file): the two starts exclude each other.
    """
    if recipe.get("pretrained") not in (None, False):
        raise ValueError(
            f"synthetic_pretrain asks for the synthetic pretrained start, but pretrained={recipe['pretrained']!r} "
            "names other weights; pass one of the two"
        )
    base = PretrainConfig()
    cfg = PretrainConfig(
        arch=str(recipe["arch"]),
        base_width=int(recipe.get("base_width") or 64),
        height=int(recipe["height"]),
        width=int(recipe["width"]),
        num_ids=base.num_ids if num_ids is None else num_ids,
        epochs=base.epochs if epochs is None else epochs,
    )
    return ensure_pretrained(cfg, cache_dir, log=log)
