"""Notebook 06's input: which runs it compares, or what is missing and how to get runs to compare.

The runs, in this order of preference (the statistics are :mod:`idkl_lib.experiments.compare`'s):

1. ``runs=[...]``: those run folders (pipeline runs or sweep cells);
2. ``run_dir`` a sweep folder (``python -m idkl_lib.experiments.sweep``, ``make ablation``): its finished cells, one
   configuration per parameter combination and one run per seed;
3. ``run_dir`` one run folder (the pipeline's, or ``reports/dev`` of notebooks 01-05 in JupyterLab) holding IDKL and
   its baseline: the two models, one seed each (the difference has no interval: it is one draw of the seed noise).
   Their metrics are notebook 03's side-by-side evaluation, else each training's final evaluation.

Otherwise :func:`compare_runs` returns a :class:`RunComparison` without runs whose message names what the folder lacks
(which notebook or command makes it) and how to get runs; in the pipeline (``strict``) that is an error instead, so a
sweep sees a comparison that could not run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from idkl_lib.experiments import compare
from idkl_lib.runs import (
    BASELINE_STEP,
    CHECKPOINT_NAME,
    EVAL_STEP,
    METRICS_NAME,
    TRAIN_STEP,
    is_sweep,
    read_history,
    read_metrics,
    sweep_cells,
)
from idkl_lib.utils.errors import ShortMessage

__all__ = ["HOW_TO_GET_RUNS", "NothingToCompareError", "RunComparison", "compare_runs"]

HOW_TO_GET_RUNS = (
    "To compare configurations over seeds, run a sweep from the project folder, e.g. `python -m "
    "idkl_lib.experiments.sweep --run-dir reports/seeds --preset demo --sweep loss_preset=baseline,sysu --sweep "
    "seed=0,1,2` (each cell is one training and evaluation of the demo), then set run_dir='../reports/seeds'; or "
    "pick run folders with runs=['../reports/run-a', '../reports/run-b'] (pipeline runs or sweep cells)."
)
"""The sentence every message of notebook 06 ends with."""


class NothingToCompareError(ShortMessage, ValueError):
    """Notebook 06 run by the pipeline (or a sweep) found no runs to compare; the message says what is missing."""


@dataclass
class RunComparison:
    """The runs notebook 06 compares (none when there is nothing to compare) and everything it shows of them.

    Attributes:
        runs: The runs, labelled by configuration.
        protocol: The protocol whose metrics they carry ("" without runs).
        message: What is compared and from which files, or what is missing; then how to get runs.
        baseline: The configuration the others are compared with ("" without runs).
    """

    runs: list[compare.Run]
    protocol: str
    message: str
    baseline: str = ""
    summary: list[dict[str, Any]] = field(default_factory=list)
    paired: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, Any]] = field(default_factory=dict)
    magnitudes: dict[str, dict[str, float]] = field(default_factory=dict)

    def figures(self, *names: str) -> dict[str, go.Figure]:
        """The named figures in order (``summary``, ``paired``, ``cmc``, ``loss_curves``, ``loss_terms``); ``{}``
        without runs, and without a CMC curve or loss history to draw."""
        from idkl_lib.viz import compare as viz

        if not self.runs:
            return {}
        makers = {
            "summary": lambda: viz.summary_table(
                self.summary, compare.METRICS, f"Mean ± std and 95% CI over seeds ({self.protocol}, %)"
            ),
            "paired": lambda: viz.paired_table(self.paired, self.baseline),
            "cmc": lambda: viz.cmc_figure(self.curves, f"Mean CMC per configuration ({self.protocol})"),
            "loss_curves": lambda: viz.loss_curves_figure(self.curves),
            "loss_terms": lambda: viz.loss_terms_figure(self.magnitudes),
        }
        unknown = sorted(set(names) - set(makers))
        if unknown:
            raise ValueError(f"unknown figure(s) {unknown}; the comparison draws {', '.join(makers)}")
        drawable = {
            "cmc": any(c["cmc"] for c in self.curves.values()),
            "loss_curves": any(c["steps"] for c in self.curves.values()),
            "loss_terms": any(self.magnitudes.values()),
        }
        return {name: makers[name]() for name in names if drawable.get(name, True)}

    def metrics(self) -> dict[str, Any]:
        """Notebook 06's ``metrics.json``: ``protocol``, ``num_runs``, ``runs``, ``configs`` (the summary rows),
        ``baseline``, ``paired``, ``loss_terms`` and ``message``."""
        return {
            "protocol": self.protocol,
            "num_runs": len(self.runs),
            "runs": [str(r.path) for r in self.runs],
            "configs": self.summary,
            "baseline": self.baseline,
            "paired": self.paired,
            "loss_terms": self.magnitudes,
            "message": self.message,
        }


def _analysed(runs: list[compare.Run], protocol: str, message: str, baseline: str) -> RunComparison:
    baseline_used, paired = compare.paired_comparison(runs, baseline)
    return RunComparison(
        runs,
        protocol,
        message,
        baseline_used,
        compare.summarise(runs),
        paired,
        compare.config_curves(runs),
        compare.loss_magnitudes(runs),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _missing(run_dir: Path, steps: Mapping[str, dict[str, Any]]) -> list[str]:
    """What ``run_dir`` lacks for IDKL against its baseline, each with the notebook that makes it."""
    problems = []
    train, evaluation = steps[TRAIN_STEP], steps[EVAL_STEP]
    if not (run_dir / TRAIN_STEP / CHECKPOINT_NAME).is_file():
        problems.append(f"no IDKL model ({TRAIN_STEP}/{CHECKPOINT_NAME}: run notebook 02)")
    elif not train:
        problems.append(
            f"{TRAIN_STEP} has a checkpoint but no {METRICS_NAME} (notebook 02 did not finish: run it again with "
            "resume='auto')"
        )
    if not (run_dir / BASELINE_STEP / CHECKPOINT_NAME).is_file():
        problems.append(f"no baseline ({BASELINE_STEP}/{CHECKPOINT_NAME}: notebook 02 trains it with with_baseline, "
                        "its default on synthetic data in JupyterLab; the pipeline has a step for it)")  # fmt: skip
    if not _dict(_dict(evaluation.get("baseline")).get("protocols")):
        problems.append(f"no evaluation of both models ({EVAL_STEP}/{METRICS_NAME} with a baseline: run notebook 03 "
                        "after 02)")  # fmt: skip
    return problems


def _idkl_and_baseline(run_dir: Path, protocol: str) -> tuple[list[compare.Run], str, str] | list[str]:
    """The run folder's IDKL model and baseline as two runs, ``(runs, protocol, where the numbers come from)``;
    else the list of what is missing."""
    steps = {s: read_metrics(run_dir / s, on_error="ignore") or {} for s in (TRAIN_STEP, BASELINE_STEP, EVAL_STEP)}
    train, base, evaluation = steps[TRAIN_STEP], steps[BASELINE_STEP], steps[EVAL_STEP]
    side = _dict(_dict(evaluation.get("baseline")).get("protocols"))
    if _dict(evaluation.get("protocols")) and side:
        tables = (evaluation["protocols"], side)
        cmc = _dict(evaluation.get("cmc"))
        source = f"both evaluated side by side by notebook 03 ({EVAL_STEP}/{METRICS_NAME}: same protocol and trials)"
    else:
        base_eval = _dict(base.get("eval")) or _dict(_dict(train.get("baseline")).get("eval"))
        if not (_dict(train.get("eval")) and base_eval):
            return _missing(run_dir, steps)
        tables, cmc = (train["eval"], base_eval), {}
        source = "each training's final evaluation (notebook 03 has not compared them side by side)"
    config = _dict(train.get("train_config"))
    name, row, idkl_cmc = compare.pick_protocol({EVAL_STEP: {"protocols": tables[0], "cmc": cmc}}, protocol, run_dir)
    base_row = _dict(tables[1].get(name))
    if not base_row:
        return [f"the baseline has no {name!r} metrics"]
    base_config = _dict(base.get("train_config")) or {**config, "loss_preset": "baseline", "loss_overrides": {}}
    runs = []
    for label, step, params, values, curve in (
        (f"IDKL ({config.get('loss_preset', '?')})", TRAIN_STEP, config, row, idkl_cmc),
        ("baseline", BASELINE_STEP, base_config, base_row, []),
    ):
        metrics = {m: float(values[m]) for m in compare.METRICS if m in values}
        history = read_history(run_dir, step, on_error="ignore") or []
        runs.append(compare.Run(run_dir / step, dict(params), params.get("seed"), metrics, curve, history,
                                config=label))  # fmt: skip
    return runs, name, source


def compare_runs(
    run_dir: str | os.PathLike[str],
    runs: Sequence[str | os.PathLike[str]] = (),
    protocol: str = "",
    baseline: str = "",
    *,
    strict: bool = False,
) -> RunComparison:
    """Find the runs notebook 06 compares (see the module docstring) and compute the comparison.

    Args:
        run_dir: A sweep folder or a run folder.
        runs: Run folders to compare instead of ``run_dir``'s.
        protocol: Protocol row ("": SYSU all-search single-shot when present, else the first).
        baseline: Configuration compared with ("": the ``baseline`` loss preset, else the first).
        strict: Nothing to compare is an error (the pipeline) instead of a comparison without runs (JupyterLab).

    Raises:
        NothingToCompareError: ``strict`` and nothing to compare (the message says what is missing).
        ValueError: ``baseline`` or ``protocol`` names nothing the runs have.
    """
    folder = Path(run_dir)
    problem = ""
    if runs or is_sweep(folder) or sweep_cells(folder, on_error="ignore"):
        what = f"the run folders {[str(r) for r in runs]}" if runs else f"the finished cells of the sweep {folder}"
        try:
            found, used = compare.load_runs(None if runs else folder, runs, protocol)
        except (ValueError, OSError) as exc:
            problem = f"Nothing to compare in {what}: {exc}."
        else:
            message = f"Comparing {len(found)} runs, {what}, protocol {used}."
            return _analysed(found, used, message, baseline)
    elif not folder.is_dir():
        problem = f"Nothing to compare: the folder {folder} does not exist."
    else:
        pair = _idkl_and_baseline(folder, protocol)
        if isinstance(pair, tuple):
            found, used, source = pair
            message = (
                f"Comparing IDKL with its baseline in the run folder {folder}, protocol {used}: {source}. One seed "
                "each, so there is no interval: the difference is one draw of what changing the seed does."
            )
            return _analysed(found, used, message, baseline)
        lacks = "; ".join(pair)
        problem = (
            f"Nothing to compare in {folder}: it is neither a sweep nor a run with IDKL and its baseline ({lacks})."
        )
    message = f"{problem} {HOW_TO_GET_RUNS}"
    if strict:
        raise NothingToCompareError(message)
    return RunComparison([], "", message)
