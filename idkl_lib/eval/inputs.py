"""Argument checks shared by the public evaluation functions: the dataset's type and name, and the feature
matrices' types and dtypes, with errors that say what was expected.

``bfloat16`` tensors (numpy has no such dtype) are converted to ``float32``, which holds every ``bfloat16`` value
exactly, so the metrics are those of the given features.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.records import VIDataset

__all__ = ["check_features", "check_protocol_inputs"]

FeatureArray = np.ndarray | torch.Tensor
_PROTOCOL_DATASETS = ("sysu", "regdb", "llcm")  # those with an evaluate_<name>


def check_features(feats: object, name: str) -> FeatureArray:
    """``feats`` as a real-valued (N, D) numpy array or torch tensor (``bfloat16`` converted to ``float32``).

    Args:
        feats: The feature matrix.
        name: Its name in messages (``"evaluate_sysu: query_feats"``).

    Raises:
        TypeError: ``feats`` is not a numpy array or torch tensor, or holds booleans, complex numbers or objects.
        ValueError: ``feats`` is not 2-D.
    """
    if isinstance(feats, torch.Tensor):
        if feats.dtype == torch.bool or feats.is_complex():
            raise TypeError(f"{name} must hold real numbers (float32 features), got dtype {feats.dtype}")
        if feats.dtype == torch.bfloat16:
            feats = feats.float()
        shape = tuple(feats.shape)
    elif isinstance(feats, np.ndarray):
        if feats.dtype.kind not in "fiu":
            raise TypeError(
                f"{name} must hold real numbers (float32 features), got dtype {feats.dtype}; convert it with "
                "np.asarray(feats, dtype=np.float32)"
            )
        shape = feats.shape
    else:
        raise TypeError(
            f"{name} must be a torch.Tensor or numpy array of shape (N, D) (from idkl_lib.eval.features."
            f"extract_features), got {type(feats).__name__}"
        )
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) matrix, got shape {shape}")
    return feats


def check_protocol_inputs(
    func: str, dataset: object, expected: str | None, query_feats: object, gallery_feats: object
) -> tuple[FeatureArray, FeatureArray]:
    """Check the ``(dataset, query_feats, gallery_feats)`` arguments of a protocol function.

    Args:
        func: The caller's name, used in messages.
        dataset: Should be a :class:`VIDataset`.
        expected: The dataset name the protocol is for (``"sysu"``...), or None to leave the name to the caller.
        query_feats: Query features.
        gallery_feats: Gallery features.

    Returns:
        ``(query_feats, gallery_feats)``, ``bfloat16`` tensors converted to ``float32``.

    Raises:
        TypeError: ``dataset`` is not a VIDataset, or a feature matrix has the wrong type or dtype.
        ValueError: ``dataset`` is another dataset than ``expected``, or a feature matrix is not 2-D.
    """
    if not isinstance(dataset, VIDataset):
        hint = ""
        if isinstance(dataset, (np.ndarray, torch.Tensor)):
            hint = "; it looks like features: the arguments are (dataset, query_feats, gallery_feats)"
        raise TypeError(
            f"{func}: dataset must be an idkl_lib.data.VIDataset (from idkl_lib.data.build_dataset(name, root) or "
            f"workbench.prepare_dataset), got {type(dataset).__module__}.{type(dataset).__qualname__}{hint}"
        )
    if expected is not None and dataset.name != expected:
        other = f"; use evaluate_{dataset.name} or evaluate_dataset" if dataset.name in _PROTOCOL_DATASETS else ""
        raise ValueError(f"{func} is for {expected!r} datasets, got dataset.name={dataset.name!r}{other}")
    return check_features(query_feats, f"{func}: query_feats"), check_features(gallery_feats, f"{func}: gallery_feats")
