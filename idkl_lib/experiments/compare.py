"""Compare pipeline runs over seeds: mean, spread and confidence intervals per configuration, paired tests against a
baseline, CMC and loss curves, and each loss term's magnitude (the logic of ``notebooks/06_compare_runs.ipynb``).

A *run* is a pipeline run folder (read into a :class:`Run` by :mod:`idkl_lib.experiments.run_table`); a
sweep folder (:mod:`idkl_lib.experiments.sweep`) holds one per cell. Runs are grouped into *configurations* by the
training parameters that differ between them, the seed excepted, so the seeds of one configuration are its repeats.

Statistics (scipy.stats): per configuration the mean, the sample standard deviation and the 95% confidence interval of
the mean with the t distribution (``n - 1`` degrees of freedom; none for one seed). Against the baseline, runs are
paired by seed (same seed = same data order and initialisation where the code allows): the mean difference, its 95%
t interval, the paired t-test and, from 6 pairs on (below, the exact Wilcoxon test cannot reach p < 0.05), the
Wilcoxon signed-rank test. A difference whose interval contains 0 is *inside the seed noise*.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from idkl_lib.experiments.run_table import (
    IGNORED_PARAMS,
    METRICS,
    Run,
    _label,
    _labels,
    configs,
    load_runs,
    pick_protocol,
)
from idkl_lib.runs import is_sweep
from idkl_lib.utils.errors import CommandParser, run_command

__all__ = [
    "METRICS",
    "Run",
    "config_curves",
    "gap_change",
    "gap_change_table",
    "load_runs",
    "loss_magnitudes",
    "markdown_tables",
    "paired_comparison",
    "paired_difference",
    "pick_protocol",
    "summarise",
]

WILCOXON_MIN_PAIRS = 6


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, float | int | None]:
    """``n``, mean, sample std and the half-width of the ``confidence`` t interval of the mean (None for n < 2)."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    std = float(x.std(ddof=1)) if n > 1 else None
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)) if std is not None else None
    return {"n": n, "mean": float(x.mean()) if n else None, "std": std, "ci95": half}


def summarise(runs: Sequence[Run], metrics: Sequence[str] = METRICS) -> list[dict[str, Any]]:
    """One row per configuration: seeds, and per metric ``mean``, ``std``, ``ci95`` (+/- half-width), training time."""
    rows = []
    for label, members in configs(runs).items():
        row: dict[str, Any] = {"config": label, "n": len(members), "seeds": [r.seed for r in members]}
        for metric in metrics:
            row[metric] = mean_ci([r.metrics[metric] for r in members if metric in r.metrics])
        times = [r.train_time_s for r in members if r.train_time_s is not None]
        row["train_time_s"] = float(np.mean(times)) if times else None
        rows.append(row)
    return rows


def default_baseline(runs: Sequence[Run]) -> str:
    """The configuration trained with the ``baseline`` loss preset, else the first one."""
    for run in runs:
        if run.params.get("loss_preset") == "baseline":
            return run.config
    return runs[0].config


def paired_difference(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """``a - b`` paired element by element (e.g. by seed): ``pairs``, ``mean_diff``, ``ci95`` (half-width of its 95% t
    interval), ``t_p`` (paired t-test), ``wilcoxon_p`` (from :data:`WILCOXON_MIN_PAIRS` pairs) and ``inside_noise``
    (the interval contains 0; None with fewer than 2 pairs). The p-values are None where the test is undefined."""
    if len(a) != len(b):
        raise ValueError(f"paired values differ in number: {len(a)} and {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = x - y
    summary = mean_ci(diff)
    t_p = wil_p = None
    if len(diff) > 1 and np.ptp(diff) > 0:
        t_p = float(stats.ttest_rel(x, y).pvalue)
    if len(diff) >= WILCOXON_MIN_PAIRS and np.any(diff != 0):
        wil_p = float(stats.wilcoxon(diff).pvalue)
    half, mean = summary["ci95"], summary["mean"]
    return {
        "pairs": len(diff),
        "mean_diff": mean,
        "ci95": half,
        "t_p": t_p,
        "wilcoxon_p": wil_p,
        "inside_noise": None if half is None or mean is None else abs(mean) <= half,
    }


def paired_comparison(
    runs: Sequence[Run], baseline: str = "", metrics: Sequence[str] = METRICS
) -> tuple[str, list[dict[str, Any]]]:
    """Each configuration minus the baseline, paired by seed.

    Returns:
        ``(baseline label, rows)``; a row per other configuration and metric: ``pairs``, ``mean_diff``, ``ci95``
        (half-width), ``t_p`` (paired t-test), ``wilcoxon_p`` (from :data:`WILCOXON_MIN_PAIRS` pairs), and
        ``inside_noise`` (the interval of the mean difference contains 0; None with fewer than 2 pairs).
    """
    groups = configs(runs)
    baseline = baseline or default_baseline(runs)
    if baseline not in groups:
        raise ValueError(f"baseline configuration {baseline!r} is not among the runs: {list(groups)}")
    base = {r.seed: r for r in groups[baseline]}
    rows = []
    for label, members in groups.items():
        if label == baseline:
            continue
        for metric in metrics:
            paired = [r for r in members if r.seed in base]
            ours, theirs = [r.metrics[metric] for r in paired], [base[r.seed].metrics[metric] for r in paired]
            rows.append({"config": label, "metric": metric, **paired_difference(ours, theirs)})
    return baseline, rows


def _level(run: Run, names: Sequence[str]) -> Any:
    if len(names) == 1:
        return run.params.get(names[0])
    return ", ".join(f"{n}={run.params.get(n)}" for n in names)


def gap_change(
    runs: Sequence[Run], factor: str | Sequence[str], baseline: str = "", metrics: Sequence[str] = METRICS
) -> tuple[str, Any, list[dict[str, Any]]]:
    """Whether a configuration's difference to the baseline changes with ``factor`` (e.g. the synthetic generator's
    ``synthetic_modality_evidence``): the difference of differences, paired by seed.

    Runs are grouped by the value of ``factor`` (a *level*; missing = ``None``; several names, e.g. ``"lr,epochs"``
    for a rate and the schedule that changes with it, make one level of their values) and, within a level, labelled
    by the other parameters that differ. For each configuration, level and seed, its *gap* is its metric minus the
    baseline's at the same level and seed; the *change* is that gap minus the gap at the reference level, the level
    of the first run given. Only seeds with all four runs count.

    Returns:
        ``(baseline label, reference level, rows)``; a row per configuration, level other than the reference, and
        metric: ``level``, ``seeds``, ``gaps`` and ``reference_gaps`` (per seed), ``changes`` (per seed), ``pairs``,
        ``mean_change``, ``ci95`` (half-width), ``t_p`` (one-sample t-test of the changes against 0) and
        ``inside_noise`` (None with fewer than 2 pairs).

    Raises:
        ValueError: ``factor`` has fewer than two levels, or the baseline is not among the configurations.
    """
    names = [n.strip() for n in factor.split(",")] if isinstance(factor, str) else list(factor)
    labels = _labels(runs, IGNORED_PARAMS | set(names))
    table: dict[tuple[str, str], dict[Any, Run]] = {}  # (level as JSON, label) -> seed -> run
    levels: dict[str, Any] = {}
    for run, label in zip(runs, labels, strict=True):
        level = _level(run, names)
        key = json.dumps(level, sort_keys=True)
        levels[key] = level
        table.setdefault((key, label), {})[run.seed] = run
    if len(levels) < 2:
        raise ValueError(
            f"{', '.join(names)!r} takes {len(levels)} value(s) in these runs; the change needs at least two levels"
        )
    order = list(levels)  # first seen first: the reference level is the first run's
    if not baseline:
        named = [lab for run, lab in zip(runs, labels, strict=True) if run.params.get("loss_preset") == "baseline"]
        baseline = named[0] if named else labels[0]
    if baseline not in labels:
        raise ValueError(f"baseline configuration {baseline!r} is not among the runs: {sorted(set(labels))}")
    reference = order[0]
    rows = []
    for label in dict.fromkeys(labels):
        if label == baseline or (reference, label) not in table:
            continue
        for key in order[1:]:
            if (key, label) not in table:
                continue
            at = (table[(key, label)], table.get((key, baseline), {}))
            ref = (table[(reference, label)], table.get((reference, baseline), {}))
            seeds = [s for s in at[0] if s in at[1] and s in ref[0] and s in ref[1]]
            for metric in metrics:
                gaps = [at[0][s].metrics[metric] - at[1][s].metrics[metric] for s in seeds]
                ref_gaps = [ref[0][s].metrics[metric] - ref[1][s].metrics[metric] for s in seeds]
                changes = np.array(gaps, dtype=float) - np.array(ref_gaps, dtype=float)
                summary = mean_ci(changes)
                t_p = (
                    float(stats.ttest_1samp(changes, 0.0).pvalue) if len(changes) > 1 and np.ptp(changes) > 0 else None
                )
                half, mean = summary["ci95"], summary["mean"]
                rows.append(
                    {
                        "config": label,
                        "level": levels[key],
                        "metric": metric,
                        "seeds": seeds,
                        "gaps": gaps,
                        "reference_gaps": ref_gaps,
                        "changes": changes.tolist(),
                        "pairs": len(seeds),
                        "mean_change": mean,
                        "ci95": half,
                        "t_p": t_p,
                        "inside_noise": None if half is None or mean is None else abs(mean) <= half,
                    }
                )
    return baseline, levels[reference], rows


def _difference_text(
    mean: float, half: float | None, t_p: float | None, inside_noise: bool | None, digits: int = 1
) -> str:
    """``+1.0 [-0.5, +2.5] p=0.12 *noise*``: a mean difference, its 95% interval, p (``p=0.003``, ``p<0.001`` when
    small), and the noise mark."""
    text = f"{mean:+.{digits}f}"
    if half is not None:
        text += f" [{mean - half:+.{digits}f}, {mean + half:+.{digits}f}]"
    if t_p is not None:  # two decimals; below 0.01 one significant digit, below 0.001 a bound
        text += f" p={t_p:.2f}" if t_p >= 0.01 else f" p={t_p:.1g}" if t_p >= 0.001 else " p<0.001"
    return text + (" *noise*" if inside_noise else "")


def _level_text(factor: str | Sequence[str], level: Any) -> str:
    names = factor.split(",") if isinstance(factor, str) else list(factor)
    return f"{names[0].strip()}={level}" if len(names) == 1 else str(level)


def gap_change_table(
    runs: Sequence[Run], factor: str | Sequence[str], baseline: str = "", metrics: Sequence[str] = METRICS
) -> str:
    """:func:`gap_change` as a Markdown table: per configuration and level, the mean change of the gap to the baseline
    with its 95% interval and p, then the change per seed in parentheses."""
    base, reference, rows = gap_change(runs, factor, baseline, metrics)
    lines = [
        f"| (configuration − {base}): change from {_level_text(factor, reference)} | pairs | "
        + " | ".join(f"change of Δ{m}" for m in metrics)
        + " |",
        "|" + "---|" * (len(metrics) + 2),
    ]
    grouped: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["config"], json.dumps(row["level"])), {})[row["metric"]] = row
    for (label, level), per_metric in grouped.items():
        cells = []
        for m in metrics:
            r = per_metric[m]
            if r["mean_change"] is None:
                cells.append("–")
                continue
            text = _difference_text(r["mean_change"], r["ci95"], r["t_p"], r["inside_noise"])
            per_seed = ", ".join(f"{s}: {c:+.1f}" for s, c in zip(r["seeds"], r["changes"], strict=True))
            cells.append(f"{text} (seed {per_seed})")
        pairs = max(r["pairs"] for r in per_metric.values())
        lines.append(f"| {label} at {json.loads(level)} | {pairs} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _last_epoch_means(history: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not history:
        return {}
    last = max(row.get("epoch", 0) for row in history)
    rows = [row for row in history if row.get("epoch", 0) == last]
    terms = sorted({k for row in rows for k in row} - {"epoch", "step", "lr"})
    return {t: float(np.mean([row[t] for row in rows if t in row])) for t in terms}


def loss_magnitudes(runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """Configuration -> loss term -> its value in the last training epoch (mean of the logged rows, then over seeds),
    as logged by the training loop (weighted terms and ``total``)."""
    out: dict[str, dict[str, float]] = {}
    for label, members in configs(runs).items():
        per_run = [_last_epoch_means(r.history) for r in members]
        terms = sorted({t for values in per_run for t in values})
        out[label] = {t: float(np.mean([v[t] for v in per_run if t in v])) for t in terms}
    return out


def config_curves(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Configuration -> ``{"cmc": mean CMC (%), "steps": [...], "total": mean total loss per logged step}``."""
    out: dict[str, dict[str, Any]] = {}
    for label, members in configs(runs).items():
        cmcs = [r.cmc for r in members if r.cmc]
        width = min((len(c) for c in cmcs), default=0)
        cmc = np.mean([c[:width] for c in cmcs], axis=0).tolist() if width else []
        by_step: dict[float, list[float]] = {}
        for run in members:
            for row in run.history:
                if "total" in row:
                    by_step.setdefault(float(row["step"]), []).append(float(row["total"]))
        steps = sorted(by_step)
        out[label] = {"cmc": cmc, "steps": steps, "total": [float(np.mean(by_step[s])) for s in steps]}
    return out


def _cell(summary: Mapping[str, Any], digits: int = 1) -> str:
    mean, std, half = summary.get("mean"), summary.get("std"), summary.get("ci95")
    if mean is None:
        return "–"
    if half is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"


def markdown_tables(runs: Sequence[Run], baseline: str = "", metrics: Sequence[str] = METRICS) -> str:
    """The comparison as two Markdown tables (what docs/results.md shows).

    The first gives per configuration the seeds and ``mean ± std [95% CI of the mean]`` per metric and the mean
    training time; the second each configuration minus the baseline, paired by seed: the mean difference with its
    95% interval and the paired t-test's p, marked *noise* when the interval contains 0.
    """
    head = "| configuration | seeds | " + " | ".join(metrics) + " | training (s) |"
    lines = [head, "|" + "---|" * (len(metrics) + 3)]
    for row in summarise(runs, metrics):
        time_s = f"{row['train_time_s']:.0f}" if row["train_time_s"] is not None else "–"
        cells = " | ".join(_cell(row[m]) for m in metrics)
        lines.append(f"| {row['config']} | {','.join(str(s) for s in row['seeds'])} | {cells} | {time_s} |")
    base, diffs = paired_comparison(runs, baseline, metrics)
    lines += ["", f"| configuration − {base} | pairs | " + " | ".join(f"Δ{m}" for m in metrics) + " |"]
    lines.append("|" + "---|" * (len(metrics) + 2))
    by_config: dict[str, dict[str, dict[str, Any]]] = {}
    for d in diffs:
        by_config.setdefault(d["config"], {})[d["metric"]] = d
    for label, per_metric in by_config.items():
        diff_cells: list[str] = []
        for m in metrics:
            diff = per_metric.get(m)
            if diff is None or diff["mean_diff"] is None:
                diff_cells.append("–")
                continue
            diff_cells.append(_difference_text(diff["mean_diff"], diff["ci95"], diff["t_p"], diff["inside_noise"]))
        pairs = max(d["pairs"] for d in per_metric.values())
        lines.append(f"| {label} | {pairs} | " + " | ".join(diff_cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m idkl_lib.experiments.compare RUN_DIR [RUN_DIR ...] [--baseline LABEL]``: print the Markdown
    tables; exit 0, or 2 for bad input (one line; ``--debug`` for the traceback)."""
    parser = CommandParser(prog="python -m idkl_lib.experiments.compare", description=markdown_tables.__doc__)
    parser.add_argument("folders", nargs="+", help="sweep folders (their finished cells) or run folders")
    parser.add_argument("--baseline", default="", help="configuration label to compare with (default: baseline)")
    parser.add_argument("--protocol", default="", help="protocol setting (default: single-shot all-search)")
    parser.add_argument(
        "--by",
        default="",
        metavar="NAME",
        help="also print how each configuration's gap to the baseline changes with this parameter (e.g. "
        "synthetic_modality_evidence; NAME1,NAME2 for parameters that change together, e.g. lr,epochs,milestones), "
        "paired by seed, from the level of the first folder given",
    )
    parser.add_argument(
        "--by-default",
        default=None,
        metavar="VALUE",
        help="the --by parameter's value in runs that did not set it (the notebook's default, e.g. 0)",
    )
    return run_command(parser, _compare_command, argv)


def _compare_command(args: argparse.Namespace) -> int:
    runs: list[Run] = []
    protocol = args.protocol
    for folder in args.folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"folder {folder} does not exist; give a sweep folder or a pipeline run folder")
        sweep = is_sweep(folder)
        loaded, protocol = load_runs(folder if sweep else None, runs=() if sweep else [folder], protocol=protocol)
        runs += loaded
    if args.by and args.by_default is not None:
        import yaml

        for run in runs:
            for name in args.by.split(","):
                run.params.setdefault(name.strip(), yaml.safe_load(args.by_default))
    _label(runs)
    print(f"protocol: {protocol}\n")
    print(markdown_tables(runs, args.baseline))
    if args.by:
        try:
            print(gap_change_table(runs, args.by, args.baseline))
        except ValueError as exc:
            raise ValueError(f"--by {args.by}: {exc}") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
