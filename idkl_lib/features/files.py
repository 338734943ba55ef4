"""Feature files: retrieval features of images with their paths, labels and the model they came from (``.npz``).

Layout of the file (``numpy.savez``, read with ``allow_pickle=False``)::

    features    float32 (N, D), L2-normalised rows
    paths       str (N,), absolute image paths
    pids, camids, modalities   int64 (N,), -1 where unknown (0 visible, 1 infrared)
    meta        str, JSON: format_version, fingerprint {config_hash, file_hash}, model (path), backend (torch | onnx),
                feature, flip, height, width, normalized, layout, root, skipped, created, idkl_lib_version
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.image_files import UNKNOWN
from ..data.records import Sample
from ..utils.io import atomic_write
from .fingerprint import ModelFingerprint

__all__ = ["FEATURE_FORMAT_VERSION", "FeatureFile", "FeatureMismatchError", "check_same_model"]

FEATURE_FORMAT_VERSION = 1
_ARRAYS = ("features", "paths", "pids", "camids", "modalities", "meta")


class FeatureMismatchError(ValueError):
    """Features of two different models (or feature settings) were about to be compared."""


@dataclass(frozen=True, eq=False)
class FeatureFile:
    """Features of some images and where they came from.

    Attributes:
        features: ``float32 (N, D)`` L2-normalised retrieval features.
        paths: ``N`` image paths.
        pids: ``int64 (N,)`` identities (:data:`~idkl_lib.data.image_files.UNKNOWN` = -1 when unknown).
        camids: ``int64 (N,)`` cameras.
        modalities: ``int64 (N,)`` modalities (0 visible, 1 infrared, -1 unknown).
        meta: The model's fingerprint and the extraction settings (see the module docstring).
    """

    features: np.ndarray
    paths: tuple[str, ...]
    pids: np.ndarray
    camids: np.ndarray
    modalities: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        feats = np.ascontiguousarray(self.features, dtype=np.float32)
        if feats.ndim != 2:
            raise ValueError(f"features must be a 2-D (N, D) array, got shape {feats.shape}")
        n = feats.shape[0]
        object.__setattr__(self, "features", feats)
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        for name in ("pids", "camids", "modalities"):
            arr = np.asarray(getattr(self, name), dtype=np.int64).reshape(-1)
            if arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} entries but there are {n} features")
            object.__setattr__(self, name, arr)
        if len(self.paths) != n:
            raise ValueError(f"{len(self.paths)} paths but {n} features")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def dim(self) -> int:
        """Feature width D."""
        return int(self.features.shape[1])

    @property
    def fingerprint(self) -> ModelFingerprint:
        """The fingerprint of the model the features came from."""
        return ModelFingerprint.from_dict(self.meta.get("fingerprint", {}))

    @property
    def layout(self) -> str | None:
        """Dataset layout of the images (``"sysu"``, ``"regdb"``, ``"llcm"``), or None."""
        value = self.meta.get("layout")
        return str(value) if value else None

    def normalized(self) -> torch.Tensor:
        """The features as an L2-normalised float32 tensor (``F.normalize``, as the evaluation's protocols do),
        computed once per object and kept (the arrays of a feature file are not meant to change)."""
        cached = self.__dict__.get("_normalized")
        if cached is None:
            cached = F.normalize(torch.from_numpy(self.features).float(), dim=1)
            object.__setattr__(self, "_normalized", cached)
        return cached

    def samples(self) -> list[Sample]:
        """The images as records (labels -1 where unknown)."""
        return [
            Sample(p, int(i), int(c), int(m))
            for p, i, c, m in zip(self.paths, self.pids, self.camids, self.modalities, strict=True)
        ]

    def known_modalities(self) -> set[int]:
        """The modalities present (unknown left out)."""
        return {int(m) for m in np.unique(self.modalities) if m != UNKNOWN}

    @classmethod
    def from_samples(cls, features: np.ndarray, samples: list[Sample], meta: dict[str, Any]) -> FeatureFile:
        """A feature file of ``samples`` (in order) with ``meta``; ``created`` and the format version are added."""
        from idkl_lib import __version__

        full = {
            "format_version": FEATURE_FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "idkl_lib_version": __version__,
            **meta,
        }
        return cls(
            features,
            tuple(s.path for s in samples),
            np.array([s.pid for s in samples], dtype=np.int64),
            np.array([s.camid for s in samples], dtype=np.int64),
            np.array([s.modality for s in samples], dtype=np.int64),
            full,
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the file atomically (``.npz``; numpy appends no suffix to an open file)."""
        arrays = {
            "features": self.features,
            "paths": np.array(self.paths, dtype=np.str_),
            "pids": self.pids,
            "camids": self.camids,
            "modalities": self.modalities,
            "meta": np.array(json.dumps(self.meta, sort_keys=True)),
        }
        return atomic_write(path, lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureFile:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: not a feature file (not an ``.npz`` archive, missing arrays, a newer format).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"feature file {path} does not exist; write it with python -m idkl_lib.features")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path} is not a feature file (.npz archive); write one with python -m idkl_lib.features")
        with np.load(path, allow_pickle=False) as data:
            missing = [name for name in _ARRAYS if name not in data.files]
            if missing:
                raise ValueError(f"{path} is not a feature file: arrays {missing} are missing")
            meta = json.loads(str(data["meta"]))
            version = meta.get("format_version", 0)
            if not isinstance(version, int) or version > FEATURE_FORMAT_VERSION:
                raise ValueError(
                    f"{path} has feature-file format {version!r}; this idkl_lib reads up to {FEATURE_FORMAT_VERSION}: "
                    "upgrade idkl_lib or re-extract the features"
                )
            return cls(
                data["features"],
                tuple(str(p) for p in data["paths"]),
                data["pids"],
                data["camids"],
                data["modalities"],
                meta,
            )


def _fingerprint(meta: dict[str, Any]) -> ModelFingerprint | str:
    try:
        return ModelFingerprint.from_dict(meta.get("fingerprint", {}))
    except ValueError:
        return "no model fingerprint"


def _settings(meta: dict[str, Any]) -> tuple[object, object]:
    return meta.get("feature"), meta.get("flip")


def check_same_model(a: FeatureFile, b: FeatureFile | dict[str, Any], a_name: str, b_name: str) -> None:
    """Raise :class:`FeatureMismatchError` unless ``a`` and ``b`` (a feature file, or a model's metadata with
    ``fingerprint``, ``feature``, ``flip`` and ``dim``) come from the same model with the same feature settings.

    The message names both fingerprints (and widths or settings) and what to do.
    """
    b_meta = b.meta if isinstance(b, FeatureFile) else b
    b_dim = b.dim if isinstance(b, FeatureFile) else b_meta.get("dim")
    a_print, b_print = _fingerprint(a.meta), _fingerprint(b_meta)
    fix = f"extract both with one model (python -m idkl_lib.features --checkpoint {a.meta.get('model', 'C')} ...)"
    if b_dim is not None and int(b_dim) != a.dim:
        raise FeatureMismatchError(
            f"{a_name} has {a.dim}-wide features ({a_print}) but {b_name} has {b_dim}-wide ones ({b_print}); {fix}"
        )
    if a_print != b_print:
        raise FeatureMismatchError(
            f"{a_name} comes from another model than {b_name}: fingerprint {a_print} vs {b_print}; {fix}"
        )
    if _settings(a.meta) != _settings(b_meta):
        (fa, pa), (fb, pb) = _settings(a.meta), _settings(b_meta)
        raise FeatureMismatchError(
            f"{a_name} holds feature={fa} flip={pa} but {b_name} feature={fb} flip={pb} (model {a_print}); "
            "extract both with the same --feature and --flip"
        )
