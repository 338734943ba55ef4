"""Loss presets of the paper's ablation study: baseline -> + information purifier -> + TGSA -> + CSA -> full IDKL,
and leave-one-out variants of the full objective.

Every name is a :meth:`idkl_lib.config.LossWeights.preset` name, so ``loss_preset=+ip`` works wherever a preset does
(notebook 02, ``python -m idkl_lib.train --loss-preset``, sweeps). A preset is a *base* preset's weights with some
groups of terms switched off; the weights that stay on are the base's, never new ones. The base is ``sysu`` (the
reference's weights for its batch of 120) unless the name ends in ``@small_batch`` (the reference's weights for any
other batch size, which the reference itself would use at this workbench's CPU batch sizes), e.g. ``+ip@small_batch``.

Groups (term names of :class:`~idkl_lib.config.LossWeights`; the table with weights is ``docs/ablation.md``):

* identity + triplet (always on): ``id``, ``id_sp``, ``tri_sh``, ``tri_sp``;
* ``ip``, the information purifier: ``ip_entropy``, ``ip_centroid``;
* ``tgsa``, triplet-guided similarity alignment: ``tgsa_inter``, ``tgsa_intra``, ``tgsa_intra_cross``;
* ``csa``, cross-semantic (logit) alignment: ``csa1_inter``, ``csa1_intra``, ``csa2_inter``, ``csa2_intra``;
* ``mod``, the modality discriminator and confuser: ``disc``, ``confuser``;
* ``kd``, all of the distillation: ``tgsa`` + ``csa``;
* ``mdr``, the cross-modality (visible <-> infrared) terms inside ``tgsa`` and ``csa``: ``tgsa_intra``,
  ``tgsa_intra_cross``, ``csa1_intra``, ``csa2_intra``.

The cumulative presets add ``ip``, then ``tgsa``, then ``csa``; ``full`` then adds the modality losses, which are the
remaining part of the IDKL objective, so ``full`` equals its base preset exactly. The leave-one-out presets
``full-<group>`` switch one group off.

This module holds data only (it imports nothing from the package), so :mod:`idkl_lib.config` can register the names.
"""

from __future__ import annotations

__all__ = [
    "ABLATION_BASES",
    "ABLATION_GROUPS",
    "ABLATION_PRESETS",
    "CUMULATIVE",
    "LEAVE_ONE_OUT",
    "TERM_GROUPS",
    "resolve",
]

TERM_GROUPS: dict[str, tuple[str, ...]] = {
    "core": ("id", "id_sp", "tri_sh", "tri_sp"),
    "identity": ("id", "id_sp"),
    "triplet": ("tri_sh", "tri_sp"),
    "ip": ("ip_entropy", "ip_centroid"),
    "tgsa": ("tgsa_inter", "tgsa_intra", "tgsa_intra_cross"),
    "csa1": ("csa1_inter", "csa1_intra"),
    "csa2": ("csa2_inter", "csa2_intra"),
    "csa": ("csa1_inter", "csa1_intra", "csa2_inter", "csa2_intra"),
    "kd": ("tgsa_inter", "tgsa_intra", "tgsa_intra_cross", "csa1_inter", "csa1_intra", "csa2_inter", "csa2_intra"),
    "inter": ("tgsa_inter", "csa1_inter", "csa2_inter"),
    "mdr": ("tgsa_intra", "tgsa_intra_cross", "csa1_intra", "csa2_intra"),
    "mod": ("disc", "confuser"),
}
"""Groups of loss terms (docs/method.md#39-term-names-and-groups), read by ``LossWeights.GROUPS``,
``LossWeights.without`` / ``only`` and the ablation presets: one vocabulary, so ``without("mod")`` switches off what
``full-mod`` does. "mdr" is this project's name for the cross-modality (visible <-> infrared) alignment terms inside
the shared branch; ``identity``/``triplet`` and ``csa1``/``csa2`` split ``core`` and ``csa``."""

ABLATION_GROUPS: dict[str, tuple[str, ...]] = {
    name: TERM_GROUPS[name] for name in ("core", "ip", "tgsa", "csa", "mod", "kd", "mdr")
}
"""The groups the ablation presets switch, named as in :data:`TERM_GROUPS` (``core`` is never switched off)."""

CUMULATIVE: dict[str, tuple[str, ...]] = {
    "baseline": ("core",),
    "+ip": ("core", "ip"),
    "+ip+tgsa": ("core", "ip", "tgsa"),
    "+ip+tgsa+csa": ("core", "ip", "tgsa", "csa"),
    "full": ("core", "ip", "tgsa", "csa", "mod"),
}
"""The paper's study in order: preset -> the groups that are on (every other term is off)."""

LEAVE_ONE_OUT: dict[str, str] = {f"full-{group}": group for group in ("ip", "tgsa", "csa", "mod", "kd", "mdr")}
"""``full`` minus one group: preset -> the group switched off."""

ABLATION_BASES: tuple[str, ...] = ("sysu", "small_batch")
"""Base presets the ablation presets can start from (``NAME`` = ``NAME`` on ``sysu``; ``NAME@small_batch``)."""

_NAMES: tuple[str, ...] = (*(n for n in CUMULATIVE if n != "baseline"), *LEAVE_ONE_OUT)
ABLATION_PRESETS: tuple[str, ...] = (
    *_NAMES,
    *(f"{n}@{base}" for base in ABLATION_BASES[1:] for n in (*CUMULATIVE, *LEAVE_ONE_OUT)),
)
"""The preset names this module adds (``baseline`` on ``sysu`` is the existing ``baseline`` preset)."""


def resolve(name: str) -> tuple[str, tuple[str, ...]] | None:
    """``(base preset, terms switched off)`` of an ablation preset name, or None when ``name`` is not one.

    Example: ``resolve("+ip")`` -> ``("sysu", (tgsa..., csa..., "disc", "confuser"))``.
    """
    stem, at, base = name.partition("@")
    if at and base not in ABLATION_BASES[1:]:
        return None
    base = base or ABLATION_BASES[0]
    if stem in CUMULATIVE:
        on = {term for group in CUMULATIVE[stem] for term in ABLATION_GROUPS[group]}
        every = {term for terms in ABLATION_GROUPS.values() for term in terms}
        return base, tuple(sorted(every - on))
    if stem in LEAVE_ONE_OUT:
        return base, ABLATION_GROUPS[LEAVE_ONE_OUT[stem]]
    return None
