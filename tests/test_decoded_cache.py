"""Decoded-image cache (rebuild / mismatch errors) and the batched augmentation's distribution vs the PIL path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision import transforms as T

from idkl_lib.data import Sample, build_transforms
from idkl_lib.data.cache import CacheMismatchError, DecodedImageCache
from idkl_lib.data.gpu_augment import BatchAugment
from idkl_lib.data.image_dataset import load_rgb


def _write_images(folder: Path, n: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(n):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 256, (40 + i, 20, 3), dtype=np.uint8)).save(path)
        samples.append(Sample(str(path), i, 1, 0))
    return samples


def test_cache_holds_the_pil_resize_and_is_rebuilt_when_a_file_changes(tmp_path: Path) -> None:
    samples = _write_images(tmp_path / "img", 3)
    cache = DecodedImageCache.build(samples, tmp_path / "cache", 32, 16)
    images = cache.read([2, 0])
    assert images.shape == (2, 3, 32, 16) and images.dtype == torch.uint8
    for row, i in enumerate([2, 0]):
        expected = np.asarray(T.Resize((32, 16))(load_rgb(samples[i].path)))
        assert np.array_equal(images[row].permute(1, 2, 0).numpy(), expected)
    assert DecodedImageCache.open(samples, tmp_path / "cache", 32, 16).read([1]).equal(cache.read([1]))
    with pytest.raises(CacheMismatchError, match="32x16 images, the run uses 64x32"):
        DecodedImageCache.open(samples, tmp_path / "cache", 64, 32)
    # the dataset changes: one file is rewritten with other content
    Image.fromarray(np.zeros((50, 20, 3), dtype=np.uint8)).save(samples[1].path)
    os.utime(samples[1].path, ns=(1, 1))
    with pytest.raises(CacheMismatchError, match=r"image 1 \(.*1\.jpg\)"):
        DecodedImageCache.open(samples, tmp_path / "cache", 32, 16)
    with pytest.warns(RuntimeWarning, match=r"rebuilding the decoded cache: .*1\.jpg"):
        rebuilt = DecodedImageCache.build(samples, tmp_path / "cache", 32, 16)
    assert int(rebuilt.read([1]).max()) == 0
    with pytest.raises(CacheMismatchError, match="the dataset has 2 images, the cache 3"):
        DecodedImageCache.open(samples[:2], tmp_path / "cache", 32, 16)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        DecodedImageCache.build([Sample(str(tmp_path / "missing.jpg"), 0, 1, 0)], tmp_path / "c2", 32, 16)


def test_batched_augmentation_has_the_pil_paths_distribution() -> None:
    # one 32x16 image (left half dark, right half bright, plus noise) augmented n times by both paths
    h, w, n = 32, 16, 3000
    rng = np.random.default_rng(0)
    base = np.clip(np.where(np.arange(w) < w // 2, 40, 215)[None, :, None] + rng.normal(0, 20, (h, w, 3)), 0, 255)
    base = base.astype(np.uint8)
    pil = build_transforms(h, w, train=True, random_erasing=0.5)
    torch.manual_seed(0)
    a = torch.stack([pil(Image.fromarray(base)) for _ in range(n)])
    gen = torch.Generator().manual_seed(1)
    b = BatchAugment(random_erasing=0.5, generator=gen)(
        torch.from_numpy(base).permute(2, 0, 1)[None].repeat(n, 1, 1, 1)
    )
    assert b.shape == a.shape and b.dtype == torch.float32
    # per-pixel mean and variance maps agree within sampling error: the mean |difference| between the two paths is
    # below the split-half spread of each path (about 2.8x the expected difference when the distributions agree)
    for stat in (lambda x: x.double().mean(0), lambda x: x.double().var(0)):
        half = n // 2
        noise = (stat(a[:half]) - stat(a[half:])).abs().mean() + (stat(b[:half]) - stat(b[half:])).abs().mean()
        assert (stat(a) - stat(b)).abs().mean() < noise, "per-pixel statistics differ more than sampling noise"
    # erasing: same rate, same erased-area distribution (erased pixels are exactly 0; nothing else is)
    area_a = (a == 0).all(1).float().mean((1, 2)).numpy()
    area_b = (b == 0).all(1).float().mean((1, 2)).numpy()
    assert abs((area_a > 0).mean() - (area_b > 0).mean()) < 0.05  # both ~0.5
    assert stats.ks_2samp(area_a[area_a > 0], area_b[area_b > 0]).pvalue > 1e-3

    # flips: the bright half is on the right unless flipped
    def flipped(x: torch.Tensor) -> np.ndarray:
        return (x[:, :, :, : w // 2].mean((1, 2, 3)) > x[:, :, :, w // 2 :].mean((1, 2, 3))).numpy()

    assert abs(flipped(a).mean() - flipped(b).mean()) < 0.05 and abs(flipped(b).mean() - 0.5) < 0.05

    # crop offsets: the horizontal shift of the dark/bright edge has the same distribution
    def edge(x: torch.Tensor) -> np.ndarray:
        col = x.mean((1, 2)).numpy()  # (n, w) column means
        return np.abs(np.diff(col, axis=1)).argmax(1)

    assert stats.ks_2samp(edge(a), edge(b)).pvalue > 1e-3
    with pytest.raises(ValueError, match="uint8"):
        BatchAugment()(torch.zeros(1, 3, 4, 4))
