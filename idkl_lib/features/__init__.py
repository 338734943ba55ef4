"""Retrieval features of any images with a trained model, in feature files that remember the model
(``python -m idkl_lib.features``).

* :func:`extract_image_features`: images (files, folders, lists; dataset layouts labelled) -> :class:`FeatureFile`;
* :class:`FeatureFile`: features, paths, identities, cameras, modalities and the model's fingerprint (``.npz``);
* :func:`open_model`: a checkpoint (PyTorch) or an ONNX export (onnxruntime) as a backend.
"""

from ..data.image_files import SPLITS, UNKNOWN, ImageInputError, ImageSet, collect_images, label_image
from .backends import FEATURES, ModelBackend, ModelInfo, OnnxBackend, TorchBackend, onnx_session, open_model
from .extract import extract_image_features, features_of
from .files import FEATURE_FORMAT_VERSION, FeatureFile, FeatureMismatchError, check_same_model
from .fingerprint import ModelFingerprint, config_hash, file_hash

__all__ = [
    "FEATURES",
    "FEATURE_FORMAT_VERSION",
    "SPLITS",
    "UNKNOWN",
    "FeatureFile",
    "FeatureMismatchError",
    "ImageInputError",
    "ImageSet",
    "ModelBackend",
    "ModelFingerprint",
    "ModelInfo",
    "OnnxBackend",
    "TorchBackend",
    "check_same_model",
    "collect_images",
    "config_hash",
    "extract_image_features",
    "features_of",
    "file_hash",
    "label_image",
    "onnx_session",
    "open_model",
]
