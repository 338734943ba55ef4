"""ONNX export of the retrieval path (image batch -> L2-normalised feature) with a parity check against PyTorch.

The exported graph is :class:`~idkl_lib.models.retrieval.RetrievalModule` with a dynamic batch dimension (input
``images`` ``float32 (batch, 3, H, W)``, output ``features`` ``(batch, D)``); the preprocessing it expects (size, mean,
std), the feature settings and the checkpoint's fingerprint are written into the file's metadata
(:meth:`~idkl_lib.features.backends.ModelInfo.onnx_metadata`). The export is serialised in memory, run with
onnxruntime on a batch of images and compared with PyTorch; only a file that passes is written (atomically), so a
failed check leaves nothing behind.

TorchScript-based exporter (``torch.onnx.export(dynamo=False)``): it needs only the ``onnx`` package, where the
newer exporter also needs ``onnxscript``; its deprecation warning is silenced here.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import load_trained_model
from ..data.image_files import collect_images
from ..data.records import Sample
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..features.backends import FEATURES, ModelInfo, onnx_session
from ..features.fingerprint import ModelFingerprint
from ..models.retrieval import RetrievalModule
from ..utils.io import atomic_write_bytes

__all__ = ["DEFAULT_TOLERANCE", "ExportResult", "ParityError", "ParityReport", "export_onnx", "parity_batch"]

DEFAULT_TOLERANCE = 1e-4
"""Largest accepted absolute difference between onnxruntime's and PyTorch's normalised features."""
OPSET = 17
_TOPK = 10


class ParityError(ValueError):
    """The exported model's features differ from PyTorch's beyond the tolerance (the file was not written)."""


@dataclass(frozen=True)
class ParityReport:
    """onnxruntime against PyTorch on one batch.

    Attributes:
        batch: Images compared.
        source: Where they came from (a folder, or random inputs).
        max_abs_diff: Largest absolute difference of the normalised features.
        min_cosine: Smallest cosine similarity between the two features of an image.
        same_topk: Whether every image's top-k neighbours within the batch (k = min(10, batch - 1)) are the same.
        tolerance: The accepted ``max_abs_diff``.
    """

    batch: int
    source: str
    max_abs_diff: float
    min_cosine: float
    same_topk: bool
    tolerance: float

    @property
    def passed(self) -> bool:
        """Within tolerance and the same top-k lists."""
        return self.max_abs_diff <= self.tolerance and self.same_topk

    def line(self) -> str:
        """``parity on 16 images (...): max abs diff 3.1e-07, min cosine 1.000000, top-10 identical``."""
        k = min(_TOPK, self.batch - 1)
        return (
            f"parity on {self.batch} images ({self.source}): max abs diff {self.max_abs_diff:.3g} "
            f"(tolerance {self.tolerance:g}), min cosine {self.min_cosine:.6f}, "
            f"top-{k} lists {'identical' if self.same_topk else 'DIFFERENT'}"
        )


@dataclass(frozen=True)
class ExportResult:
    """A written export: the file, its model info, the parity check, the export time and the file size."""

    path: Path
    info: ModelInfo
    parity: ParityReport
    seconds: float
    size_bytes: int


def parity_batch(
    samples: Sequence[Sample] | None, height: int, width: int, batch: int, seed: int = 0
) -> tuple[torch.Tensor, str]:
    """A preprocessed ``(B, 3, H, W)`` batch: ``batch`` images spread over ``samples`` (the test transform), or seeded
    random normal inputs when there are none; with a description of the source."""
    if samples:
        from ..data.image_dataset import load_images

        picks = np.linspace(0, len(samples) - 1, num=min(batch, len(samples))).round().astype(int)
        return load_images([samples[i] for i in picks], height, width), f"{len(picks)} of {len(samples)} images"
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=generator), "random inputs"


def _default_samples(config: dict[str, Any]) -> list[Sample]:
    """The test images of the dataset the checkpoint was trained on, when they are still there."""
    root = config.get("data_root")
    if not root or not Path(root).is_dir():
        return []
    try:
        return list(collect_images([root], split="test").samples)
    except (OSError, ValueError):
        return []


def _topk(feats: np.ndarray) -> np.ndarray:
    dist = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(dist, np.inf)
    k = max(1, min(_TOPK, feats.shape[0] - 1))
    return np.argsort(dist, axis=1, kind="stable")[:, :k]


def compare(reference: np.ndarray, exported: np.ndarray, source: str, tolerance: float) -> ParityReport:
    """:class:`ParityReport` of two ``(B, D)`` feature batches (PyTorch's, onnxruntime's)."""
    diff = float(np.abs(reference - exported).max())
    norms = np.linalg.norm(reference, axis=1) * np.linalg.norm(exported, axis=1)
    cosine = float(((reference * exported).sum(axis=1) / np.maximum(norms, 1e-12)).min())
    same = bool(np.array_equal(_topk(reference), _topk(exported))) if reference.shape[0] > 1 else True
    return ParityReport(reference.shape[0], source, diff, cosine, same, tolerance)


def _serialise(module: RetrievalModule, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings on shape checks
        torch.onnx.export(
            module,
            (example,),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _with_metadata(model_bytes: bytes, metadata: dict[str, str]) -> bytes:
    import onnx

    proto = onnx.load_from_string(model_bytes)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = metadata["preprocessing"]
    proto.producer_name = "idkl_lib"
    return proto.SerializeToString()


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    feature: str = "shared",
    flip: bool = False,
    images: Sequence[str | os.PathLike[str]] | None = None,
    batch: int = 16,
    tolerance: float = DEFAULT_TOLERANCE,
    device: str = "cpu",
) -> ExportResult:
    """Export ``checkpoint``'s retrieval path to ONNX at ``out`` after checking it against PyTorch.

    Args:
        checkpoint: A training checkpoint.
        out: The ``.onnx`` file to write (only once the check passes; atomically).
        feature: ``"shared"`` (the paper's retrieval feature), ``"specific"`` or ``"concat"``.
        flip: Export flip averaging into the graph.
        images: Images of the parity batch (files, folders, lists); default the test images of the dataset the
            checkpoint was trained on, else seeded random inputs.
        batch: Images in the parity batch (at least 2; the export itself uses a batch of 2 and a dynamic axis).
        tolerance: Largest accepted absolute difference of the normalised features.
        device: Where PyTorch runs the reference (onnxruntime runs on the CPU, or CUDA when it has it).

    Raises:
        ParityError: the features differ beyond ``tolerance`` or the top-10 lists differ (message with the numbers;
            nothing is written).
        ImportError: ``onnx`` / ``onnxruntime`` are missing (``pip install 'idkl_lib[onnx]'``).
    """
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; use one of {', '.join(FEATURES)}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 2:
        raise ValueError(f"the parity batch needs at least 2 images, got batch={batch!r}")
    if not tolerance > 0:
        raise ValueError(f"tolerance must be positive, got {tolerance!r}")
    start = time.perf_counter()
    model, cfg, state = load_trained_model(checkpoint, device)
    module = RetrievalModule(model, feature, flip).eval()  # type: ignore[arg-type]
    dim = model.feature_dim * (2 if feature == "concat" else 1)
    info = ModelInfo(
        ModelFingerprint.of_checkpoint(checkpoint, state["config"]),
        feature,
        flip,
        cfg.height,
        cfg.width,
        IMAGENET_MEAN,
        IMAGENET_STD,
        dim,
        "onnx",
        str(Path(out).resolve()),
    )
    model_device = next(model.parameters()).device
    example = torch.zeros(2, 3, cfg.height, cfg.width, device=model_device)
    model_bytes = _with_metadata(_serialise(module, example), info.onnx_metadata())
    samples = list(collect_images(images).samples) if images else _default_samples(state["config"])
    inputs, source = parity_batch(samples, cfg.height, cfg.width, batch)
    with torch.no_grad():
        reference = module(inputs.to(model_device)).float().cpu().numpy()
    session = onnx_session(model_bytes, device)
    exported = np.asarray(session.run(None, {"images": inputs.numpy()})[0])
    report = compare(reference, exported, source, tolerance)
    if not report.passed:
        raise ParityError(f"ONNX export of {checkpoint} failed its check, {out} was not written: {report.line()}")
    path = atomic_write_bytes(out, model_bytes)
    return ExportResult(path, info, report, time.perf_counter() - start, len(model_bytes))
