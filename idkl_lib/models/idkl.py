"""The IDKL network (Ren & Zhang, CVPR 2024; docs/method.md#2-architecture): dual-tail backbone, purifier, BNNecks and
heads.

``IDKLModel.forward`` returns one :class:`IDKLOutput` in train and eval mode alike; the losses
(:func:`idkl_lib.losses.compute_losses`) read the fields they need. ``IDKLModel.embed`` returns the retrieval
feature (post-BN shared by default, docs/method.md#26-retrieval-feature).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..config import ModelConfig
from .backbone import DualTailResNet, load_imagenet_state_dict
from .heads import BNNeck, GeM, ModalityDiscriminator
from .purifier import InformationPurifier

Which = Literal["shared", "specific", "concat"]
_WHICH: tuple[str, ...] = ("shared", "specific", "concat")


@dataclass
class IDKLOutput:
    """Everything one forward pass produces. B = batch size, D = feature width, N = number of identities.

    Attributes:
        feat_sh: Pre-BN shared feature F_sh = GeM(shared map), (B, D).
        feat_sp: Pre-BN specific feature F_sp = GeM(purified specific map), (B, D).
        bn_sh: Post-BNNeck shared feature (the retrieval feature), (B, D).
        bn_sp: Post-BNNeck specific feature, (B, D).
        logits_sh: Identity logits of the shared branch, (B, N).
        logits_sp: Identity logits of the specific branch, (B, N).
        ip_feat_raw: GeM(F), F = the specific tail's raw map, (B, D).
        ip_feat_raw_gated: GeM(m_F * F), (B, D).
        ip_feat_in: GeM(IN(F)), (B, D).
        ip_feat_in_gated: GeM(m_IN * IN(F)), (B, D).
        ip_logits_raw: Auxiliary classifier (``C_sp_f``) on ``ip_feat_raw``, (B, N).
        ip_logits_raw_gated: Auxiliary classifier on ``ip_feat_raw_gated``, (B, N).
        disc_logits: Modality discriminator (``D_special``) on ``bn_sp``, (B, 2).
        confuser_logits: Modality confuser (``D_shared_pseu``) on ``bn_sh``, (B, 2).
    """

    feat_sh: Tensor
    feat_sp: Tensor
    bn_sh: Tensor
    bn_sp: Tensor
    logits_sh: Tensor
    logits_sp: Tensor
    ip_feat_raw: Tensor
    ip_feat_raw_gated: Tensor
    ip_feat_in: Tensor
    ip_feat_in_gated: Tensor
    ip_logits_raw: Tensor
    ip_logits_raw_gated: Tensor
    disc_logits: Tensor
    confuser_logits: Tensor


class IDKLModel(nn.Module):
    """Implicit Discriminative Knowledge Learning network for visible-infrared re-ID (docs/method.md#2-architecture).

    Both modalities go through the same weights (there are no per-modality parameters,
    docs/method.md#21-shared-stem-and-two-tails): a shared ResNet stem + layer1 + layer2, then the shared tail (-> F_sh)
    and the specific tail followed by the IN-guided purifier (-> F_sp). Each feature has a BNNeck and a bias-free
    identity classifier; the specific branch also has the purifier's auxiliary classifier and a modality discriminator,
    the shared branch a modality confuser.

    Args:
        num_classes: Number of training identities.
        arch: ``"resnet50"`` or ``"resnet18"``.
        base_width: Stem width (64 = standard; smaller for narrow CPU variants).
        last_stride: Stride of layer4 in both tails.
        gem_p: Fixed GeM exponent.
        purifier_reduction: Channel reduction of the purifier's gating nets.
        disc_hidden: Hidden width of the discriminator / confuser.
        disc_dropout: Dropout of the discriminator / confuser.
    """

    def __init__(
        self,
        num_classes: int,
        arch: str = "resnet50",
        base_width: int = 64,
        last_stride: int = 1,
        gem_p: float = 3.0,
        purifier_reduction: int = 16,
        disc_hidden: int = 100,
        disc_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = DualTailResNet(arch, base_width, last_stride)
        dim = self.backbone.out_channels
        self.purifier = InformationPurifier(dim, purifier_reduction)
        self.pool = GeM(gem_p)
        self.bnneck_sh = BNNeck(dim)
        self.bnneck_sp = BNNeck(dim)
        self.classifier_sh = nn.Linear(dim, num_classes, bias=False)
        self.classifier_sp = nn.Linear(dim, num_classes, bias=False)
        # C_sp_f: trained only through L_F (docs/method.md#6-reference-behaviours-kept-on-purpose)
        self.ip_classifier = nn.Linear(dim, num_classes, bias=False)
        self.discriminator = ModalityDiscriminator(dim, disc_hidden, disc_dropout)  # D_special
        self.confuser = ModalityDiscriminator(dim, disc_hidden, disc_dropout)  # D_shared_pseu

    @property
    def feature_dim(self) -> int:
        """Width D of the shared and specific features (``embed(which="concat")`` returns 2 D)."""
        return self.backbone.out_channels

    def forward(self, images: Tensor, modality: Tensor | None = None) -> IDKLOutput:
        """Run the whole network.

        Args:
            images: (B, 3, H, W), any memory format.
            modality: Optional (B,) modality labels (0 = visible, 1 = infrared). The architecture does not use them
                (no per-modality weights); accepted so that callers can pass a batch through unchanged.

        Returns:
            :class:`IDKLOutput`; the same type in train and eval mode.
        """
        _check_inputs(images, modality)
        x_sh, feat_map = self.backbone(images)
        maps = self.purifier(feat_map)
        feat_sh, feat_sp = self.pool(x_sh), self.pool(maps.out)
        bn_sh, bn_sp = self.bnneck_sh(feat_sh), self.bnneck_sp(feat_sp)
        ip_feat_raw, ip_feat_raw_gated = self.pool(feat_map), self.pool(maps.raw_gated)
        return IDKLOutput(
            feat_sh=feat_sh,
            feat_sp=feat_sp,
            bn_sh=bn_sh,
            bn_sp=bn_sp,
            logits_sh=self.classifier_sh(bn_sh),
            logits_sp=self.classifier_sp(bn_sp),
            ip_feat_raw=ip_feat_raw,
            ip_feat_raw_gated=ip_feat_raw_gated,
            ip_feat_in=self.pool(maps.inorm),
            ip_feat_in_gated=self.pool(maps.inorm_gated),
            ip_logits_raw=self.ip_classifier(ip_feat_raw),
            ip_logits_raw_gated=self.ip_classifier(ip_feat_raw_gated),
            disc_logits=self.discriminator(bn_sp),
            confuser_logits=self.confuser(bn_sh),
        )

    def embed(
        self, images: Tensor, modality: Tensor | None = None, which: Which = "shared", flip: bool = False
    ) -> Tensor:
        """The retrieval feature: post-BNNeck shared feature by default (docs/method.md#26-retrieval-feature).

        Only the tails that ``which`` needs are run. Gradients are kept (Grad-CAM needs them): wrap the call in
        ``torch.no_grad()`` for extraction, and call ``model.eval()`` first so the BNNecks use running statistics.

        Args:
            images: (B, 3, H, W).
            modality: Optional (B,) modality labels; unused by the architecture.
            which: ``"shared"`` (B, D), ``"specific"`` (B, D) or ``"concat"`` (B, 2 D) = [shared, specific].
            flip: Average the features of the images and of their horizontal mirrors (one batched forward of 2 B
                images, so keep ``flip=False`` for Grad-CAM).

        Returns:
            (B, D) or (B, 2 D) features.
        """
        if which not in _WHICH:
            raise ValueError(f"embed(which={which!r}) is unknown; use one of {', '.join(_WHICH)}")
        _check_inputs(images, modality)
        if not flip:
            return self._embed(images, which)
        both = self._embed(torch.cat([images, images.flip(-1)]), which)
        plain, mirrored = both.chunk(2)
        return (plain + mirrored) / 2

    def _embed(self, images: Tensor, which: str) -> Tensor:
        x = self.backbone.forward_stem(images)
        parts: list[Tensor] = []
        if which in ("shared", "concat"):
            parts.append(self.bnneck_sh(self.pool(self.backbone.shared_tail(x))))
        if which in ("specific", "concat"):
            parts.append(self.bnneck_sp(self.pool(self.purifier(self.backbone.specific_tail(x)).out)))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def gradcam_target_layers(self, which: Literal["shared", "specific"] = "shared") -> list[nn.Module]:
        """The last residual block of the requested tail, for Grad-CAM (each runs exactly once per forward)."""
        if which == "shared":
            return [self.backbone.shared_tail.last_block]
        if which == "specific":
            return [self.backbone.specific_tail.last_block]
        raise ValueError(f"gradcam_target_layers(which={which!r}) is unknown; use 'shared' or 'specific'")


def build_model(cfg: ModelConfig) -> IDKLModel:
    """Build an :class:`IDKLModel` from a :class:`~idkl_lib.config.ModelConfig`, loading ImageNet weights if asked.

    With ``cfg.pretrained`` the torchvision ImageNet weights initialise the stem and layer1/layer2, and their
    layer3/layer4 are copied into both tails; the heads keep PyTorch's default initialisation.
    """
    model = IDKLModel(
        num_classes=cfg.num_classes,
        arch=cfg.arch,
        base_width=cfg.width,
        last_stride=cfg.last_stride,
        gem_p=cfg.gem_p,
        purifier_reduction=cfg.purifier_reduction,
        disc_hidden=cfg.disc_hidden,
        disc_dropout=cfg.disc_dropout,
    )
    if cfg.pretrained is not False:
        model.backbone.load_torchvision_state_dict(load_imagenet_state_dict(cfg.arch, cfg.pretrained))
    return model


def _check_inputs(images: Tensor, modality: Tensor | None) -> None:
    if images.dim() != 4 or images.size(1) != 3:
        raise ValueError(f"images must be a (B, 3, H, W) tensor, got shape {tuple(images.shape)}")
    if modality is not None and modality.shape != images.shape[:1]:
        raise ValueError(f"modality must have shape ({images.size(0)},) like the batch, got {tuple(modality.shape)}")
