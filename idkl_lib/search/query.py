"""Queries given as images: embedded with the gallery's model (or another file of the same model) before the search."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..data.image_files import ImageSet, collect_images
from ..features.backends import ModelBackend, open_model
from ..features.extract import features_of
from ..features.files import FeatureFile, check_same_model

__all__ = ["gallery_model", "load_queries"]


def gallery_model(
    gallery: FeatureFile, model: str | os.PathLike[str] | ModelBackend | None = None, device: str = "cpu"
) -> ModelBackend:
    """The model to embed queries for ``gallery``: ``model`` (a checkpoint, an ONNX export or an open backend) or the
    one the gallery's features were extracted with; refused unless its fingerprint, width and feature settings are
    the gallery's (:class:`~idkl_lib.features.files.FeatureMismatchError`)."""
    if model is None:
        recorded = gallery.meta.get("model")
        if not recorded or not Path(recorded).is_file():
            raise FileNotFoundError(
                f"the gallery's model {recorded} is not there any more; pass --model with the checkpoint or its ONNX "
                f"export (fingerprint {gallery.fingerprint})"
            )
        model = recorded
    backend = (
        open_model(model, device, gallery.meta.get("feature"), gallery.meta.get("flip"))
        if isinstance(model, str | os.PathLike)
        else model
    )
    meta = {**backend.info.meta(), "dim": backend.info.dim}
    check_same_model(gallery, meta, "the gallery", f"model {backend.info.path}")
    return backend


def load_queries(
    gallery: FeatureFile,
    queries: Sequence[str | os.PathLike[str]] | ImageSet,
    *,
    model: str | os.PathLike[str] | ModelBackend | None = None,
    device: str = "cpu",
    modality: int | None = None,
    skip_corrupt: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> FeatureFile:
    """Query features: one ``.npz`` feature file is read as it is; anything else is images (files, folders, lists)
    embedded with :func:`gallery_model`. ``modality`` labels images outside a dataset layout."""
    if not isinstance(queries, ImageSet) and len(queries) == 1 and Path(queries[0]).suffix.lower() == ".npz":
        return FeatureFile.load(queries[0])
    images = (
        queries
        if isinstance(queries, ImageSet)
        else collect_images(queries, skip_corrupt=skip_corrupt, modality=modality)
    )
    backend = gallery_model(gallery, model, device)
    return features_of(backend, images, batch_size=batch_size, progress=progress)
