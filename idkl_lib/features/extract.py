"""Features of any images with a trained model: :func:`extract_image_features` (the Python side of
``python -m idkl_lib.features``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..data.image_files import ImageSet, collect_images
from .backends import ModelBackend, open_model
from .files import FeatureFile

__all__ = ["extract_image_features", "features_of"]


def features_of(
    backend: ModelBackend, images: ImageSet, *, batch_size: int = 64, num_workers: int = 0, progress: bool = False
) -> FeatureFile:
    """The feature file of ``images`` embedded by ``backend`` (an open model)."""
    feats = backend.embed(images.samples, batch_size=batch_size, num_workers=num_workers, progress=progress)
    meta = {
        **backend.info.meta(),
        "normalized": True,
        "layout": images.layout,
        "root": images.root,
        "skipped": [list(item) for item in images.skipped],
    }
    return FeatureFile.from_samples(feats, list(images.samples), meta)


def extract_image_features(
    model: str | os.PathLike[str] | ModelBackend,
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | ImageSet,
    out: str | os.PathLike[str] | None = None,
    *,
    device: str = "cpu",
    feature: str | None = None,
    flip: bool | None = None,
    split: str = "all",
    skip_corrupt: bool = False,
    modality: int | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = False,
) -> FeatureFile:
    """L2-normalised retrieval features of ``images`` (written to ``out`` when given).

    Args:
        model: A checkpoint, an ONNX export (``.onnx``, run with onnxruntime) or an open backend.
        images: Image files, folders (recursive; a dataset root labels its images) and ``.txt`` lists, or an
            :class:`ImageSet` from :func:`~idkl_lib.data.image_files.collect_images`.
        out: Feature file to write (``.npz``, atomically), or None.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...
        feature: ``"shared"`` (default for a checkpoint: the paper's retrieval feature), ``"specific"`` or
            ``"concat"``; an ONNX export has its own.
        flip: Flip averaging as in the evaluation (default off for a checkpoint).
        split: For a dataset root, the parser's split to take (``"all"``, ``"test"``, ``"query"``, ``"gallery"``,
            ``"train"``).
        skip_corrupt: Leave out undecodable images (recorded in ``meta["skipped"]``) instead of failing.
        modality: Modality of images whose layout does not say (0 visible, 1 infrared).
        batch_size: Images per forward pass.
        num_workers: Data-loading worker processes.
        progress: Show a tqdm progress bar.
    """
    image_set = (
        images
        if isinstance(images, ImageSet)
        else collect_images(images, split=split, skip_corrupt=skip_corrupt, modality=modality)
    )
    backend = open_model(model, device, feature, flip) if isinstance(model, str | os.PathLike) else model
    result = features_of(backend, image_set, batch_size=batch_size, num_workers=num_workers, progress=progress)
    if out is not None:
        result.save(Path(out))
    return result
