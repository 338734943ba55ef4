"""The weighted loss terms: :class:`LossWeights` (read by :func:`idkl_lib.losses.compute_losses`), its presets
and groups."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import ClassVar

from . import ablation as _ablation
from .model import _is_real

# Loss-term groups (idkl_lib.config.ablation.TERM_GROUPS) name sets of terms for ablations (``LossWeights.without``).
_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(_ablation.TERM_GROUPS))
_RENAMED = {"distill": "kd", "modality": "mod"}  # earlier group names, answered with the current one


@dataclass(frozen=True)
class LossWeights:
    """Weight of every named IDKL loss term (docs/method.md#3-losses); a zero weight turns the term off (not computed).

    The defaults are the reference's SYSU-MM01 / LLCM configuration (its ``batch == 120`` branch), so
    ``sum(compute_losses(...).values())`` equals the total objective of
    docs/method.md#38-total-objective-and-weight-presets. Use :meth:`preset` for the other configurations and
    :meth:`replace` / :meth:`without` for overrides and ablations.

    Attributes:
        id: L_id, cross-entropy of the shared-branch logits (docs/method.md#32-identity-losses).
        id_sp: L_id_sp, cross-entropy of the specific-branch logits (docs/method.md#32-identity-losses).
        tri_sh: Batch-hard triplet loss on the pre-BN shared feature (docs/method.md#33-triplet-losses).
        tri_sp: Batch-hard triplet loss on the pre-BN specific feature (docs/method.md#33-triplet-losses).
        ip_entropy: Information purifier, entropy-margin term L_F (docs/method.md#34-information-purifier-losses; the
            reference weights L_F + L_mIN by 0.1).
        ip_centroid: Information purifier, IN modality-centroid term L_mIN
            (docs/method.md#34-information-purifier-losses).
        tgsa_inter: TGSA shared <-> specific distance-graph alignment, ``kl_inter_v + kl_inter_i``
            (docs/method.md#35-tgsa-graph-alignment).
        tgsa_intra: TGSA visible <-> infrared alignment in the shared branch, ``kl_intra1``
            (docs/method.md#35-tgsa-graph-alignment; MDR).
        tgsa_intra_cross: TGSA alignment with the mixed set X_cross, ``kl_intra2 + kl_intra3``
            (docs/method.md#35-tgsa-graph-alignment; MDR).
        csa1_inter: CSA1 shared <-> specific logit alignment, ``inter_bg_v + inter_bg_i``
            (docs/method.md#36-csa-logit-alignment).
        csa1_intra: CSA1 visible <-> infrared logit alignment in the shared branch, ``intra_bg``
            (docs/method.md#36-csa-logit-alignment; MDR).
        csa2_inter: CSA2 set-level shared <-> specific alignment, ``inter_Sm`` (docs/method.md#36-csa-logit-alignment).
        csa2_intra: CSA2 set-level visible <-> infrared alignment, ``intra_Sm``
            (docs/method.md#36-csa-logit-alignment; MDR).
        disc: L_unad, modality discriminator on the specific feature with the true labels
            (docs/method.md#37-modality-discriminator-and-confuser-losses).
        confuser: L_pse, modality confuser on the shared feature with the half-flipped pseudo labels
            (docs/method.md#37-modality-discriminator-and-confuser-losses).
    """

    id: float = 1.0
    id_sp: float = 1.0
    tri_sh: float = 1.0
    tri_sp: float = 1.0
    ip_entropy: float = 0.1
    ip_centroid: float = 0.1
    tgsa_inter: float = 0.6
    tgsa_intra: float = 1.0
    tgsa_intra_cross: float = 1.0
    csa1_inter: float = 0.8
    csa1_intra: float = 1.0
    csa2_inter: float = 0.8
    csa2_intra: float = 1.0
    disc: float = 1.0
    confuser: float = 1.0

    PRESETS: ClassVar[tuple[str, ...]] = (
        *("sysu", "llcm", "regdb", "small_batch", "baseline", "no_distill"),
        *_ablation.ABLATION_PRESETS,  # the paper's ablation study (idkl_lib/config/ablation.py, docs/ablation.md)
    )
    GROUPS: ClassVar[Mapping[str, tuple[str, ...]]] = _GROUPS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not _is_real(value) or not math.isfinite(value):
                raise ValueError(f"LossWeights.{f.name}={value!r} must be a finite number")
            if value < 0:
                raise ValueError(
                    f"LossWeights.{f.name}={value!r} is negative; use a weight >= 0 (0 switches the term off)"
                )
            object.__setattr__(self, f.name, float(value))
        if not any(getattr(self, f.name) for f in fields(self)):
            raise ValueError("LossWeights has every weight at 0; at least one loss term must be switched on")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The term names, in the order :func:`~idkl_lib.losses.compute_losses` returns them."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def preset(cls, name: str) -> LossWeights:
        """The weights of a named configuration.

        * ``"sysu"`` / ``"llcm"``: the reference's ``batch == 120`` branch with TGSA on (the defaults).
        * ``"regdb"``: the RegDB config, where ``distalign`` is off, so every TGSA term is 0 (the reference's other
          branch then only lowers the CSA inter weights to 0.3). Note the reference picks these weights from the batch
          size (docs/method.md#7-deliberate-deviations); here they are explicit.
        * ``"small_batch"``: the reference's ``batch != 120`` branch *with* TGSA on (e.g. SYSU trained with another
          P x K): ``0.1 * (kl_intra1 + kl_inter_v + kl_inter_i)``, no X_cross terms, CSA inter weights 0.3.
        * ``"baseline"``: identity + triplet losses on both streams only (no purifier, no distillation, no modality
          losses); the comparison model for the Grad-CAM study.
        * ``"no_distill"``: ``"sysu"`` without TGSA, CSA1 and CSA2.
        """
        if name in ("sysu", "llcm"):
            return cls()
        if name == "regdb":
            return cls(tgsa_inter=0.0, tgsa_intra=0.0, tgsa_intra_cross=0.0, csa1_inter=0.3, csa2_inter=0.3)
        if name == "small_batch":
            return cls(tgsa_inter=0.1, tgsa_intra=0.1, tgsa_intra_cross=0.0, csa1_inter=0.3, csa2_inter=0.3)
        if name == "baseline":
            return cls().only("core")
        if name == "no_distill":
            return cls().without("kd")
        if (ablation := _ablation.resolve(name)) is not None:  # "+ip", "full-tgsa", "+ip@small_batch", ...
            base, off = ablation
            return cls.preset(base).replace(**dict.fromkeys(off, 0.0))
        raise ValueError(f"unknown LossWeights preset {name!r}; valid presets: {', '.join(cls.PRESETS)}")

    def replace(self, **overrides: float) -> LossWeights:
        """A copy with some weights changed, e.g. ``weights.replace(tgsa_inter=0.3)``; the result is validated."""
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown loss term(s) {', '.join(unknown)}; valid names: {', '.join(self.names())}")
        return dataclasses.replace(self, **overrides)

    def without(self, *names: str) -> LossWeights:
        """A copy with the given terms or groups set to 0 (groups: :attr:`GROUPS`, the names docs/ablation.md uses,
        e.g. ``"tgsa"``, ``"mod"``, ``"kd"``, ``"mdr"``)."""
        return self.replace(**dict.fromkeys(self._expand(names), 0.0))

    def only(self, *names: str) -> LossWeights:
        """A copy keeping only the given terms or groups (others set to 0)."""
        keep = set(self._expand(names))
        return self.replace(**{n: 0.0 for n in self.names() if n not in keep})

    def active(self) -> dict[str, float]:
        """The switched-on terms, ``{name: weight}`` for every non-zero weight, in :meth:`names` order."""
        return {n: getattr(self, n) for n in self.names() if getattr(self, n) != 0.0}

    def as_dict(self) -> dict[str, float]:
        """Every weight, ``{name: weight}``."""
        return {n: getattr(self, n) for n in self.names()}

    @classmethod
    def _expand(cls, names: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for name in names:
            if name in cls.GROUPS:
                out.extend(cls.GROUPS[name])
            elif name in cls.names():
                out.append(name)
            elif name in _RENAMED:
                groups = ", ".join(cls.GROUPS)
                raise ValueError(f"loss-term group {name!r} is called {_RENAMED[name]!r}; groups: {groups}")
            else:
                raise ValueError(
                    f"unknown loss term or group {name!r}; terms: {', '.join(cls.names())}; "
                    f"groups: {', '.join(cls.GROUPS)}"
                )
        return out
