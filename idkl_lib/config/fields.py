"""The building blocks of :class:`~idkl_lib.config.train.TrainConfig`'s fields: a field with its default, help text
and rule (:func:`option`), the rules shared by several fields, and the text form of the loss-weight overrides."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import field
from typing import Any

from .model import ModelConfig, _is_int
from .weights import LossWeights

RESUME_CHANGES: tuple[str, ...] = ("lr", "grad_clip", "amp")
"""Fields a resumed run may change when :attr:`TrainConfig.resume_changes` names them (a diverged run's remedies)."""

Check = Callable[[Any], "str | None"]


def option(default: Any, help: str, check: Check | None = None, choices: Sequence[Any] | None = None) -> Any:
    """A :class:`TrainConfig` field: its default, its help text (the command line's ``--help``) and its rule
    (``check(value)`` -> problem or None, or the ``choices``), in one place."""
    if choices is not None:
        allowed = tuple(choices)
        check = check or (lambda value: None if value in allowed else f"must be one of {', '.join(map(str, allowed))}")
    metadata = {"help": help, "check": check, "choices": None if choices is None else tuple(choices)}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _at_least(low: int, why: str = "") -> Check:
    return lambda value: None if value >= low else f"must be an integer >= {low}{why}"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 and math.isfinite(value) else "must be a finite number >= 0 (0 switches it off)"


def _side(value: int) -> str | None:
    if value >= 32 and value % 16 == 0:
        return None
    return "image sides must be multiples of 16 and >= 32 (each side a multiple of 16: the backbone's stride is 16)"


def _model_field(name: str) -> Check:
    """The :class:`ModelConfig` rule of one of its fields, worded for the training field of the same name."""

    def check(value: Any) -> str | None:
        try:
            ModelConfig(num_classes=2, **{name: value})
        except ValueError as exc:
            return str(exc).removeprefix(f"ModelConfig.{name}={value!r}").lstrip(": ")
        return None

    return check


def _device(value: str) -> str | None:
    from idkl_lib.utils.runtime import device_problem

    return device_problem(value)


def _milestones(value: tuple[int, ...]) -> str | None:
    if all(_is_int(m) and m >= 0 for m in value) and list(value) == sorted(value):
        return None
    return "milestones must be increasing epoch numbers >= 0, e.g. [55, 95]"


def parse_loss_overrides(text: str) -> dict[str, float]:
    """``"tgsa_inter=0,csa2_inter=0.3"`` -> ``{"tgsa_inter": 0.0, "csa2_inter": 0.3}``: the command line's text form
    of :attr:`TrainConfig.loss_overrides` (also what checkpoints of earlier versions stored).

    Raises:
        ValueError: An item is not ``name=weight``.
    """
    overrides: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        try:
            overrides[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ValueError(f"{item!r} is not 'name=weight' (e.g. 'tgsa_inter=0')")
    return overrides


def format_loss_overrides(overrides: Mapping[str, float]) -> str:
    """The text form of a ``loss_overrides`` mapping (inverse of :func:`parse_loss_overrides`)."""
    return ",".join(f"{name}={float(value)!r}" for name, value in overrides.items())


def _loss_overrides(value: Mapping[str, float] | str) -> str | None:
    try:
        overrides = parse_loss_overrides(value) if isinstance(value, str) else dict(value)
        LossWeights().replace(**overrides)
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _resume_changes(value: str) -> str | None:
    names = [n.strip() for n in value.split(",") if n.strip()]
    wrong = [n for n in names if n not in RESUME_CHANGES]
    if wrong:
        return f"unknown name(s) {', '.join(wrong)}; a comma-separated subset of {','.join(RESUME_CHANGES)}"
    return None
