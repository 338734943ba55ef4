"""Training and test image transforms (docs/method.md#43-augmentation), built from ``torchvision.transforms``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from PIL import Image
from torchvision import transforms as T

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
PAD = 10
PAD_FILL = 127
LUMA_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)  # ITU-R BT.601, summing to exactly 1


class ChannelAugment(torch.nn.Module):
    """Channel-level augmentation for visible/infrared training (in the spirit of CAJ's channel exchange).

    With probability ``p``, the ``(3, H, W)`` image tensor (values 0..1, before normalisation) is replaced by
    three copies of ONE of: its red, green or blue channel, or its luminance (ITU-R BT.601 weights, which sum
    to 1), chosen uniformly. Otherwise it is returned unchanged. An infrared image (three equal channels) is left
    unchanged by every choice, so the transform needs no modality label and only ever alters visible images; it removes
    colour cues the infrared modality cannot have. Randomness comes from torch's global generator, which the
    DataLoader seeds per worker.

    Args:
        p: Probability of replacing the channels.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"ChannelAugment: p must be in [0, 1], got {p}")
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"ChannelAugment expects a (3, H, W) tensor, got shape {tuple(image.shape)}")
        if torch.rand(()) >= self.p:
            return image
        choice = int(torch.randint(0, 4, ()))
        if choice == 3:
            weights = torch.tensor(LUMA_WEIGHTS, dtype=image.dtype, device=image.device).view(3, 1, 1)
            single = (image * weights).sum(0, keepdim=True)
        else:
            single = image[choice : choice + 1]
        return single.expand(3, -1, -1).clone()

    def extra_repr(self) -> str:
        return f"p={self.p}"


def build_transforms(
    height: int,
    width: int,
    train: bool,
    random_erasing: float = 0.5,
    channel_augment: bool = False,
) -> Callable[[Image.Image], torch.Tensor]:
    """Build the image transform of the reference recipe.

    Train: ``Resize((H, W))`` -> ``RandomHorizontalFlip(0.5)`` -> ``Pad(10, fill=127)`` -> ``RandomCrop((H, W))``
    -> ``ToTensor`` -> [``ChannelAugment(0.5)``] -> ``Normalize(ImageNet)`` -> ``RandomErasing(p=random_erasing)``
    (torchvision defaults otherwise: scale 0.02-0.33, ratio 0.3-3.3, value 0; left out when ``random_erasing``
    is 0). Test: ``Resize((H, W))`` -> ``ToTensor`` -> ``Normalize(ImageNet)``.

    Args:
        height: Output height H (SYSU/LLCM 384, RegDB 256 in the reference).
        width: Output width W (144 / 128).
        train: Build the training (augmenting) transform instead of the test one.
        random_erasing: Probability of random erasing (train only).
        channel_augment: Insert :class:`ChannelAugment` (train only): with probability 0.5 a visible image becomes
            a replicated single channel or grayscale; infrared images are unaffected.

    Returns:
        A callable mapping an RGB PIL image to a normalised ``(3, H, W)`` float tensor.
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"build_transforms: {name} must be a positive int, got {value!r}")
    if not isinstance(random_erasing, (int, float)) or not 0.0 <= random_erasing <= 1.0:
        raise ValueError(f"build_transforms: random_erasing must be a probability in [0, 1], got {random_erasing!r}")
    size = (height, width)
    if not train:
        return T.Compose([T.Resize(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    steps: list[Callable] = [
        T.Resize(size),
        T.RandomHorizontalFlip(0.5),
        T.Pad(PAD, fill=PAD_FILL),
        T.RandomCrop(size),
        T.ToTensor(),
    ]
    if channel_augment:
        steps.append(ChannelAugment(0.5))
    steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    if random_erasing > 0:
        steps.append(T.RandomErasing(p=float(random_erasing)))
    return T.Compose(steps)
