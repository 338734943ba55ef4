"""Which notebooks a pipeline run executes and with which parameters: the steps (:data:`DEFAULT_STEPS`), the presets
(:data:`PRESETS`, short override sets on the notebooks' own defaults) and the resolution of a step's parameters.

Parameters. Every notebook receives, in increasing priority: the preset (:data:`PRESETS`), the global
``-p NAME VALUE`` overrides, the step's own ``params``, step-scoped overrides ``-p STEP.NAME VALUE``, and
finally ``run_dir`` (absolute) and ``step_dir`` (absolute, ``<run_dir>/<step name>``); :data:`PIPELINE_FIXED`
(``with_baseline=False``) is set by the pipeline too. Each notebook only
gets the names its ``parameters`` cell declares (read with ``papermill.inspect_notebook``). A ``-p`` name
that no notebook of the step list declares is an error listing the known names; a step ``params`` name its
notebook does not declare is an error too. ``-p`` values are parsed like papermill's ``-p``: ``True``/``true``,
``False``/``false``, ``None``/``null``, integers and floats become those types, ``[...]``/``{...}`` are
parsed as YAML, anything else stays a string.

Recipes. A notebook's recipe parameters (``height``, ``width``, ``p``, ``k``, ``loss_preset``, ``lr``, ``epochs``,
``milestones``, ...: :data:`~idkl_lib.data.registry.RECIPE_FIELDS`) that are still ``None`` after these layers are
filled from the recipe of the step's ``dataset`` (the synthetic dataset: the CPU demo's recipe), so ``params.json``
holds the values each step trains with.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import yaml

from idkl_lib.data.registry import RECIPE_FIELDS, training_recipe
from idkl_lib.runs import (
    BASELINE_STEP,
    DATA_STEP,
    EMBEDDINGS_STEP,
    EVAL_STEP,
    GRADCAM_STEP,
    TRAIN_STEP,
    jsonable,
    read_context,
)

__all__ = [
    "DEFAULT_STEPS",
    "PIPELINE_FIXED",
    "PRESETS",
    "RESERVED_PARAMS",
    "Step",
    "add_parameter_option",
    "parameters",
    "parse_param_value",
]

# Presets are short override sets on one set of defaults (nanoGPT's ``config/*.py`` style): the notebooks' own
# parameter cells, which are the CPU demo (their recipe parameters are None: the dataset's recipe, the synthetic
# dataset's being the demo's). A notebook only receives the names it declares; a name that no notebook declares is an
# error.
PRESETS: dict[str, dict[str, Any]] = {
    # `make demo`: the notebooks' defaults: the synthetic SYSU-layout dataset (192 training identities, so that matching
    # across modalities has to generalise), a narrow randomly initialised ResNet-18 at 128 x 64 and one CPU thread
    # (fastest for this size); about five minutes on an idle 2-core CPU, uses a GPU when there is one. Both trainings
    # (IDKL and the baseline of notebooks 04/05) get the same budget.
    "demo": {},
    # Tests: the smallest sizes that still exercise every code path (each notebook well under a minute on a CPU).
    "ci": {
        "dataset": "synthetic",
        "synthetic_ids": 8,
        "device": "cpu",
        "height": 64,
        "width": 32,
        "p": 2,
        "k": 2,
        "epochs": 1,
        "log_every": 1,
        "seed": 0,
        "num_trials": 2,
        "max_size_images": 50,
        "num_identities": 1,
        "num_queries": 1,
        "max_points": 100,
        "umap_neighbors": 5,
    },
    # The reference recipe of the chosen dataset (docs/method.md#41-recipe-per-dataset) on a real dataset and a GPU:
    # -p dataset regdb -p data_root /path (SYSU-MM01 unless -p dataset is given).
    "full": {
        "dataset": "sysu",
        "seed": 1,  # the reference's seed
        "device": "cuda",
        "cpu_threads": 0,
        "num_workers": 8,
    },
}

RESERVED_PARAMS = ("run_dir", "step_dir")
PIPELINE_FIXED: dict[str, Any] = {"with_baseline": False}
"""Parameters the pipeline (and so every sweep cell) sets itself in each notebook that declares them: the baseline has a
step of its own (``02_train_baseline``), so no training step trains one as well (notebook 02's ``with_baseline``)."""


@dataclass(frozen=True)
class Step:
    """One notebook execution.

    Attributes:
        notebook: Notebook stem in the notebooks folder (``"02_train"`` for ``02_train.ipynb``).
        name: Step name: the executed notebook is ``<run_dir>/<name>.ipynb`` and outputs go to
            ``<run_dir>/<name>/``. Defaults to ``notebook``.
        params: Parameters for this step only (override the preset and global ``-p`` values).
    """

    notebook: str
    name: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.notebook)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ValueError(f"step name {self.name!r} must use only letters, digits, '_' and '-'")


DEFAULT_STEPS: tuple[Step, ...] = (
    Step(DATA_STEP),
    Step(TRAIN_STEP),
    Step(TRAIN_STEP, BASELINE_STEP, {"loss_preset": "baseline", "run_tag": "baseline"}),
    Step(EVAL_STEP),
    Step(GRADCAM_STEP),
    Step(EMBEDDINGS_STEP),
)


def parse_param_value(text: str, name: str = "") -> Any:
    """Parse a command-line parameter value like papermill's ``-p``.

    Args:
        text: The raw value.
        name: The parameter's name, for the error message (``-p NAME VALUE``).

    Returns:
        ``True``/``False``/``None`` for ``True``/``true``, ``False``/``false``, ``None``/``null``; an ``int``
        or ``float`` for numbers (``1e-3`` included, ``nan``/``inf`` stay strings); YAML for values starting
        with ``[`` or ``{``; otherwise the string itself.
    """
    words = {"True": True, "true": True, "False": False, "false": False, "None": None, "null": None}
    if text in words:
        return words[text]
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?", text):
        return float(text)
    if text[:1] in "[{":
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = f"-p {name} {text!r}" if name else f"parameter value {text!r}"
            problem = " ".join(str(exc).split())
            raise ValueError(
                f"{where} looks like YAML but does not parse ({problem}); quote it or fix the brackets"
            ) from exc
    return text


PARAMETER_HELP = "notebook parameter (NAME or STEP.NAME); values parsed like papermill -p"


def add_parameter_option(parser: argparse.ArgumentParser, help: str = PARAMETER_HELP) -> None:
    """The commands' repeatable ``-p NAME VALUE`` / ``--parameter NAME VALUE`` (read it with :func:`parameters`)."""
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help=help)


def parameters(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    """``-p`` pairs to ``{name: value}``, each value parsed by :func:`parse_param_value`."""
    return {name: parse_param_value(value, name) for name, value in pairs}


def _check_json_value(name: str, value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"parameter {name}={value!r} is not a plain literal (str, int, float, bool, None, list, dict): {exc}"
        ) from exc


def _declared(path: Path) -> dict[str, Any]:
    return papermill.inspect_notebook(str(path))


def _resolve_params(
    steps: Sequence[Step],
    selected: Sequence[Step],
    notebooks: Mapping[str, Path],
    preset: str | None,
    overrides: Mapping[str, Any],
    run_dir: Path,
) -> dict[str, dict[str, Any]]:
    """Per selected step, the parameters it runs with (see the module docstring for the priority order)."""
    inspected = {stem: _declared(path) for stem, path in notebooks.items()}
    declared = {stem: set(names) for stem, names in inspected.items()}
    selected_stems = {step.notebook for step in selected}
    known: set[str] = set().union(*declared.values()) - set(RESERVED_PARAMS)
    steps_by_name = {step.name: step for step in steps}

    global_overrides: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        _check_json_value(key, value)
        step_name, dot, name = key.partition(".")
        if not dot:
            step_name, name = "", key
        if name in RESERVED_PARAMS:
            raise ValueError(f"parameter {name!r} is set by the pipeline (use --run-dir), not with -p")
        if name in PIPELINE_FIXED:
            raise ValueError(
                f"parameter {name!r} is set by the pipeline ({name}={PIPELINE_FIXED[name]!r}: the step "
                f"{BASELINE_STEP} trains the baseline), not with -p"
            )
        if step_name:
            if step_name not in steps_by_name:
                raise ValueError(f"-p {key}: no step named {step_name!r}; steps: {sorted(steps_by_name)}")
            stem = steps_by_name[step_name].notebook
            if stem in declared and name not in declared[stem]:
                raise ValueError(
                    f"-p {key}: notebook {stem}.ipynb declares no parameter {name!r}; "
                    f"it declares {sorted(declared[stem] - set(RESERVED_PARAMS))}"
                )
            scoped.setdefault(step_name, {})[name] = value
        else:
            if name not in known:
                raise ValueError(f"-p {name}: no notebook declares a parameter {name!r}; known names: {sorted(known)}")
            if not any(name in declared[stem] for stem in selected_stems):
                warnings.warn(f"-p {name}: only steps left out by --only declare it; it has no effect", stacklevel=3)
            global_overrides[name] = value

    preset_params: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"preset {preset!r} is not defined; presets: {sorted(PRESETS)}")
        preset_params = dict(PRESETS[preset])
        unused = sorted(set(preset_params) - known)
        if unused:
            warnings.warn(
                f"preset {preset!r} sets parameters no notebook declares: {unused} "
                "(PRESETS in idkl_lib/pipeline/steps.py)",
                stacklevel=3,
            )

    resolved: dict[str, dict[str, Any]] = {}
    for step in selected:
        names = declared[step.notebook]
        if not names & set(RESERVED_PARAMS):
            raise ValueError(
                f"{notebooks[step.notebook]} declares neither run_dir nor step_dir in a cell tagged 'parameters'; "
                "the pipeline cannot tell it where to write (see the idkl_lib.pipeline.run docstring)"
            )
        undeclared = sorted(set(step.params) - names)
        if undeclared:
            raise ValueError(
                f"step {step.name!r} sets {undeclared} but {notebooks[step.notebook]} does not declare them; "
                f"it declares {sorted(names - set(RESERVED_PARAMS))}"
            )
        params: dict[str, Any] = {}
        for layer in (preset_params, global_overrides, step.params, scoped.get(step.name, {})):
            params.update({key: value for key, value in layer.items() if key in names})
        params.update({key: value for key, value in PIPELINE_FIXED.items() if key in names})
        _fill_recipe(params, inspected[step.notebook], step.name, run_dir)
        for key, value in params.items():
            _check_json_value(key, value)
        if "run_dir" in names:
            params["run_dir"] = str(run_dir)
        if "step_dir" in names:
            params["step_dir"] = str(run_dir / step.name)
        resolved[step.name] = params
    return resolved


def _run_dataset(run_dir: Path) -> str:
    """The dataset of the run folder's data settings, ``"synthetic"`` (notebook 01's default) when it has none."""
    dataset = (read_context(run_dir, on_error="ignore") or {}).get("dataset")
    return dataset if isinstance(dataset, str) else "synthetic"


def _fill_recipe(params: dict[str, Any], declared: Mapping[str, Any], step: str, run_dir: Path) -> None:
    """Set the recipe parameters a notebook declares whose value is ``None`` (in ``params``, or the notebook's default
    when ``params`` does not set it) to the recipe of the step's dataset (``params["dataset"]`` or the notebook's; a
    ``None`` dataset is the run's, :mod:`idkl_lib.notebook.context`: the one in ``<run_dir>/context.json`` if an earlier
    invocation wrote it, else notebook 01's default, the synthetic dataset)."""

    def value(name: str) -> Any:
        if name in params:
            return params[name]
        try:
            return ast.literal_eval(declared[name]["default"])
        except (ValueError, SyntaxError):
            return ...  # an expression: not a recipe placeholder

    names = [name for name in RECIPE_FIELDS if name in declared and value(name) is None]
    if not names or "dataset" not in declared:
        return
    dataset = value("dataset")
    if dataset is None:
        dataset = _run_dataset(run_dir)
    try:
        recipe = training_recipe(dataset)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"step {step!r}: parameter dataset={dataset!r}: {exc}") from None
    params.update({name: jsonable(recipe[name]) for name in names})
