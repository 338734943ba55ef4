"""Image helpers for display: loading, de-normalising, borders and PNG data URIs.

Every function returns a new array; inputs are never modified. Displayed images are ``uint8 (H, W, 3)`` RGB;
"float images" are ``float32 (H, W, 3)`` in ``[0, 1]`` (what ``pytorch_grad_cam.utils.image.show_cam_on_image``
expects).
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from idkl_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD


def load_image(path: str | os.PathLike[str], size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as RGB (infrared images are replicated to three channels).

    Args:
        path: Image file.
        size: ``(height, width)`` to resize to (bilinear), or ``None`` to keep the file's size.

    Returns:
        ``uint8 (H, W, 3)`` array.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image file not found: {os.fspath(path)!r}")
    with Image.open(path) as img:
        rgb = img.convert("RGB")
        if size is not None:
            height, width = size
            rgb = rgb.resize((int(width), int(height)), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8).copy()


def denormalize(
    tensor: torch.Tensor,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Undo ``Normalize(mean, std)`` on a model input for display.

    Args:
        tensor: ``(3, H, W)`` or ``(B, 3, H, W)`` normalised image(s), any device or dtype.
        mean: Per-channel mean used for normalisation (ImageNet by default).
        std: Per-channel standard deviation used for normalisation.

    Returns:
        ``float32 (H, W, 3)`` (or ``(B, H, W, 3)``) in ``[0, 1]``.
    """
    if tensor.dim() not in (3, 4) or tensor.shape[-3] != 3:
        raise ValueError(f"denormalize expects (3, H, W) or (B, 3, H, W), got shape {tuple(tensor.shape)}")
    x = tensor.detach().to("cpu", torch.float32)
    m = torch.as_tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32).view(3, 1, 1)
    x = (x * s + m).clamp(0.0, 1.0)
    return np.ascontiguousarray(x.movedim(-3, -1).numpy())


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an ``(H, W)`` / ``(H, W, 1)`` / ``(H, W, 3)`` image to ``uint8 (H, W, 3)``.

    Float images are taken to lie in ``[0, 1]`` (clipped); integer images in ``[0, 255]``.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3):
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if np.issubdtype(arr.dtype, np.floating):
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def to_float(image: np.ndarray) -> np.ndarray:
    """Convert an image to ``float32 (H, W, 3)`` in ``[0, 1]`` (see :func:`to_uint8` for accepted inputs)."""
    arr = np.asarray(image)
    if np.issubdtype(arr.dtype, np.floating) and arr.ndim == 3 and arr.shape[-1] == 3:
        return np.clip(arr, 0.0, 1.0).astype(np.float32)
    return to_uint8(arr).astype(np.float32) / 255.0


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` -> ``(r, g, b)`` integers."""
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a '#RRGGBB' colour, got {color!r}")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def add_border(image: np.ndarray, color: str, width: int = 4) -> np.ndarray:
    """Return a copy of ``image`` with a solid border of ``width`` pixels drawn inside its edges.

    Args:
        image: ``(H, W, 3)`` image (uint8 or float in ``[0, 1]``).
        color: ``"#RRGGBB"``.
        width: Border width in pixels.

    Returns:
        ``uint8 (H, W, 3)``.
    """
    out = to_uint8(image).copy()
    if width <= 0:
        return out
    rgb = np.asarray(hex_to_rgb(color), dtype=np.uint8)
    out[:width] = rgb
    out[-width:] = rgb
    out[:, :width] = rgb
    out[:, -width:] = rgb
    return out


def png_data_uri(image: np.ndarray) -> str:
    """Encode an image as a ``data:image/png;base64,...`` URI (compact source for ``plotly.graph_objects.Image``)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def decode_data_uri(uri: str) -> np.ndarray:
    """Inverse of :func:`png_data_uri`: ``uint8 (H, W, 3)``."""
    if not uri.startswith("data:image/") or ";base64," not in uri:
        raise ValueError("expected a base64 'data:image/...' URI")
    raw = base64.b64decode(uri.split(";base64,", 1)[1])
    with Image.open(io.BytesIO(raw)) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
