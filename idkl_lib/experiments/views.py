"""Notebook 04's Grad-CAM and notebook 05's embedding statistics over training seeds.

Notebooks 04 and 05 say what one pair of models shows. The paper's Figure-4 claim is about the method: the enhanced
shared feature attends to the person where the plain shared one does not, and brings a person's two modalities
closer. This module asks it over the seeds of a sweep:

1. **Pair** the models the sweep trained: per seed, the checkpoint of the IDKL configuration and of the baseline.
2. **Run** notebooks 04 and 05 on each pair, one pipeline run folder per seed (``<out>/seed-<n>``, with the usual
   reports). A seed finished with the same parameters is not run again.
3. **Summarise** each statistic over seeds: per feature view its mean and 95% t interval, and the paired difference
   enhanced shared (IDKL) − shared (baseline), seed by seed, with its interval and the paired t-test
   (:func:`idkl_lib.experiments.compare.paired_difference`). ``<out>/views.json`` holds it all;
   :mod:`idkl_lib.experiments.results_doc` exports it and renders :func:`views_table`.

Command::

    python -m idkl_lib.experiments.views reports/SWEEP --idkl full --out reports/SWEEP-views \\
        -p 04_gradcam.num_queries 16

The statistics are the notebooks' own (:func:`idkl_lib.viz.cam_statistics`, :func:`idkl_lib.viz.modality_gap_stats`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idkl_lib.experiments.compare import _difference_text, mean_ci, paired_difference
from idkl_lib.experiments.run_table import IGNORED_PARAMS, Run, configs, load_runs
from idkl_lib.notebook.evidence import BASELINE_SHARED, ENHANCED
from idkl_lib.runs import (
    EMBEDDINGS_STEP,
    GRADCAM_STEP,
    VIEWS_NAME,
    checkpoint_path,
    read_json,
    read_metrics,
    views_seed_path,
)
from idkl_lib.utils.errors import CommandParser, run_command
from idkl_lib.utils.io import atomic_write_json

__all__ = [
    "STATISTICS",
    "VIEWS_NAME",
    "Statistic",
    "pair_checkpoints",
    "read_views",
    "run_views",
    "summarise_views",
    "views_table",
]

_SCHEMA = 1
_NOT_RECORDED = IGNORED_PARAMS | {"checkpoint", "baseline_checkpoint"}
"""Parameters left out of ``views.json``: the machine's paths and threads, which do not change a statistic."""


@dataclass(frozen=True)
class Statistic:
    """One number a notebook reports per feature view."""

    step: str
    key: str
    label: str
    claim: str  # the direction the paper's claim predicts for enhanced (IDKL) − shared (baseline): "+", "-" or ""


STATISTICS: tuple[Statistic, ...] = (
    Statistic(GRADCAM_STEP, "box_mass", "Grad-CAM share on the person band", "+"),
    Statistic(GRADCAM_STEP, "top10_mass", "Grad-CAM share on its brightest 10%", ""),
    Statistic(GRADCAM_STEP, "similarity", "query-match cosine similarity", ""),
    Statistic(EMBEDDINGS_STEP, "cross_ratio", "same/different-id cross-modality distance ratio", "-"),
    Statistic(EMBEDDINGS_STEP, "silhouette_modality", "silhouette by modality", "-"),
    Statistic(EMBEDDINGS_STEP, "silhouette_identity", "silhouette by identity", ""),
)
"""What :func:`summarise_views` tabulates; ``claim`` is the sign the Figure-4 claim predicts for the difference."""
VIEWS: tuple[str, str] = (ENHANCED, BASELINE_SHARED)


def pair_checkpoints(runs: Sequence[Run], idkl: str, baseline: str) -> dict[int, tuple[Path, Path]]:
    """Seed -> (IDKL checkpoint, baseline checkpoint) for every seed both configurations finished.

    Raises:
        ValueError: a configuration label is not among the runs (the known ones are named), or no seed has both.
    """
    groups = configs(runs)
    for name, label in (("--idkl", idkl), ("--baseline", baseline)):
        if label not in groups:
            raise ValueError(f"{name} {label!r} is not a configuration of these runs; they have {sorted(groups)}")
    base = {r.seed: r for r in groups[baseline]}
    pairs = {
        int(r.seed): (checkpoint_path(r.path), checkpoint_path(base[r.seed].path))
        for r in groups[idkl]
        if r.seed in base
    }
    if not pairs:
        raise ValueError(f"no seed has finished runs of both {idkl!r} and {baseline!r}")
    return dict(sorted(pairs.items()))


def run_views(
    pairs: Mapping[int, tuple[Path, Path]],
    out_dir: str | Path,
    params: Mapping[str, Any] | None = None,
    notebooks_dir: str | Path = "notebooks",
    verbose: bool = True,
) -> list[Path]:
    """Run notebooks 04 and 05 on each seed's pair into ``<out_dir>/seed-<n>``; the run folders, in seed order.

    ``params`` go to both notebooks as the pipeline's ``-p`` (``"04_gradcam.num_queries"`` for one step). A seed
    finished earlier with the same parameters is skipped (the pipeline's resume).
    """
    from idkl_lib.pipeline import run_pipeline  # imports papermill and the kernel machinery

    folders = []
    for seed, (idkl_ckpt, baseline_ckpt) in pairs.items():
        folder = views_seed_path(out_dir, seed)
        if verbose:
            print(f"seed {seed}: {folder}", flush=True)
        step_params = {**dict(params or {}), "checkpoint": str(idkl_ckpt), "baseline_checkpoint": str(baseline_ckpt)}
        run_pipeline(
            folder,
            preset=None,
            params=step_params,
            notebooks_dir=notebooks_dir,
            resume=True,
            only=[GRADCAM_STEP, EMBEDDINGS_STEP],
            verbose=verbose,
        )
        folders.append(folder)
    return folders


def _seed_values(folder: Path) -> dict[str, dict[str, float]]:
    """View label -> statistic -> value, from one seed's 04 and 05 metrics."""
    metrics = read_metrics(folder, on_error="raise") or {}
    values: dict[str, dict[str, float]] = {}
    for step in (GRADCAM_STEP, EMBEDDINGS_STEP):
        views = (metrics.get(step) or {}).get("views")
        if not views:
            raise ValueError(f"{folder}: step {step} has no 'views' metrics; run it (python -m idkl_lib.pipeline)")
        for name, row in views.items():
            label = row.get("label", name)  # 04 keys its views by label, 05 by name with the label inside
            values.setdefault(label, {}).update({k: float(v) for k, v in row.items() if k != "label"})
    missing = [view for view in VIEWS if view not in values]
    if missing:
        raise ValueError(f"{folder}: no {missing} view; notebooks 04 and 05 need a baseline_checkpoint")
    return values


def summarise_views(
    folders: Mapping[int, Path], idkl: str = "", baseline: str = "", params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Seed -> run folder (notebooks 04 and 05 finished) to the summary written as ``views.json``."""
    import torch  # its version goes into the summary; importing it costs seconds, so not at module level

    per_seed = {seed: _seed_values(folder) for seed, folder in sorted(folders.items())}
    seeds = list(per_seed)
    rows = []
    for stat in STATISTICS:
        columns = {view: [per_seed[s][view][stat.key] for s in seeds] for view in VIEWS}
        rows.append(
            {
                "step": stat.step,
                "key": stat.key,
                "label": stat.label,
                "claim": stat.claim,
                "views": {view: {**mean_ci(values), "values": values} for view, values in columns.items()},
                "difference": paired_difference(columns[ENHANCED], columns[BASELINE_SHARED]),
            }
        )
    first = per_seed[seeds[0]][ENHANCED]
    return {
        "schema": _SCHEMA,
        "written": time.strftime("%Y-%m-%d", time.gmtime()),
        "torch": torch.__version__,
        "idkl": idkl,
        "baseline": baseline,
        "seeds": seeds,
        "params": {k: v for k, v in (params or {}).items() if k.rpartition(".")[2] not in _NOT_RECORDED},
        "box_area": first.get("box_area"),
        "statistics": rows,
    }


def views_table(summary: Mapping[str, Any], digits: int = 3) -> str:
    """The summary as a Markdown table: per statistic both views' mean [95% CI] over seeds, the paired difference and
    whether it has the sign the claim predicts beyond the seed noise."""
    enhanced, shared = VIEWS
    lines = [
        f"| statistic | {enhanced} | {shared} | difference (paired by seed) | claim | beyond noise, claim's sign |",
        "|---|---|---|---|---|---|",
    ]

    def cell(s: Mapping[str, Any]) -> str:
        mean, half = s["mean"], s["ci95"]
        return f"{mean:.{digits}f}" + ("" if half is None else f" [{mean - half:.{digits}f}, {mean + half:.{digits}f}]")

    for row in summary["statistics"]:
        d = row["difference"]
        label = row["label"]
        if row["key"] == "box_mass" and summary.get("box_area") is not None:
            label += f" (uniform map: {summary['box_area']:.{digits}f})"
        diff = _difference_text(d["mean_diff"], d["ci95"], d["t_p"], d["inside_noise"], digits)
        claim = {"+": "higher", "-": "lower"}.get(row["claim"], "–")
        if not row["claim"] or d["inside_noise"] is None:
            verdict = "–"
        elif d["inside_noise"]:
            verdict = "no (noise)"
        else:
            verdict = "yes" if (d["mean_diff"] > 0) == (row["claim"] == "+") else "no (opposite)"
        views = row["views"]
        lines.append(f"| {label} | {cell(views[enhanced])} | {cell(views[shared])} | {diff} | {claim} | {verdict} |")
    return "\n".join(lines) + "\n"


def read_views(path: str | Path) -> dict[str, Any]:
    """A ``views.json`` (or the folder holding one)."""
    path = Path(path)
    path = path / VIEWS_NAME if path.is_dir() else path
    data = read_json(path, on_error="raise")
    if data is None:
        raise FileNotFoundError(f"{path} does not exist; write it with python -m {__name__} SWEEP --idkl ... --out ...")
    if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
        raise ValueError(f"{path} is not a views summary of schema {_SCHEMA}; write it with {__name__}")
    return data


def _parser() -> argparse.ArgumentParser:
    from idkl_lib.pipeline.steps import add_parameter_option  # imports papermill: only for the command

    parser = CommandParser(
        prog="python -m idkl_lib.experiments.views",
        description="Run notebooks 04 (Grad-CAM) and 05 (embeddings) on the IDKL and baseline models of every seed "
        f"of a sweep and summarise their statistics over seeds ({VIEWS_NAME}, a Markdown table).",
    )
    parser.add_argument("sweep", type=Path, help="sweep folder whose cells trained both configurations")
    parser.add_argument("--idkl", required=True, help="configuration label of the IDKL models (e.g. full)")
    parser.add_argument("--baseline", default="baseline", help="configuration label of the baseline (baseline)")
    parser.add_argument("--out", type=Path, required=True, help=f"folder for the per-seed runs and {VIEWS_NAME}")
    add_parameter_option(parser, help="notebook parameter of both steps (NAME or STEP.NAME), as the pipeline's -p")
    parser.add_argument("--notebooks-dir", type=Path, default=Path("notebooks"), help="folder with the notebooks")
    parser.add_argument("--protocol", default="", help="protocol setting the sweep's runs are read with")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0, 1 (a notebook failed) or 2 (bad input), the error in one line."""
    from idkl_lib.pipeline import PipelineError

    return run_command(_parser(), _command, argv, failures=(PipelineError,))


def _command(args: argparse.Namespace) -> int:
    from idkl_lib.pipeline.steps import parameters

    params = parameters(args.parameter)
    runs, _ = load_runs(args.sweep, protocol=args.protocol)
    pairs = pair_checkpoints(runs, args.idkl, args.baseline)
    folders = run_views(pairs, args.out, params, args.notebooks_dir)
    summary = summarise_views(dict(zip(pairs, folders, strict=True)), args.idkl, args.baseline, params)
    path = atomic_write_json(args.out / VIEWS_NAME, summary)
    print(views_table(summary), end="")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
