"""The dual-tail ResNet of IDKL (docs/method.md#21-shared-stem-and-two-tails) and ImageNet weight loading.

One stem (conv1, bn1, relu, maxpool, layer1, layer2) is shared by every image; its output feeds two separate
layer3 + layer4 tails, the *shared* tail and the *specific* tail (layer4 stride 1 by default). There are no
per-modality weights: the specific tail becomes modality-specific only through its losses. This replaces the
reference's three full ResNet instances (docs/method.md#7-deliberate-deviations) with one network holding the same live
parameters.

Blocks are torchvision's ``BasicBlock`` / ``Bottleneck``; parameter names follow torchvision's, with the tails
prefixed (``shared_tail.layer3.0.conv1.weight``), so a torchvision state dict maps onto the network directly.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.hub
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, ResNet50_Weights
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

_ARCH_SPECS: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}
# The reference loads resnet50-19c8e357.pth; torchvision's IMAGENET1K_V1 (resnet50-0676ba61.pth) holds the same
# weights re-saved (top-1 76.13).
_IMAGENET_WEIGHTS = {"resnet18": ResNet18_Weights.IMAGENET1K_V1, "resnet50": ResNet50_Weights.IMAGENET1K_V1}
_TAIL_LAYERS = ("layer3", "layer4")


def _make_stage(
    block: type[BasicBlock] | type[Bottleneck], inplanes: int, planes: int, depth: int, stride: int
) -> nn.Sequential:
    """``depth`` residual blocks; the first changes the stride / width through a 1x1 conv + BN shortcut."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_planes:
        downsample = nn.Sequential(conv1x1(inplanes, out_planes, stride), nn.BatchNorm2d(out_planes))
    blocks: list[nn.Module] = [block(inplanes, planes, stride, downsample)]
    blocks += [block(out_planes, planes) for _ in range(1, depth)]
    return nn.Sequential(*blocks)


class ResNetTail(nn.Module):
    """layer3 followed by layer4: (B, C2, h, w) -> (B, out_channels, h', w')."""

    def __init__(self, layer3: nn.Sequential, layer4: nn.Sequential) -> None:
        super().__init__()
        self.layer3 = layer3
        self.layer4 = layer4

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(x))

    @property
    def last_block(self) -> nn.Module:
        """The final residual block (the Grad-CAM target layer)."""
        return self.layer4[-1]


class DualTailResNet(nn.Module):
    """Shared ResNet stem + layer1 + layer2 followed by two independent layer3 + layer4 tails.

    Args:
        arch: ``"resnet50"`` or ``"resnet18"``.
        base_width: Stem width (64 = standard). Stage widths scale with it (``w, 2w, 4w, 8w`` planes), giving narrow
            variants for CPU use.
        last_stride: Stride of layer4 in both tails (1 = the reference's ``drop_last_stride``).

    Attributes:
        out_channels: Channels of each tail's output map (2048 for a standard ResNet-50, 512 for ResNet-18).
    """

    def __init__(self, arch: str = "resnet50", base_width: int = 64, last_stride: int = 1) -> None:
        super().__init__()
        if arch not in _ARCH_SPECS:
            raise ValueError(f"unknown arch {arch!r}; valid architectures: {', '.join(_ARCH_SPECS)}")
        if base_width < 1:
            raise ValueError(f"base_width={base_width} must be a positive int")
        block, depths = _ARCH_SPECS[arch]
        w, exp = base_width, block.expansion
        self.arch = arch
        self.conv1 = nn.Conv2d(3, w, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _make_stage(block, w, w, depths[0], 1)
        self.layer2 = _make_stage(block, w * exp, 2 * w, depths[1], 2)

        def make_tail() -> ResNetTail:
            layer3 = _make_stage(block, 2 * w * exp, 4 * w, depths[2], 2)
            return ResNetTail(layer3, _make_stage(block, 4 * w * exp, 8 * w, depths[3], last_stride))

        self.shared_tail = make_tail()
        self.specific_tail = make_tail()
        self.out_channels = 8 * w * exp
        for m in self.modules():  # torchvision / reference ResNet init (docs/method.md#21-shared-stem-and-two-tails)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stem(self, images: Tensor) -> Tensor:
        """Images (B, 3, H, W) -> the layer2 map (B, C2, H/8, W/8) both tails start from."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        return self.layer2(self.layer1(x))

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, 3, H, W) -> (shared map, specific map), each (B, out_channels, h, w)."""
        x = self.forward_stem(images)
        return self.shared_tail(x), self.specific_tail(x)

    def load_torchvision_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a torchvision ResNet state dict; its layer3/layer4 weights go into BOTH tails.

        ``fc.*`` keys are ignored. Missing keys or shape mismatches raise a ``RuntimeError`` naming them (the file is
        for another architecture); other unexpected keys are reported with ``warnings.warn``.
        """
        own = self.state_dict()
        mapped: dict[str, Tensor] = {}
        unexpected: list[str] = []
        for key, value in state_dict.items():
            if key.startswith("fc."):
                continue
            top = key.split(".", 1)[0]
            targets = [f"{tail}.{key}" for tail in ("shared_tail", "specific_tail")] if top in _TAIL_LAYERS else [key]
            for target in targets:
                if target in own:
                    mapped[target] = value
                else:
                    unexpected.append(key)
        missing = sorted(k for k in own if k not in mapped and not k.endswith("num_batches_tracked"))
        mismatched = [
            f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            for k, v in mapped.items()
            if v.shape != own[k].shape
        ]
        if missing or mismatched:
            stem = state_dict.get("conv1.weight")
            found = "" if stem is None else f"the file's conv1.weight is {tuple(stem.shape)} (width {stem.shape[0]}), "
            raise RuntimeError(
                f"the state dict does not fit a {self.arch} backbone of width {self.conv1.out_channels} "
                f"(conv1.weight {tuple(self.conv1.weight.shape)}): {found}"
                f"{len(missing)} missing key(s) {_preview(missing)}, {len(mismatched)} shape mismatch(es) "
                f"{_preview(mismatched)}. Pass a torchvision {self.arch} checkpoint (torchvision key names)."
            )
        if unexpected:
            warnings.warn(
                f"ignored {len(set(unexpected))} unexpected key(s) in the {self.arch} state dict: "
                f"{_preview(sorted(set(unexpected)))}",
                stacklevel=2,
            )
        self.load_state_dict(mapped, strict=False)


def imagenet_checkpoint_path(arch: str) -> Path:
    """Where the torch hub cache keeps (or would keep) the ImageNet checkpoint of ``arch``."""
    url = _IMAGENET_WEIGHTS[arch].url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def load_imagenet_state_dict(arch: str, pretrained: bool | str | os.PathLike[str]) -> dict[str, Tensor]:
    """The torchvision-keyed ImageNet state dict of ``arch``.

    Args:
        arch: ``"resnet50"`` or ``"resnet18"``.
        pretrained: ``True`` for torchvision's ``IMAGENET1K_V1`` weights (read from the torch hub cache, downloaded
            when absent), or the path of a local state dict file (a plain state dict or ``{"state_dict": ...}``).

    Raises:
        RuntimeError: The weights cannot be downloaded (offline); the message gives the cache path to place the
            file at and the alternatives.
        FileNotFoundError: ``pretrained`` is a path that does not exist.
    """
    if arch not in _IMAGENET_WEIGHTS:
        raise ValueError(f"no ImageNet weights for arch {arch!r}; valid architectures: {', '.join(_IMAGENET_WEIGHTS)}")
    if pretrained is True:
        url = _IMAGENET_WEIGHTS[arch].url
        try:
            return torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False, weights_only=True)
        except Exception as err:
            raise RuntimeError(
                f"could not load the ImageNet weights of {arch} from {url} ({type(err).__name__}: {err}). "
                f"If this machine is offline, download that file elsewhere and put it at "
                f"{imagenet_checkpoint_path(arch)}, or pass pretrained='/path/to/{os.path.basename(url)}', "
                "or use pretrained=False."
            ) from err
    if pretrained is False:
        raise ValueError("pretrained=False asks for no weights; do not call load_imagenet_state_dict")
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained={str(pretrained)!r}: no such file. Pass the path of a torchvision {arch} state dict "
            f"(.pth), pretrained=True to use the hub cache ({imagenet_checkpoint_path(arch)}), or pretrained=False."
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"pretrained={str(pretrained)!r}: not a readable torch state dict ({reason}); pass the path of a "
            f"torchvision {arch} state dict (.pth), pretrained=True, or pretrained=False"
        ) from None
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    return dict(obj)


def _preview(items: list[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"
