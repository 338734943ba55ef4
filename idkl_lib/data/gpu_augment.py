"""The training augmentation applied to whole uint8 batches with torch ops (on the GPU when the batch is there).

:class:`BatchAugment` reproduces, image by image, the random part of the training transform of
:func:`idkl_lib.data.transforms.build_transforms` on images already resized to ``H x W`` (e.g. read from
:class:`idkl_lib.data.cache.DecodedImageCache`), with the same distribution:

``RandomHorizontalFlip(0.5)`` -> ``Pad(10, fill=127)`` -> ``RandomCrop((H, W))`` (offsets uniform in ``0..20``)
-> ``ToTensor`` -> ``Normalize(ImageNet)`` -> ``RandomErasing(p)`` (torchvision's rule: up to 10 attempts of an
area fraction uniform in ``scale`` and a log-uniform aspect ratio in ``ratio``, the first that fits is erased to 0,
none if none fits).

Random numbers come from ``generator`` (or torch's global generator of the batch's device); the draws differ from
the PIL path's, the distribution is the same (tested statistically). Channel augmentation is not supported here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .transforms import IMAGENET_MEAN, IMAGENET_STD, PAD, PAD_FILL

ERASE_ATTEMPTS = 10


class BatchAugment:
    """``augment(images)``: ``(B, 3, H, W)`` uint8 -> augmented, normalised float32 ``(B, 3, H, W)`` on the same device.

    Args:
        random_erasing: Probability of random erasing per image (0 switches it off).
        flip: Apply the random horizontal flip (p = 0.5).
        pad: Padding before the random crop (reference 10), filled with ``PAD_FILL`` (127).
        scale: Erased area fraction range (torchvision default).
        ratio: Erased aspect-ratio range (torchvision default).
        generator: Optional ``torch.Generator`` on the batch's device.
    """

    def __init__(
        self,
        random_erasing: float = 0.5,
        flip: bool = True,
        pad: int = PAD,
        scale: tuple[float, float] = (0.02, 0.33),
        ratio: tuple[float, float] = (0.3, 3.3),
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0.0 <= random_erasing <= 1.0:
            raise ValueError(f"BatchAugment: random_erasing must be a probability in [0, 1], got {random_erasing}")
        if pad < 0:
            raise ValueError(f"BatchAugment: pad must be >= 0, got {pad}")
        self.random_erasing, self.flip, self.pad = float(random_erasing), flip, int(pad)
        self.scale, self.log_ratio = scale, (math.log(ratio[0]), math.log(ratio[1]))
        self.generator = generator

    def _rand(self, *shape: int, device: torch.device) -> Tensor:
        return torch.rand(*shape, device=device, generator=self.generator)

    def _randint(self, high: Tensor) -> Tensor:
        """Uniform integers in ``0 .. high - 1`` elementwise (``high >= 1``)."""
        u = self._rand(*high.shape, device=high.device)
        return torch.minimum((u * high).long(), high - 1)

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.size(1) != 3:
            raise ValueError(
                f"BatchAugment expects (B, 3, H, W) uint8 images, got {images.dtype} {tuple(images.shape)}"
            )
        b, _, h, w = images.shape
        dev = images.device
        if self.flip:
            flip = self._rand(b, device=dev) < 0.5
            images = torch.where(flip.view(b, 1, 1, 1), images.flip(-1), images)
        p = self.pad
        if p:
            padded = torch.full((b, 3, h + 2 * p, w + 2 * p), PAD_FILL, dtype=torch.uint8, device=dev)
            padded[:, :, p : p + h, p : p + w] = images
            top = self._randint(torch.full((b,), 2 * p + 1, device=dev))
            left = self._randint(torch.full((b,), 2 * p + 1, device=dev))
            rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (B, 1, H, 1)
            cols = (left[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # (B, 1, 1, W)
            batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
            chan = torch.arange(3, device=dev).view(1, 3, 1, 1)
            images = padded[batch, chan, rows, cols]
        mean = torch.tensor(IMAGENET_MEAN, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=dev).view(1, 3, 1, 1)
        out = (images.float() / 255.0 - mean) / std
        if self.random_erasing > 0:
            out = out * ~self._erase_mask(b, h, w, dev)
        return out

    def _erase_mask(self, b: int, h: int, w: int, dev: torch.device) -> Tensor:
        """(B, 1, H, W) bool: the erased rectangle of each image (none for images not erased)."""
        n = ERASE_ATTEMPTS
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * self._rand(b, n, device=dev))
        aspect = torch.exp(self.log_ratio[0] + (self.log_ratio[1] - self.log_ratio[0]) * self._rand(b, n, device=dev))
        eh = torch.round(torch.sqrt(area * aspect)).long()
        ew = torch.round(torch.sqrt(area / aspect)).long()
        fits = (eh < h) & (ew < w)
        first = torch.where(fits.any(1), fits.int().argmax(1), 0)  # the first attempt that fits
        pick = torch.arange(b, device=dev)
        eh, ew = eh[pick, first], ew[pick, first]
        apply = (self._rand(b, device=dev) < self.random_erasing) & fits.any(1)
        top = self._randint((h - eh + 1).clamp(min=1))
        left = self._randint((w - ew + 1).clamp(min=1))
        r = torch.arange(h, device=dev).view(1, h, 1)
        c = torch.arange(w, device=dev).view(1, 1, w)
        inside = (r >= top.view(b, 1, 1)) & (r < (top + eh).view(b, 1, 1))
        inside = inside & (c >= left.view(b, 1, 1)) & (c < (left + ew).view(b, 1, 1))
        return (inside & apply.view(b, 1, 1)).unsqueeze(1)
