"""The two ways to run a trained model on images: PyTorch (a checkpoint) and onnxruntime (an ONNX export).

Both give L2-normalised retrieval features of :class:`~idkl_lib.data.records.Sample` records, read the images with the
evaluation's test transform (resize, ImageNet mean/std) and report which model they are (:class:`ModelInfo`). An ONNX
export carries its checkpoint's fingerprint and preprocessing as metadata (:data:`ONNX_META_KEYS`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import transforms as T

from ..data.image_dataset import ImageDataset
from ..data.records import Sample
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from .fingerprint import ModelFingerprint

__all__ = [
    "FEATURES",
    "ONNX_META_KEYS",
    "ModelBackend",
    "ModelInfo",
    "OnnxBackend",
    "TorchBackend",
    "open_model",
]

FEATURES = ("shared", "specific", "concat")
ONNX_META_KEYS = ("idkl_model_info",)
"""Metadata key of an ONNX export holding :class:`ModelInfo` as JSON (also readable with ``onnx`` or Netron)."""
_ONNX_KEY = ONNX_META_KEYS[0]


@dataclass(frozen=True)
class ModelInfo:
    """What a model computes and which model it is.

    Attributes:
        fingerprint: Of the checkpoint (an ONNX export keeps its checkpoint's).
        feature: ``"shared"``, ``"specific"`` or ``"concat"``.
        flip: Flip averaging.
        height: Input height the images are resized to.
        width: Input width.
        mean: Per-channel mean subtracted after scaling pixel values to 0..1.
        std: Per-channel standard deviation divided by.
        dim: Feature width D.
        backend: ``"torch"`` or ``"onnx"``.
        path: The checkpoint or ONNX file.
    """

    fingerprint: ModelFingerprint
    feature: str
    flip: bool
    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    dim: int
    backend: str
    path: str

    def meta(self) -> dict[str, Any]:
        """The entries a feature file records about its model."""
        out = asdict(self)
        out["fingerprint"] = self.fingerprint.as_dict()
        out["model"] = out.pop("path")
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    def onnx_metadata(self) -> dict[str, str]:
        """ONNX ``metadata_props`` of an export of this model (plus a plain-language ``preprocessing`` entry)."""
        info = {**self.meta(), "backend": "onnx", "normalized": True}
        info.pop("model")
        text = (
            f"RGB image resized to {self.height}x{self.width} (height x width, bilinear), pixel values / 255, then "
            f"(x - mean) / std per channel with mean {list(self.mean)} and std {list(self.std)}; input float32 "
            f"(batch, 3, {self.height}, {self.width}) named 'images'; output 'features' (batch, {self.dim}), "
            "L2-normalised: rank by Euclidean distance"
        )
        return {_ONNX_KEY: json.dumps(info, sort_keys=True), "preprocessing": text}

    @classmethod
    def from_onnx_metadata(cls, metadata: Mapping[str, str], path: str) -> ModelInfo:
        """Inverse of :meth:`onnx_metadata`; ``ValueError`` for an ONNX file not exported by idkl_lib."""
        if _ONNX_KEY not in metadata:
            raise ValueError(
                f"{path} has no {_ONNX_KEY!r} metadata: it was not exported by python -m idkl_lib.export; re-export it"
            )
        info = json.loads(metadata[_ONNX_KEY])
        return cls(
            ModelFingerprint.from_dict(info["fingerprint"]),
            str(info["feature"]),
            bool(info["flip"]),
            int(info["height"]),
            int(info["width"]),
            tuple(float(v) for v in info["mean"]),  # type: ignore[arg-type]
            tuple(float(v) for v in info["std"]),  # type: ignore[arg-type]
            int(info["dim"]),
            "onnx",
            path,
        )


class ModelBackend(Protocol):
    """A model that embeds images."""

    info: ModelInfo

    def embed(
        self, samples: Sequence[Sample], batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> np.ndarray:
        """``float32 (N, D)`` L2-normalised features of ``samples``, in order."""
        ...


def _check_settings(feature: str | None, flip: bool | None) -> None:
    if feature is not None and feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; use one of {', '.join(FEATURES)}")
    if flip is not None and not isinstance(flip, bool):
        raise TypeError(f"flip must be a bool, got {flip!r}")


class TorchBackend:
    """A checkpoint run with PyTorch through :func:`idkl_lib.eval.features.extract_features` (as the evaluation)."""

    def __init__(
        self,
        checkpoint: str | os.PathLike[str],
        device: str = "cpu",
        feature: str | None = None,
        flip: bool | None = None,
    ) -> None:
        from ..checkpoint import load_trained_model

        _check_settings(feature, flip)
        self.model, cfg, state = load_trained_model(checkpoint, device)
        self.device = next(self.model.parameters()).device
        feature = feature or "shared"
        dim = self.model.feature_dim * (2 if feature == "concat" else 1)
        self.info = ModelInfo(
            ModelFingerprint.of_checkpoint(checkpoint, state["config"]),
            feature,
            bool(flip),
            cfg.height,
            cfg.width,
            IMAGENET_MEAN,
            IMAGENET_STD,
            dim,
            "torch",
            str(Path(checkpoint).resolve()),
        )
        self.config = cfg

    def embed(
        self, samples: Sequence[Sample], batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> np.ndarray:
        from ..eval.features import extract_features

        feats = extract_features(
            self.model,
            samples,
            self.info.height,
            self.info.width,
            which=self.info.feature,  # type: ignore[arg-type]
            flip=self.info.flip,
            batch_size=batch_size,
            num_workers=num_workers,
            device=self.device,
            progress=progress,
            desc="features",
        )
        return F.normalize(feats, dim=1).numpy()


class OnnxBackend:
    """An ONNX export (:mod:`idkl_lib.export`) run with onnxruntime; the model's preprocessing comes from its
    metadata. Needs the ``onnx`` extra (``pip install idkl_lib[onnx]``)."""

    def __init__(
        self, path: str | os.PathLike[str], device: str = "cpu", feature: str | None = None, flip: bool | None = None
    ) -> None:
        _check_settings(feature, flip)
        self.session = onnx_session(path, device)
        self.info = ModelInfo.from_onnx_metadata(
            self.session.get_modelmeta().custom_metadata_map, str(Path(path).resolve())
        )
        for name, asked, built in (("feature", feature, self.info.feature), ("flip", flip, self.info.flip)):
            if asked is not None and asked != built:
                raise ValueError(
                    f"{path} was exported with {name}={built}, not {asked}; drop the option or re-export with it"
                )
        self.input_name = self.session.get_inputs()[0].name

    def transform(self) -> T.Compose:
        """The model's preprocessing (the evaluation's test transform with the metadata's size, mean and std)."""
        size = (self.info.height, self.info.width)
        return T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(self.info.mean, self.info.std)])

    def run(self, images: np.ndarray) -> np.ndarray:
        """Features of a preprocessed ``float32 (B, 3, H, W)`` batch."""
        return np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(images, np.float32)})[0])

    def embed(
        self, samples: Sequence[Sample], batch_size: int = 64, num_workers: int = 0, progress: bool = False
    ) -> np.ndarray:
        if len(samples) == 0:
            raise ValueError("no images to embed")
        loader = DataLoader(
            ImageDataset(samples, self.transform()), batch_size=batch_size, shuffle=False, num_workers=num_workers
        )
        iterator: Any = loader
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, desc="features (onnxruntime)", leave=False)
        chunks = [self.run(images.numpy()) for images, *_ in iterator]
        feats = np.concatenate(chunks).astype(np.float32)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


def onnx_session(model: str | os.PathLike[str] | bytes, device: str = "cpu") -> Any:
    """An onnxruntime ``InferenceSession`` of a file or of serialised bytes; CUDA when ``device`` asks for it and
    onnxruntime has it. ``ImportError`` naming the extra to install when onnxruntime is missing."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "onnxruntime is not installed: pip install 'idkl_lib[onnx]' (or onnx onnxruntime) to use ONNX models"
        ) from exc
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    source = model if isinstance(model, bytes) else os.fspath(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for unreadable files
        name = "the exported model" if isinstance(model, bytes) else os.fspath(model)
        raise ValueError(f"onnxruntime cannot load {name} ({type(exc).__name__}: {exc}); re-export it") from exc


def open_model(
    path: str | os.PathLike[str], device: str = "cpu", feature: str | None = None, flip: bool | None = None
) -> ModelBackend:
    """The backend of a model file: an ``.onnx`` file runs with onnxruntime, anything else is read as a checkpoint.

    ``feature`` / ``flip`` default to the shared feature without flip for a checkpoint, and must match the export's
    settings for an ONNX file (None takes them).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist; pass a checkpoint (.pth/.pt) or an ONNX export (.onnx)")
    if path.suffix.lower() == ".onnx":
        return OnnxBackend(path, device, feature, flip)
    return TorchBackend(path, device, feature, flip)
