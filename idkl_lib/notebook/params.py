"""The rules of the notebooks' parameters, derived from the owners of each value.

A parameter that is also a :class:`~idkl_lib.config.TrainConfig` field (``epochs``, ``lr``, ``height``, ...) is
checked by that field's own rule (:meth:`TrainConfig.field_problem`), and the recipe fields (``height``, ``p``,
``lr``, ...) also accept ``None``: the dataset's recipe (:func:`notebook_recipe`); ``w_<term>`` by
:class:`LossWeights`; the choices come from the dataset registry, the Grad-CAM methods, the model's feature branches
and the synthetic layouts.
Only the names that exist in the notebooks alone (run folders, display sizes, ...) have rules of their own here.
One name means one thing in every notebook.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import numpy as np

from idkl_lib.config import LossWeights, TrainConfig
from idkl_lib.config.recipe import RECIPE_FIELDS, resolve_recipe
from idkl_lib.data.registry import DATASETS
from idkl_lib.data.synthetic import LAYOUTS
from idkl_lib.models.idkl import Which
from idkl_lib.utils.errors import ShortMessage
from idkl_lib.viz.gradcam import CAM_METHODS

__all__ = [
    "DATASET_CHOICES",
    "RULES",
    "ParameterError",
    "check_params",
    "loss_overrides",
    "loss_weight_overrides",
    "notebook_recipe",
    "resolve_resume",
]

DATASET_CHOICES: tuple[str, ...] = ("synthetic", *DATASETS)
"""Values of the notebooks' ``dataset`` parameter."""

Rule = Callable[[Any], "str | None"]


class ParameterError(ShortMessage, ValueError):
    """A notebook parameter has a bad value; the message names the parameter and the accepted values (in a notebook:
    the message alone, no traceback)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _choice(*choices: object) -> Rule:
    return lambda value: None if value in choices else f"must be one of {', '.join(map(repr, choices))}"


def _int_at_least(minimum: int) -> Rule:
    return lambda value: None if _is_int(value) and value >= minimum else f"must be an integer >= {minimum}"


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _or_none(rule: Rule, meaning: str) -> Rule:
    """``rule``, or ``None`` (``meaning``)."""
    return lambda value: None if value is None else (rule(value) and f"{rule(value)}, or None ({meaning})")


def _fraction(value: Any) -> str | None:
    return None if _is_number(value) and 0 <= value < 1 else "must be a number in [0, 1)"


def _train_field(name: str) -> Rule:
    """The rule of the :class:`TrainConfig` field ``name`` (numpy scalars are accepted as their Python values; ``None``
    for a recipe field, meaning the dataset's recipe)."""

    def check(value: Any) -> str | None:
        if value is None and name in RECIPE_FIELDS:
            return None
        if isinstance(value, np.generic):
            value = value.item()
        return TrainConfig.field_problem(name, value)

    return check


def _weight(term: str) -> Rule:
    """``None`` (the preset's weight) or a weight :class:`LossWeights` accepts for ``term``."""

    def check(value: Any) -> str | None:
        if value is None:
            return None
        try:
            LossWeights().replace(**{term: value})
        except ValueError as exc:
            return f"must be None (the preset's weight) or a valid weight: {str(exc).split(' ', 1)[1]}"
        return None

    return check


_TRAIN_FIELDS = (
    "device",
    "seed",
    "arch",
    "base_width",
    "pretrained",
    "height",
    "width",
    "p",
    "k",
    "epochs",
    "lr",
    "milestones",
    "margin",
    "loss_preset",
    "augment",
    "random_erasing",
    "channel_augment",
    "amp",
    "num_workers",
    "log_every",
    "final_eval",
)
"""Notebook parameters that are :class:`TrainConfig` fields of the same name and meaning."""

RULES: dict[str, Rule] = {
    **{name: _train_field(name) for name in _TRAIN_FIELDS},
    "batch_size": _train_field("eval_batch_size"),  # notebook 03's feature-extraction batch
    **{f"w_{term}": _weight(term) for term in LossWeights.names()},
    # the run's data: None in notebooks 02-05 = the run's data settings (02) or the checkpoint's data (03-05)
    **{
        name: _or_none(rule, "the run's or the checkpoint's data")
        for name, rule in {
            "dataset": _choice(*DATASET_CHOICES),
            "data_root": _string,
            "synthetic_layout": _choice(*LAYOUTS),
            "synthetic_ids": _int_at_least(4),
            "synthetic_images": _int_at_least(2),
            "synthetic_modality_evidence": lambda v: (
                None if _is_number(v) and 0 <= v <= 1 else "must be a number in [0, 1]"
            ),
            "regdb_trial": _train_field("regdb_trial"),
        }.items()
    },
    # the names that exist in the notebooks alone
    "overwrite": _boolean,
    "with_baseline": _or_none(_boolean, "on for the synthetic dataset run interactively"),
    "allow_other_dataset": _boolean,
    "run_dir": _string,
    "step_dir": _string,
    "run_tag": _string,
    "cpu_threads": _int_at_least(0),
    "synthetic_pretrain": _boolean,
    "pretrain_ids": _or_none(_int_at_least(2), "idkl_lib.pretrain's default population"),
    "pretrain_epochs": _or_none(_int_at_least(1), "idkl_lib.pretrain's default schedule"),
    "resume": _string,
    "checkpoint": _string,
    "baseline_checkpoint": _string,
    "feature": _choice(*get_args(Which)),
    "flip": _boolean,
    "rerank": _boolean,
    "untrained_reference": _boolean,
    "num_trials": _int_at_least(1),
    "topk": _int_at_least(1),
    "query_order": _choice("worst", "best", "drawn"),
    "query_image": _string,
    "num_queries": _int_at_least(1),
    "cam_method": _choice(*CAM_METHODS),
    "colormap": _choice("viridis", "cividis", "inferno", "magma", "plasma", "turbo", "jet"),
    "max_points": _int_at_least(10),
    "max_size_images": _int_at_least(1),
    "umap_neighbors": _int_at_least(2),
    "umap_min_dist": _fraction,
    "num_identities": _int_at_least(1),
}
"""The rule of every notebook parameter name."""


def check_params(**params: object) -> dict[str, object]:
    """Validate notebook parameters by name; every problem is reported at once.

    Args:
        **params: ``name=value`` pairs from a notebook's ``parameters`` cell, e.g.
            ``check_params(dataset=dataset, epochs=epochs)``.

    Returns:
        The parameters, unchanged (so the notebook can store them in ``metrics.json``).

    Raises:
        ParameterError: Naming each bad parameter, its value and what it must be, or an unknown name.
    """
    problems = []
    for name, value in params.items():
        rule = RULES.get(name)
        if rule is None:
            problems.append(f"{name}: no rule for this parameter name (known: {', '.join(sorted(RULES))})")
            continue
        message = rule(value)
        if message:
            problems.append(f"parameter {name}={value!r}: {message}")
    if params.get("dataset") not in ("synthetic", None) and params.get("data_root") == "":
        problems.append("parameter data_root is empty: point it at the folder of the real dataset")
    if problems:
        raise ParameterError("bad notebook parameter(s):\n  " + "\n  ".join(problems))
    return dict(params)


def loss_weight_overrides(**weights: float | None) -> dict[str, float]:
    """``TrainConfig.loss_overrides`` for the notebook's ``w_<term>`` parameters that are not ``None``.

    Raises:
        ParameterError: An unknown term name.
    """
    unknown = sorted(set(weights) - set(LossWeights.names()))
    if unknown:
        raise ParameterError(f"unknown loss term(s) {unknown}; terms: {', '.join(LossWeights.names())}")
    return {name: float(value) for name, value in weights.items() if value is not None}


def loss_overrides(**weights: float | None) -> str:
    """The text form (``"tgsa_inter=0.3,csa1_inter=0.0"``) of :func:`loss_weight_overrides`, as the command line
    spells it; ``""`` when nothing is overridden."""
    from idkl_lib.config import format_loss_overrides

    return format_loss_overrides(loss_weight_overrides(**weights))


def notebook_recipe(dataset: str, **values: Any) -> dict[str, Any]:
    """The recipe values a notebook trains with: each recipe parameter (``height``, ``p``, ``lr``, ...) as given, or
    the recipe of ``dataset`` where it is ``None`` (``"synthetic"``: the CPU demo's recipe; a real dataset: its
    reference recipe, docs/method.md#41-recipe-per-dataset). Recipe fields not passed come from the recipe too.

    Raises:
        ParameterError: An unknown dataset or a name that is not a recipe field.
    """
    values = {key: value.item() if isinstance(value, np.generic) else value for key, value in values.items()}
    try:
        resolved = resolve_recipe(dataset, **values)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    if isinstance(resolved["milestones"], list):
        resolved["milestones"] = tuple(resolved["milestones"])
    return resolved


def resolve_resume(resume: str, step_dir: str | os.PathLike[str]) -> bool | Path:
    """The ``resume`` argument of :func:`idkl_lib.train.train` from the notebook parameter.

    ``""`` starts from scratch, ``"auto"`` continues from ``<step_dir>/checkpoint.pth`` when it exists, anything
    else is a checkpoint path that must exist.
    """
    if resume == "":
        return False
    if resume == "auto":
        return True
    path = Path(resume).expanduser()
    if not path.is_file():
        raise ParameterError(f"parameter resume={resume!r}: no such checkpoint file ({path.resolve()})")
    return path
