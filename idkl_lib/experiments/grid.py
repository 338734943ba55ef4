"""A sweep's definition: the grid, its cells and the experiment file (:mod:`idkl_lib.experiments.sweep` runs it).

Experiment file (YAML; any other key is an error)::

    description: what the sweep is for            # optional
    preset: demo                                  # pipeline preset of the base parameters (default demo)
    steps: [02_train, 03_evaluate]                # pipeline steps per cell (default: these two)
    params: {final_eval: false}                   # fixed parameters
    grid: {loss_preset: [baseline, full], seed: [0, 1, 2]}
    compare: true                                 # run notebooks/06_compare_runs.ipynb at the end (default true)
    executor: {kind: slurm, partition: gpu, time_min: 720, gpus_per_cell: 1}   # optional: where the cells run

``executor:`` takes the keys of :data:`idkl_lib.experiments.executors.EXECUTOR_KEYS` (``kind``: ``local``,
``slurm`` or ``submitit-local``; ``jobs``, ``gpus_per_cell``, ``partition``, ``time_min``, ``cpus_per_cell``,
``mem_gb``, ``sbatch``, ``array_parallelism``); command-line options override them. It is no part of a cell's
identity: the same cell gives the same numbers wherever it runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import papermill
import yaml

from idkl_lib.pipeline import DEFAULT_STEPS, PRESETS, parse_param_value
from idkl_lib.runs import EVAL_STEP, TRAIN_STEP

__all__ = [
    "DEFAULT_SWEEP_STEPS",
    "EXPERIMENT_KEYS",
    "Experiment",
    "cell_hash",
    "load_experiment",
    "parse_sweep",
    "split_values",
]

DEFAULT_SWEEP_STEPS: tuple[str, ...] = (TRAIN_STEP, EVAL_STEP)
EXPERIMENT_KEYS = ("description", "preset", "steps", "params", "grid", "compare", "executor")


@dataclass(frozen=True)
class Experiment:
    """A sweep: base preset, fixed parameters, the grid (name -> values, in axis order) and the steps per cell
    (``executor``: the experiment file's ``executor:`` settings, not part of any cell)."""

    grid: dict[str, list[Any]]
    preset: str | None = "demo"
    params: dict[str, Any] = field(default_factory=dict)
    steps: tuple[str, ...] = DEFAULT_SWEEP_STEPS
    compare: bool = True
    description: str = ""
    executor: dict[str, Any] = field(default_factory=dict)

    def cells(self) -> list[tuple[str, dict[str, Any]]]:
        """``[(cell name, {grid name: value})]``: the cartesian product of the grid, with unique readable names."""
        names = list(self.grid)
        cells, seen = [], set()
        for values in itertools.product(*(self.grid[n] for n in names)):
            params = dict(zip(names, values, strict=True))
            name = "__".join(f"{n}-{_slug(v)}" for n, v in params.items()) or "cell"
            base, number = name, 2
            while name in seen:
                name, number = f"{base}-{number}", number + 1
            seen.add(name)
            cells.append((name, params))
        return cells


def _slug(value: Any) -> str:
    text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", text)


def split_values(text: str) -> list[str]:
    """Split ``"a,b,[1,2]"`` at the commas outside brackets: ``["a", "b", "[1,2]"]``."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{"
        depth -= char in "]}"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts]


def parse_sweep(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["seed=0,1", "loss_preset=baseline,full"]`` -> ``{"seed": [0, 1], "loss_preset": ["baseline", "full"]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, eq, values = item.partition("=")
        name = name.strip()
        if not eq or not name:
            raise ValueError(f"--sweep {item!r}: expected NAME=V1,V2,... (e.g. --sweep seed=0,1,2)")
        texts = split_values(values) if values.strip() else []
        if not texts or any(not text for text in texts):
            raise ValueError(f"--sweep {item!r}: empty value in the list of {name!r}; give NAME=V1,V2,...")
        if name in grid:
            raise ValueError(f"--sweep {name}: given twice; put all its values in one --sweep")
        grid[name] = [parse_param_value(text) for text in texts]
    return grid


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment file (see the module docstring); errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"experiment file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"experiment file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"experiment file {path} must be a mapping with keys {', '.join(EXPERIMENT_KEYS)}")
    unknown = sorted(set(data) - set(EXPERIMENT_KEYS))
    if unknown:
        raise ValueError(f"experiment file {path}: unknown key(s) {unknown}; valid keys: {', '.join(EXPERIMENT_KEYS)}")
    grid = data.get("grid") or {}
    params = data.get("params") or {}
    for key, value in (("grid", grid), ("params", params)):
        if not isinstance(value, dict):
            raise ValueError(f"experiment file {path}: {key!r} must be a mapping of parameter names")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"experiment file {path}: grid.{name} must be a non-empty list of values, got {values!r}")
    executor = data.get("executor") or {}
    if not isinstance(executor, dict):
        raise ValueError(f"experiment file {path}: 'executor' must be a mapping, e.g. {{kind: slurm, partition: gpu}}")
    from idkl_lib.experiments.executors import EXECUTOR_KEYS

    unknown = sorted(set(executor) - set(EXECUTOR_KEYS))
    if unknown:
        valid = ", ".join(EXECUTOR_KEYS)
        raise ValueError(f"experiment file {path}: unknown executor key(s) {unknown}; valid keys: {valid}")
    steps = data.get("steps", list(DEFAULT_SWEEP_STEPS))
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps) or not steps:
        raise ValueError(f"experiment file {path}: 'steps' must be a non-empty list of step names, got {steps!r}")
    return Experiment(
        grid=dict(grid),
        preset=data.get("preset", "demo"),
        params=dict(params),
        steps=tuple(steps),
        compare=bool(data.get("compare", True)),
        description=str(data.get("description", "")),
        executor=dict(executor),
    )


def cell_hash(experiment: Experiment, params: Mapping[str, Any]) -> str:
    """A cell's identity: preset, fixed parameters, its grid values and the steps (not where it runs)."""
    blob = json.dumps([experiment.preset, experiment.params, dict(params), list(experiment.steps)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _check(experiment: Experiment, notebooks_dir: Path) -> set[str]:
    """Every grid/fixed name is declared by a notebook of the selected steps and every value passes its rule;
    returns the parameter names those notebooks declare."""
    steps = {step.name: step for step in DEFAULT_STEPS}
    unknown_steps = sorted(set(experiment.steps) - set(steps))
    if unknown_steps:
        raise ValueError(f"unknown step(s) {unknown_steps}; steps: {list(steps)}")
    if experiment.preset is not None and experiment.preset not in PRESETS:
        raise ValueError(f"preset {experiment.preset!r} is not defined; presets: {sorted(PRESETS)}")
    declared: set[str] = set()
    for name in experiment.steps:
        path = notebooks_dir / f"{steps[name].notebook}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(f"notebook {path} for step {name!r} does not exist; check --notebooks-dir")
        declared |= set(papermill.inspect_notebook(str(path))) - {"run_dir", "step_dir"}
    if not experiment.grid:
        raise ValueError("the sweep has no grid: give --sweep NAME=V1,V2 or a 'grid:' in the experiment file")
    from idkl_lib.notebook.params import ParameterError, check_params  # imports torch: only once arguments parse

    for kind, mapping in (("sweep parameter", experiment.grid), ("fixed parameter", experiment.params)):
        for name, values in mapping.items():
            if "." in name and kind == "fixed parameter":  # STEP.NAME: checked by the pipeline
                continue
            if name not in declared:
                raise ValueError(
                    f"{kind} {name!r}: no notebook of the steps {list(experiment.steps)} declares it; "
                    f"known names: {sorted(declared)}"
                )
            for value in values if kind == "sweep parameter" else [values]:
                try:
                    check_params(**{name: value})
                except ParameterError as exc:
                    reason = str(exc).splitlines()[-1].strip().removeprefix(f"parameter {name}={value!r}: ")
                    raise ValueError(f"{kind} {name}={value!r} {reason}") from None
    return declared
