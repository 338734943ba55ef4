"""The IN-guided information purifier of the specific stream (docs/method.md#22-in-guided-information-purifier).

Given the specific tail's map ``F``, instance normalisation gives ``IN(F)`` (modality/style statistics removed), and
two per-pixel gating nets produce ``m_IN = g_IN(IN(F))`` and ``m_F = g_F(F)``. The masks are cross-wired: the
IN-derived mask gates the raw branch and the raw-derived mask gates the IN branch,

    x_sp = m_IN * (m_F * F) + m_F * (m_IN * IN(F)).

GeM pooling of ``x_sp`` is the specific feature F_sp. The intermediate maps feed the purifier losses
(docs/method.md#34-information-purifier-losses).
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class PurifierMaps(NamedTuple):
    """The purifier's output maps, each (B, C, H, W).

    Attributes:
        out: ``x_sp = m_IN * (m_F * F) + m_F * (m_IN * IN(F))``, the purified specific map.
        raw_gated: ``m_F * F``, the purified raw map.
        inorm: ``IN(F)``.
        inorm_gated: ``m_IN * IN(F)``, the purified IN map.
    """

    out: Tensor
    raw_gated: Tensor
    inorm: Tensor
    inorm_gated: Tensor


class GatingNet(nn.Sequential):
    """Per-pixel gate: 1x1 conv C -> C/r (no bias) -> ReLU -> 1x1 conv C/r -> C (no bias) -> sigmoid.

    No pooling: the output is a full (B, C, H, W) mask in (0, 1), unlike a squeeze-and-excitation vector.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(
                f"GatingNet: channels={channels} // reduction={reduction} is 0; use a smaller reduction or a wider "
                "backbone (base_width)"
            )
        super().__init__(
            nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
            nn.Sigmoid(),
        )


class InformationPurifier(nn.Module):
    """IN-guided information purifier (docs/method.md#22-in-guided-information-purifier).

    Args:
        channels: Channels C of the specific map.
        reduction: Channel reduction r of the gating nets (reference: 16).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        # Running statistics are tracked as in the reference; eval mode uses them
        # (docs/method.md#22-in-guided-information-purifier).
        self.inorm = nn.InstanceNorm2d(channels, affine=True, track_running_stats=True)
        self.gate_in = GatingNet(channels, reduction)  # m_IN, computed from IN(F); the reference's ``mask1``
        self.gate_raw = GatingNet(channels, reduction)  # m_F, computed from F; the reference's ``mask2``

    def forward(self, feat: Tensor) -> PurifierMaps:
        """The specific tail's map F (B, C, H, W) -> :class:`PurifierMaps`."""
        inorm = self.inorm(feat)
        m_in = self.gate_in(inorm)
        m_raw = self.gate_raw(feat)
        raw_gated = m_raw * feat
        inorm_gated = m_in * inorm
        return PurifierMaps(
            out=m_in * raw_gated + m_raw * inorm_gated, raw_gated=raw_gated, inorm=inorm, inorm_gated=inorm_gated
        )
