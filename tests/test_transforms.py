"""build_transforms and ChannelAugment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from idkl_lib.data import build_transforms
from idkl_lib.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ChannelAugment

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def normalised(rgb: tuple[int, int, int]) -> torch.Tensor:
    """(3, 1, 1) value of a pixel of colour ``rgb`` after ToTensor + ImageNet Normalize, computed by hand."""
    return (torch.tensor(rgb, dtype=torch.float32).view(3, 1, 1) / 255.0 - MEAN) / STD


def test_test_transform_of_a_uniform_image() -> None:
    image = Image.new("RGB", (10, 20), (200, 40, 90))
    out = build_transforms(16, 8, train=False)(image)
    assert out.shape == (3, 16, 8) and out.dtype == torch.float32
    assert torch.allclose(out, normalised((200, 40, 90)).expand(3, 16, 8), atol=1e-6)


def test_test_transform_is_deterministic_and_resizes() -> None:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 20, 3), dtype=np.uint8))
    transform = build_transforms(24, 12, train=False)
    out = transform(image)
    assert torch.equal(out, transform(image))
    resized = np.asarray(image.resize((12, 24), Image.BILINEAR), dtype=np.float32) / 255.0
    manual = (torch.from_numpy(resized).permute(2, 0, 1) - MEAN) / STD
    assert torch.allclose(out, manual, atol=1e-5)


def test_train_transform_pads_with_127_flips_and_crops() -> None:
    colour = (250, 10, 60)
    transform = build_transforms(16, 8, train=True, random_erasing=0.0)
    assert [type(t) for t in transform.transforms] == [
        T.Resize,
        T.RandomHorizontalFlip,
        T.Pad,
        T.RandomCrop,
        T.ToTensor,
        T.Normalize,
    ]
    inside, fill = normalised(colour), normalised((127, 127, 127))
    torch.manual_seed(0)
    saw_padding = False
    for _ in range(20):
        out = transform(Image.new("RGB", (8, 16), colour))
        assert out.shape == (3, 16, 8)
        is_inside = torch.isclose(out, inside.expand_as(out), atol=1e-5).all(0)
        is_fill = torch.isclose(out, fill.expand_as(out), atol=1e-5).all(0)
        assert (is_inside | is_fill).all()  # every pixel is the image or the padding
        saw_padding |= bool(is_fill.any())
    assert saw_padding

    half = np.zeros((16, 8, 3), np.uint8)
    half[:, 4:] = 255  # black left half, white right half
    no_crop = T.Compose([t for t in transform.transforms if not isinstance(t, (T.Pad, T.RandomCrop))])
    orientations = set()
    for _ in range(30):
        out = no_crop(Image.fromarray(half))
        orientations.add(bool(out[:, :, :4].mean() > out[:, :, 4:].mean()))
    assert orientations == {True, False}  # the flip happens, and not always


def test_random_erasing_probability() -> None:
    image = Image.new("RGB", (8, 16), (250, 10, 60))
    always = build_transforms(16, 8, train=True, random_erasing=1.0)
    assert isinstance(always.transforms[-1], T.RandomErasing) and always.transforms[-1].p == 1.0
    torch.manual_seed(1)
    for _ in range(5):
        assert (always(image) == 0).all(0).any()  # an erased rectangle is exactly 0 in all channels
    default = build_transforms(16, 8, train=True)
    assert default.transforms[-1].p == 0.5
    assert not any(isinstance(t, T.RandomErasing) for t in build_transforms(16, 8, train=False).transforms)


def test_channel_augment_replicates_one_channel_or_grayscale() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 5, 4)
    gray = 0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]
    candidates = [image[0], image[1], image[2], gray]
    seen = set()
    augment = ChannelAugment(p=1.0)
    for _ in range(40):
        out = augment(image)
        assert out.shape == (3, 5, 4)
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        match = [i for i, c in enumerate(candidates) if torch.allclose(out[0], c, atol=1e-4)]
        assert match
        seen.add(match[0])
    assert seen == {0, 1, 2, 3}
    infrared = image[:1].expand(3, -1, -1).clone()
    for _ in range(10):
        assert torch.allclose(augment(infrared), infrared, atol=1e-6)  # equal channels are left unchanged
    assert torch.equal(ChannelAugment(p=0.0)(image), image)


def test_channel_augment_position_in_the_pipeline() -> None:
    steps = build_transforms(16, 8, train=True, channel_augment=True).transforms
    kinds = [type(t) for t in steps]
    assert kinds.index(ChannelAugment) == kinds.index(T.ToTensor) + 1 == kinds.index(T.Normalize) - 1
    assert not any(isinstance(t, ChannelAugment) for t in build_transforms(16, 8, train=True).transforms)


def test_channel_augment_does_not_modify_its_input() -> None:
    image = torch.rand(3, 4, 4)
    before = image.clone()
    out = ChannelAugment(p=1.0)(image)
    out.add_(1.0)
    assert torch.equal(image, before)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"height": 0}, r"height must be a positive int, got 0"),
        ({"width": 8.5}, r"width must be a positive int"),
        ({"random_erasing": 1.5}, r"random_erasing must be a probability in \[0, 1\], got 1\.5"),
    ],
)
def test_build_transforms_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_transforms(**{"height": 16, "width": 8, "train": True, **kwargs})


def test_channel_augment_errors() -> None:
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\], got 2"):
        ChannelAugment(p=2)
    with pytest.raises(ValueError, match=r"expects a \(3, H, W\) tensor, got shape \(1, 4, 4\)"):
        ChannelAugment(p=1.0)(torch.rand(1, 4, 4))
