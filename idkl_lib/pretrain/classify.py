"""Plain identity classification of the pretraining population (no infrared, no IDKL term), and the export of the
trained backbone as a torchvision-keyed state dict.

The network is the demo's backbone (:class:`idkl_lib.models.backbone.DualTailResNet` of the given ``arch`` and
``base_width``), of which the stem and the *shared* tail are trained, followed by global average pooling and a linear
classifier, as an ImageNet classifier is. The export renames ``shared_tail.layer3/4`` to ``layer3/4`` and the
classifier to ``fc``: the keys and shapes of a torchvision ResNet of that width, which ``pretrained=PATH`` copies
into both tails of the IDKL network, as it does with ImageNet weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..models.backbone import DualTailResNet


class PretrainNet(nn.Module):
    """Stem + shared tail of a :class:`DualTailResNet`, global average pooling, a linear identity classifier."""

    def __init__(self, arch: str, base_width: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = DualTailResNet(arch, base_width, last_stride=1)
        self.fc = nn.Linear(self.backbone.out_channels, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> identity logits (B, num_classes)."""
        fmap = self.backbone.shared_tail(self.backbone.forward_stem(images))
        return self.fc(fmap.mean(dim=(2, 3)))

    def torchvision_state_dict(self) -> dict[str, Tensor]:
        """The trained weights under torchvision ResNet key names (the specific tail, never trained, is left out)."""
        out: dict[str, Tensor] = {}
        for key, value in self.backbone.state_dict().items():
            if key.startswith("specific_tail."):
                continue
            out[key.removeprefix("shared_tail.")] = value.detach().clone()
        out["fc.weight"] = self.fc.weight.detach().clone()
        out["fc.bias"] = self.fc.bias.detach().clone()
        return out


@dataclass(frozen=True)
class ClassifyResult:
    """The trained network, the final epoch's training loss and accuracy, and the training time in seconds."""

    net: PretrainNet
    loss: float
    accuracy: float
    seconds: float


def _to_tensor(images: np.ndarray) -> Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, H, W), normalised as the training transforms do."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_classifier(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    arch: str,
    base_width: int,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    log: Callable[[str], None] = print,
) -> ClassifyResult:
    """Train :class:`PretrainNet` to classify ``images`` by ``labels`` with Adam and cross-entropy.

    Shuffled batches, random horizontal flips, the learning rate times 0.1 for the last fifth of the epochs. The run
    is seeded by ``seed`` (initialisation, order and flips).
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    num_classes = int(labels.max()) + 1
    net = PretrainNet(arch, base_width, num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=5e-4)
    decay_at = max(1, int(round(0.8 * epochs)))
    targets = torch.from_numpy(labels)
    start = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    net.train()
    for epoch in range(epochs):
        if epoch == decay_at:
            for group in opt.param_groups:
                group["lr"] = lr * 0.1
        order = torch.randperm(len(labels), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for first in range(0, len(order) - batch_size + 1, batch_size):  # full batches only (BatchNorm)
            idx = order[first : first + batch_size]
            x = _to_tensor(images[idx.numpy()])
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x[flip] = x[flip].flip(3)
            y = targets[idx]
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        log(
            f"pretrain epoch {epoch + 1}/{epochs}: loss {loss_sum / max(seen, 1):.3f}, "
            f"train accuracy {correct / max(seen, 1):.3f} ({time.perf_counter() - start:.0f} s)"
        )
    net.eval()
    return ClassifyResult(net, loss_sum / max(seen, 1), correct / max(seen, 1), time.perf_counter() - start)
