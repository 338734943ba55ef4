"""Per-dataset training recipes: resolving the values a run trains with from the dataset's recipe (the registry's
:attr:`~idkl_lib.data.registry.DatasetInfo.recipe`, docs/method.md#41-recipe-per-dataset) and the values the user set,
and the one-line summary printed at the start of training."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idkl_lib.data.marker import read_marker
from idkl_lib.data.registry import DATASETS, RECIPE_FIELDS, training_recipe

if TYPE_CHECKING:
    from .train import TrainConfig

__all__ = ["RECIPE_FIELDS", "recipe_changes", "recipe_help", "recipe_line", "recipe_name", "resolve_recipe"]


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value


def resolve_recipe(dataset: str, **values: Any) -> dict[str, Any]:
    """The recipe values of a run on ``dataset`` (a registry name or ``"synthetic"``): each of
    :data:`RECIPE_FIELDS` from ``values`` where given and not ``None``, otherwise from the dataset's recipe.

    Raises:
        ValueError: An unknown dataset, or a name in ``values`` that is not a recipe field.
    """
    unknown = sorted(set(values) - set(RECIPE_FIELDS))
    if unknown:
        raise ValueError(f"{unknown} are not recipe fields; the recipe sets {', '.join(RECIPE_FIELDS)}")
    recipe = training_recipe(dataset)
    return {name: recipe[name] if values.get(name) is None else values[name] for name in RECIPE_FIELDS}


def recipe_changes(values: Mapping[str, Any], recipe: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{field: (recipe value, value)}`` for the recipe fields where ``values`` differs from ``recipe``."""
    return {
        name: (recipe[name], values[name])
        for name in RECIPE_FIELDS
        if name in values and _plain(values[name]) != _plain(recipe[name])
    }


def recipe_name(cfg: TrainConfig) -> str:
    """The recipe ``cfg`` starts from: ``"synthetic"`` when its ``data_root`` holds a synthetic dataset (its
    ``.synthetic.json`` marker; ``cfg.dataset`` is then the layout it was parsed with), else ``cfg.dataset``."""
    return "synthetic" if cfg.data_root and read_marker(Path(cfg.data_root)) is not None else cfg.dataset


def recipe_line(cfg: TrainConfig) -> str:
    """One line naming the recipe a run trains with and the values that differ from it (:func:`recipe_name`: the
    synthetic dataset's own recipe for a synthetic folder), e.g. ``recipe regdb: 256x128, P 6 x K 4, loss regdb, lr
    0.00035, 160 epochs (milestones 55 95), resnet50; changed from the regdb recipe: k 4 (recipe 10)`` or ``recipe
    synthetic (sysu layout): 128x64, ...; the synthetic recipe unchanged``."""
    name = recipe_name(cfg)
    changes = recipe_changes(cfg.to_dict(), training_recipe(name))
    changed = ", ".join(f"{field} {_text(new)} (recipe {_text(old)})" for field, (old, new) in changes.items())
    label = f"{name} ({cfg.dataset} layout)" if name != cfg.dataset else name
    return (
        f"recipe {label}: {cfg.height}x{cfg.width}, P {cfg.p} x K {cfg.k}, loss {cfg.loss_preset}, "
        f"lr {cfg.lr:g}, {cfg.epochs} epochs (milestones {_text(cfg.milestones)}), {cfg.arch}; "
        + (f"changed from the {name} recipe: {changed}" if changed else f"the {name} recipe unchanged")
    )


def recipe_help(name: str) -> str:
    """The command line's default text of the recipe field ``name``: ``"default: the dataset's recipe (sysu 384,
    regdb 256, llcm 384)"``, or ``"... (0.00035 for every dataset)"``."""
    values = {dataset: DATASETS[dataset].recipe[name] for dataset in DATASETS}
    texts = {dataset: _text(value) for dataset, value in values.items()}
    if len(set(texts.values())) == 1:
        return f"default: the dataset's recipe ({next(iter(texts.values()))} for every dataset)"
    return "default: the dataset's recipe (" + ", ".join(f"{d} {t}" for d, t in texts.items()) + ")"


def _text(value: Any) -> str:
    if isinstance(value, tuple | list):
        return " ".join(map(str, value)) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)
