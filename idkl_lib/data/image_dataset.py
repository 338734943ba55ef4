"""A torch ``Dataset`` over :class:`~idkl_lib.data.records.Sample` records."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

from .records import Sample

Transform = Callable[[Image.Image], torch.Tensor]


def load_rgb(path: str) -> Image.Image:
    """Open an image and fully decode it as RGB (grayscale, palette and RGBA files are converted).

    Raises:
        FileNotFoundError: the file does not exist.
        OSError: the file cannot be decoded (corrupt or truncated); the message names it.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() forces the full decode, so truncation surfaces here
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}; re-parse the dataset or restore the file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise OSError(
            f"cannot read image {path} ({type(exc).__name__}: {exc}); the file is corrupt or truncated. Replace it, or "
            "build the ImageDataset with skip_corrupt=True to substitute a neighbouring sample."
        ) from exc


class ImageDataset(Dataset):
    """Images of a list of records, with their labels.

    ``dataset[i]`` returns ``(image, pid, camid, modality, index)``: ``image`` is the transformed image (a
    ``(3, H, W)`` float tensor; without a transform, ``to_tensor`` of the RGB image, values in 0..1) and the other
    four are Python ints (the default collate turns them into ``(B,)`` int64 tensors). ``modality`` is 0 for
    visible and 1 for infrared. ``index`` is the index of the record actually returned.

    Every image is converted to RGB (infrared and grayscale files become three equal channels).

    Corrupt files: by default an unreadable or truncated image raises OSError naming the file. With
    ``skip_corrupt=True`` a warning naming the file is issued and the nearest readable record (by index distance,
    the later one first on ties) **with the same pid and modality** is returned instead, so the sampler's
    [infrared, visible] batch layout is kept; if that identity has no other readable image in that modality, the
    nearest readable record of any identity is returned (its own labels and ``index`` come with it). Missing files
    always raise FileNotFoundError.

    Args:
        samples: The records, e.g. ``VIDataset.train``.
        transform: Maps an RGB PIL image to a ``(3, H, W)`` tensor (see :func:`build_transforms`).
        skip_corrupt: Substitute neighbouring samples for unreadable images instead of raising.
    """

    def __init__(
        self, samples: Sequence[Sample], transform: Transform | None = None, skip_corrupt: bool = False
    ) -> None:
        if isinstance(samples, (str, bytes)) or not isinstance(samples, Sequence):
            raise TypeError(f"ImageDataset: samples must be a sequence of Sample records, got {type(samples).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"ImageDataset: transform must be callable or None, got {type(transform).__name__}")
        self.samples: tuple[Sample, ...] = tuple(samples)
        self.transform = transform
        self.skip_corrupt = bool(skip_corrupt)

    def __len__(self) -> int:
        return len(self.samples)

    def _candidates(self, index: int) -> list[int]:
        """Other indices ordered by distance to ``index``, same pid and modality first."""
        n = len(self.samples)
        order = sorted((i for i in range(n) if i != index), key=lambda i: (abs(i - index), i < index))
        ref = self.samples[index]
        same = [i for i in order if self.samples[i].pid == ref.pid and self.samples[i].modality == ref.modality]
        taken = set(same)
        return same + [i for i in order if i not in taken]

    def _load(self, index: int) -> tuple[Image.Image, int]:
        try:
            return load_rgb(self.samples[index].path), index
        except FileNotFoundError:
            raise
        except OSError as exc:
            if not self.skip_corrupt:
                raise
            first_error = exc
        for other in self._candidates(index):
            try:
                image = load_rgb(self.samples[other].path)
            except FileNotFoundError:
                raise
            except OSError:
                continue
            warnings.warn(
                f"ImageDataset: skipping unreadable image {self.samples[index].path} (index {index}); "
                f"returning {self.samples[other].path} (index {other}) instead",
                RuntimeWarning,
                stacklevel=3,
            )
            return image, other
        raise OSError(f"ImageDataset: no readable image left to substitute for index {index}") from first_error

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int, int, int]:
        index = operator.index(index)
        if not -len(self.samples) <= index < len(self.samples):
            raise IndexError(f"ImageDataset index {index} out of range for {len(self.samples)} samples")
        image, used = self._load(index % len(self.samples))
        sample = self.samples[used]
        tensor = self.transform(image) if self.transform is not None else to_tensor(image)
        return tensor, sample.pid, sample.camid, sample.modality, used


def load_images(samples: Sequence[Sample], height: int, width: int) -> torch.Tensor:
    """The test-time model inputs of some records (for figures and Grad-CAM): ``(N, 3, H, W)`` normalised tensors."""
    from .transforms import build_transforms

    transform = build_transforms(height, width, train=False)
    return torch.stack([transform(load_rgb(s.path)) for s in samples])
