"""Grad-CAM for retrieval embeddings (paper Figure 4), built on pytorch-grad-cam's extension points.

What the figure explains: *why does this query match that gallery image?* The CAM target is the cosine similarity
between the query's embedding and a reference embedding (normally the query's matched gallery image), and the maps
come from the last conv block of the shared or the specific tail (``model.gradcam_target_layers(which)``).

Model interface used (``idkl_lib.models.IDKLModel`` or any module with the same methods):

* ``model.embed(images (B, 3, H, W), modality (B,) | None, which="shared"|"specific"|"concat") -> (B, D)``
* ``model.gradcam_target_layers(which="shared"|"specific") -> list[nn.Module]``, each run once per forward.

pytorch-grad-cam is imported lazily (it pulls in OpenCV and ttach). :func:`similarity_cam` leaves the model as it
found it: train/eval mode of every submodule, ``requires_grad`` flags and ``.grad`` tensors are restored and the
hooks are released (``with GradCAM(...) as cam``); CAMs are computed in eval mode.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from idkl_lib.viz.images import to_float, to_uint8
from idkl_lib.viz.plots import image_grid

if TYPE_CHECKING:
    import plotly.graph_objects as go

CAM_METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "gradcam-elementwise": "GradCAMElementWise",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "scorecam": "ScoreCAM",
}
"""``method`` names accepted by :func:`similarity_cam` -> pytorch-grad-cam class names."""

COLORMAPS: tuple[str, ...] = ("viridis", "cividis", "inferno", "magma", "plasma", "turbo", "jet")


def _modality_tensor(modality: torch.Tensor | int | None, batch: int, device: torch.device) -> torch.Tensor | None:
    if modality is None:
        return None
    if isinstance(modality, int):
        return torch.full((batch,), modality, dtype=torch.long, device=device)
    mod = torch.as_tensor(modality, dtype=torch.long).to(device).reshape(-1)
    if mod.numel() != batch:
        raise ValueError(f"modality has {mod.numel()} entries for a batch of {batch} images")
    return mod


class EmbeddingModel(nn.Module):
    """Expose ``model.embed`` as a plain ``images -> (B, D)`` module, the shape pytorch-grad-cam expects.

    Args:
        model: Model with ``embed(images, modality, which)``.
        which: ``"shared"``, ``"specific"`` or ``"concat"``.
        modality: ``(B,)`` modality labels of the images that will be passed (0 visible, 1 infrared), one int for
            all images, or ``None`` if the model does not need them.
    """

    def __init__(self, model: nn.Module, which: str = "shared", modality: torch.Tensor | int | None = None) -> None:
        super().__init__()
        self.model = model
        self.which = which
        self.modality = modality

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, D)``."""
        mod = _modality_tensor(self.modality, images.shape[0], images.device)
        return self.model.embed(images, mod, which=self.which)  # type: ignore[operator]


class SimilarityTarget:
    """pytorch-grad-cam target: cosine similarity of one sample's embedding to a reference embedding.

    Same role as the library tutorial's ``SimilarityToConceptTarget``: called on the model output of ONE sample
    (``(D,)``) it returns a scalar tensor; on ``(B, D)`` it returns ``(B,)``.

    Args:
        reference_embedding: ``(D,)`` embedding to compare with (detached and copied).
    """

    def __init__(self, reference_embedding: torch.Tensor) -> None:
        self.reference = torch.as_tensor(reference_embedding).detach().reshape(-1).to(torch.float32).clone()

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        ref = self.reference.to(device=model_output.device, dtype=model_output.dtype)
        if model_output.dim() == 1:
            return F.cosine_similarity(model_output, ref, dim=0)
        return F.cosine_similarity(model_output, ref.unsqueeze(0), dim=-1)


def _target_layers(model: nn.Module, which: str) -> list[nn.Module]:
    if which == "concat":
        return [*model.gradcam_target_layers("shared"), *model.gradcam_target_layers("specific")]  # type: ignore[operator]
    if which not in ("shared", "specific"):
        raise ValueError(f"which must be 'shared', 'specific' or 'concat', got {which!r}")
    return list(model.gradcam_target_layers(which))  # type: ignore[operator]


def _cam_class(method: str | type) -> type:
    if isinstance(method, type):
        return method
    import pytorch_grad_cam

    key = method.lower()
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; choose one of {sorted(CAM_METHODS)} or pass a BaseCAM class")
    return getattr(pytorch_grad_cam, CAM_METHODS[key])


class _ModelState:
    """Train/eval flag of every submodule, ``requires_grad`` and ``.grad`` of every parameter."""

    def __init__(self, model: nn.Module) -> None:
        self.modes = [(m, m.training) for m in model.modules()]
        self.params = [(p, p.requires_grad, p.grad) for p in model.parameters()]

    def restore(self) -> None:
        for module, training in self.modes:
            module.training = training
        for param, requires_grad, grad in self.params:
            param.requires_grad_(requires_grad)
            param.grad = grad


def similarity_cam(
    model: nn.Module,
    images: torch.Tensor,
    reference_embeddings: torch.Tensor,
    which: str = "shared",
    modality: torch.Tensor | int | None = None,
    method: str | type = "gradcam",
    aug_smooth: bool = False,
    eigen_smooth: bool = False,
) -> np.ndarray:
    """Class-activation maps of "how similar is this image to the reference" for a batch of images.

    Args:
        model: Model with ``embed`` and ``gradcam_target_layers`` (see module docstring); left unchanged.
        images: ``(B, 3, H, W)`` normalised model inputs (not modified).
        reference_embeddings: ``(B, D)`` one reference per image, or ``(D,)`` shared by all; typically the embedding
            of the query's matched gallery image from the same ``which`` branch. Using the image's own embedding
            gives a zero gradient (cosine similarity is at its maximum) and a meaningless map; a warning says so.
        which: ``"shared"``, ``"specific"`` or ``"concat"`` (both tails' layers, maps averaged).
        modality: ``(B,)`` modality of ``images`` (0 visible, 1 infrared), an int for all, or ``None``.
        method: A key of :data:`CAM_METHODS` (``"gradcam"``, ``"gradcam++"``, ``"hirescam"``, ...) or a
            pytorch-grad-cam ``BaseCAM`` subclass.
        aug_smooth: Test-time augmentation smoothing (pytorch-grad-cam's ``aug_smooth``).
        eigen_smooth: First-principal-component smoothing (pytorch-grad-cam's ``eigen_smooth``).

    Returns:
        ``float32 (B, H, W)`` maps, each scaled to ``[0, 1]``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
    batch = images.shape[0]
    refs = torch.as_tensor(reference_embeddings).detach()
    if refs.dim() == 1:
        refs = refs.unsqueeze(0).expand(batch, -1)
    if refs.dim() != 2 or refs.shape[0] != batch:
        raise ValueError(f"reference_embeddings must be (D,) or ({batch}, D), got shape {tuple(refs.shape)}")
    cam_cls = _cam_class(method)
    layers = _target_layers(model, which)
    targets = [SimilarityTarget(r) for r in refs]
    state = _ModelState(model)
    try:
        # Parameters are frozen for the call: gradients reach the target activations through the input, so no
        # parameter .grad is produced, and a frozen model works as well as a trainable one.
        for p in model.parameters():
            p.requires_grad_(False)
        device = next(model.parameters()).device
        x = images.detach().to(device).clone().requires_grad_(True)
        wrapper = EmbeddingModel(model, which, modality)
        with torch.enable_grad(), cam_cls(model=wrapper, target_layers=layers) as cam:
            try:
                maps = cam(input_tensor=x, targets=targets, aug_smooth=aug_smooth, eigen_smooth=eigen_smooth)
            except IndexError as exc:  # re-raise: BaseCAM.__exit__ would print and swallow an IndexError
                raise RuntimeError(f"Grad-CAM failed ({exc}); does every target layer run once per forward?") from exc
            outputs = cam.outputs.detach()
    finally:
        state.restore()
    sims = F.cosine_similarity(outputs.float(), refs.to(outputs.device).float(), dim=-1)
    if bool((sims > 1 - 1e-5).any()):
        warnings.warn(
            "a reference embedding equals the image's own embedding: the similarity gradient vanishes and the "
            "CAM carries no information; use the matched gallery embedding as reference",
            RuntimeWarning,
            stacklevel=2,
        )
    return np.asarray(maps, dtype=np.float32)


@torch.no_grad()
def embed_images(
    model: nn.Module,
    images: torch.Tensor,
    modality: torch.Tensor | int | None = None,
    which: str = "shared",
    batch_size: int = 64,
) -> torch.Tensor:
    """Embeddings of a tensor batch in eval mode, restoring the model's modes afterwards (e.g. reference embeddings).

    Args:
        model: Model with ``embed``.
        images: ``(N, 3, H, W)`` normalised images.
        modality: ``(N,)`` modality labels, one int, or ``None``.
        which: Branch passed to ``model.embed``.
        batch_size: Images per forward pass.

    Returns:
        ``(N, D)`` embeddings on the CPU.
    """
    state = _ModelState(model)
    try:
        model.eval()
        device = next(model.parameters()).device
        mod = _modality_tensor(modality, images.shape[0], torch.device("cpu"))
        chunks = []
        for start in range(0, images.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            m = None if mod is None else mod[sl].to(device)
            chunks.append(model.embed(images[sl].to(device), m, which=which).detach().cpu())  # type: ignore[operator]
    finally:
        state.restore()
    return torch.cat(chunks)


def overlay_cam(
    image_rgb: np.ndarray, cam: np.ndarray, image_weight: float = 0.5, colormap: str = "viridis"
) -> np.ndarray:
    """Blend a CAM over an image with pytorch-grad-cam's ``show_cam_on_image``.

    Args:
        image_rgb: ``(H, W, 3)`` RGB image, float in ``[0, 1]`` (uint8 accepted).
        cam: ``(H, W)`` map in ``[0, 1]``.
        image_weight: Weight of the image in the blend.
        colormap: One of :data:`COLORMAPS`; the default ``"viridis"`` is colour-blind safe (``"jet"`` is the
            classic Grad-CAM look).

    Returns:
        ``uint8 (H, W, 3)``.
    """
    import cv2
    from pytorch_grad_cam.utils.image import show_cam_on_image

    img = to_float(image_rgb)
    mask = np.clip(np.asarray(cam, dtype=np.float32), 0.0, 1.0)
    if mask.shape != img.shape[:2]:
        raise ValueError(f"cam shape {mask.shape} does not match image shape {img.shape[:2]}")
    if colormap not in COLORMAPS:
        raise ValueError(f"colormap must be one of {COLORMAPS}, got {colormap!r}")
    cmap = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    return show_cam_on_image(img, mask, use_rgb=True, colormap=cmap, image_weight=image_weight)


def gradcam_grid(
    images_rgb: np.ndarray | Sequence[np.ndarray],
    cams: Mapping[str, np.ndarray],
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "Grad-CAM: what the features attend to",
    image_weight: float = 0.5,
    colormap: str = "viridis",
    cell_size: tuple[int, int] = (200, 130),
    reference_rgb: np.ndarray | Sequence[np.ndarray] | None = None,
) -> go.Figure:
    """Rows = queries, columns = the raw image (and its matched gallery image) and one CAM overlay per feature.

    Args:
        images_rgb: ``(B, H, W, 3)`` images (float in [0, 1] or uint8), e.g. ``denormalize(batch)``.
        cams: ``{column name: (B, H, W) maps}``, e.g. ``{"shared (IDKL)": ..., "specific (IDKL)": ...,
            "shared (baseline)": ...}``.
        row_labels: One label per row (e.g. ``"query 12 · pid 5"``).
        col_labels: Column titles (default ``["image", "matched", *cams]``, without "matched" when
            ``reference_rgb`` is not given).
        title: Figure title.
        image_weight: Image weight in the overlay.
        colormap: CAM colour map (see :func:`overlay_cam`).
        cell_size: ``(height, width)`` of a cell in pixels.
        reference_rgb: Optional ``(B, H', W', 3)`` images whose embeddings were the CAM references (the matched
            gallery images), shown in a second column.
    """
    imgs = [np.asarray(im) for im in images_rgb]
    refs = None if reference_rgb is None else [to_uint8(np.asarray(r)) for r in reference_rgb]
    if refs is not None and len(refs) != len(imgs):
        raise ValueError(f"{len(refs)} reference images for {len(imgs)} images")
    for name, maps in cams.items():
        if len(maps) != len(imgs):
            raise ValueError(f"cams[{name!r}] has {len(maps)} maps for {len(imgs)} images")
    rows = []
    for i, im in enumerate(imgs):
        overlays = [overlay_cam(im, cams[n][i], image_weight, colormap) for n in cams]
        rows.append([to_uint8(im), *([refs[i]] if refs is not None else []), *overlays])
    labels = list(col_labels) if col_labels is not None else ["image", *(["matched"] if refs else []), *cams]
    subtitle = f"CAM target: cosine similarity to the matched embedding · {colormap}: bright = high attribution"
    return image_grid(rows, title, row_labels=row_labels, col_labels=labels, cell_size=cell_size, subtitle=subtitle)


def cam_mass(cam: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of a map's total mass inside a boolean region, e.g. to check a CAM concentrates where expected.

    Args:
        cam: ``(H, W)`` non-negative map.
        mask: ``(H, W)`` boolean region.
    """
    c = np.asarray(cam, dtype=np.float64)
    total = float(c.sum())
    return float(c[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else 0.0


__all__ = [
    "CAM_METHODS",
    "COLORMAPS",
    "EmbeddingModel",
    "SimilarityTarget",
    "cam_mass",
    "embed_images",
    "gradcam_grid",
    "overlay_cam",
    "similarity_cam",
]
