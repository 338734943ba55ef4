"""Feature extraction for evaluation, Grad-CAM and embedding plots."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..data.image_dataset import ImageDataset
from ..data.records import Sample
from ..data.transforms import build_transforms

Which = Literal["shared", "specific", "concat"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    samples: Sequence[Sample],
    height: int,
    width: int,
    *,
    which: Which = "shared",
    flip: bool = False,
    batch_size: int = 64,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "features",
) -> Tensor:
    """Embed ``samples`` with ``model.embed`` in eval mode and return an (N, D) float32 CPU tensor in record order.

    The model's train/eval mode is restored afterwards. ``flip`` averages the feature of the image and of its
    horizontal mirror; ``which`` selects the shared (default, docs/method.md#26-retrieval-feature), specific or
    concatenated feature. ``amp_dtype`` (e.g. ``torch.bfloat16``) runs the forward under autocast on CUDA.
    """
    if len(samples) == 0:
        raise ValueError(f"extract_features got no samples for {desc!r}: the split is empty; check the dataset root")
    device = torch.device(device)
    loader = DataLoader(
        ImageDataset(samples, build_transforms(height, width, train=False)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    was_training = model.training
    model.eval()
    chunks: list[Tensor] = []
    try:
        iterator = loader
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(loader, desc=desc, leave=False)
        for images, _pid, _cam, modality, _idx in iterator:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            modality = modality.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                feats = model.embed(images, modality, which=which, flip=flip)  # type: ignore[operator]  # IDKLModel.embed
            chunks.append(feats.float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks)
