"""The first screen of a run's ``index.html``: the run's parameters in one line, IDKL against the baseline, the key
figures.

Everything is read from the run folder (see :mod:`idkl_lib.runs` for its layout):

* parameters: the IDKL training step's ``metrics.json`` ``"train_config"`` (what the trainer really ran with), else
  its entry of ``params.json``; the preset from ``status.json``;
* results: ``03_evaluate/metrics.json`` ``"protocols"`` (IDKL). The baseline comes, in this order of preference,
  from its ``"baseline"`` entry with ``"vs_baseline"`` (both models evaluated side by side: same protocol, same
  trials), else from the baseline training step's final evaluation (``02_train_baseline/metrics.json`` ``"eval"``,
  compared with the IDKL training step's own final evaluation), else the table shows IDKL alone. The page says
  which source was used;
* key figures: the first of :data:`KEY_FIGURES` found in the steps' ``figures/`` folders.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from idkl_lib.runs import BASELINE_STEP, DATA_STEP, EVAL_STEP, FIGURES_DIR, METRICS_NAME, TRAIN_STEP

__all__ = [
    "EVAL_STEP",
    "KEY_FIGURES",
    "SUMMARY_METRICS",
    "Comparison",
    "comparison",
    "parameter_line",
    "render_summary",
]

"""Step that evaluates the trained model(s) with the dataset's protocol."""
SUMMARY_METRICS: tuple[str, ...] = ("R1", "mAP", "mINP")
"""Metrics of the summary table (percent)."""
KEY_FIGURES: tuple[tuple[str, str], ...] = (
    ("cmc", "CMC curves"),
    ("loss_curves", "training losses"),
    ("rank_lists", "rank lists"),
)
"""``(file stem, caption)`` of the figures shown on the first screen, looked up in the steps' ``figures/``."""
SYNTHETIC_NOTE = (
    "What one synthetic run can show: a single run's IDKL − baseline difference is not an effect of IDKL. Over seeds, "
    "with the demo's recipe (random start, the reference's small-batch weights at its batch of 32) no part of IDKL "
    "changed R1 beyond the seed noise, and from a pretrained start (the CPU stand-in for ImageNet weights) at the "
    "reference's learning rate a CPU-sized schedule trained too little to tell (docs/results.md, sections 1 and 6)."
)
"""Said under the table of a run on the synthetic dataset (what the demo shows, and why)."""
PARAMETER_FIELDS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("dataset", lambda c: c.get("dataset")),
    ("arch", lambda c: c.get("arch") and f"{c['arch']}{_start(c.get('pretrained'))}"),
    ("size", lambda c: c.get("height") and c.get("width") and f"{c['height']}×{c['width']}"),
    ("P×K", lambda c: c.get("p") and c.get("k") and f"{c['p']}×{c['k']}"),
    ("epochs", lambda c: c.get("epochs")),
    ("lr", lambda c: c.get("lr")),
    ("losses", lambda c: c.get("loss_preset")),
    ("seed", lambda c: c.get("seed")),
    ("device", lambda c: c.get("device")),
)
"""The run's one-line summary: label and how to read it from a training configuration."""


@dataclass(frozen=True)
class Comparison:
    """IDKL's protocol metrics, the baseline's (if any) and their differences, with where they came from."""

    idkl: dict[str, dict[str, Any]]
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)
    differences: dict[str, dict[str, float]] = field(default_factory=dict)
    source: str = "none"
    """``"side_by_side"`` (03's baseline entry), ``"baseline_step"`` (the baseline's own final evaluation),
    ``"idkl_only"`` or ``"none"`` (no protocol metrics at all)."""
    note: str = ""
    """One sentence naming the files the numbers come from."""
    main_setting: str | None = None


def _start(pretrained: Any) -> str:
    """How the network started: ImageNet weights, the synthetic pretraining (CPU stand-in) or another file."""
    if pretrained is True:
        return " (ImageNet)"
    if not isinstance(pretrained, str) or not pretrained:
        return ""
    from idkl_lib.pretrain import read_record  # imports torch: only for a run that started from a file

    record = read_record(pretrained) or {}
    if "CPU stand-in" in str(record.get("what", "")):
        return " (synthetic pretraining, the CPU stand-in for ImageNet)"
    return f" (pretrained: {Path(pretrained).name})"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _protocols(value: Any) -> dict[str, dict[str, Any]]:
    """``{setting: {metric: value}}`` rows that hold at least one summary metric."""
    return {
        str(k): v
        for k, v in _dict(value).items()
        if isinstance(v, dict) and any(_number(v.get(m)) is not None for m in SUMMARY_METRICS)
    }


def _differences(idkl: Mapping[str, Mapping[str, Any]], baseline: Mapping[str, Mapping[str, Any]]) -> dict:
    out: dict[str, dict[str, float]] = {}
    for setting, row in idkl.items():
        other = baseline.get(setting) or {}
        diffs = {}
        for m in SUMMARY_METRICS:
            a, b = _number(row.get(m)), _number(other.get(m))
            if a is not None and b is not None:
                diffs[m] = a - b
        if diffs:
            out[setting] = diffs
    return out


def comparison(metrics: Mapping[str, Any]) -> Comparison:
    """IDKL against the baseline from the steps' metrics (``{step name: metrics.json content}``).

    Sources in order of preference: the evaluation step's ``"baseline"`` entry (differences from its
    ``"vs_baseline"``, else computed), the baseline training step's ``"eval"`` against the IDKL training step's
    ``"eval"`` (or the evaluation step's ``"protocols"`` when the training step has none), IDKL alone.
    """
    evaluation, train, base = (_dict(metrics.get(name)) for name in (EVAL_STEP, TRAIN_STEP, BASELINE_STEP))
    main = str(_dict(evaluation.get("rank_view")).get("name") or "").split(" (")[0] or None
    evaluated, trained = _protocols(evaluation.get("protocols")), _protocols(train.get("eval"))
    side = _protocols(_dict(evaluation.get("baseline")).get("protocols"))
    if evaluated and side:
        given = {
            str(s): {m: float(d[m]) for m in SUMMARY_METRICS if _number(_dict(d).get(m)) is not None}
            for s, d in _dict(evaluation.get("vs_baseline")).items()
        }
        checkpoint = _dict(evaluation.get("baseline")).get("checkpoint")
        note = (
            f"IDKL and the baseline evaluated side by side in {EVAL_STEP} (same protocol and trials"
            + (f"; baseline checkpoint {'/'.join(Path(str(checkpoint)).parts[-2:])}" if checkpoint else "")
            + f"), from {EVAL_STEP}/{METRICS_NAME}."
        )
        diffs = given or _differences(evaluated, side)
        return Comparison(evaluated, side, diffs, "side_by_side", note, main)
    own = _protocols(base.get("eval"))
    if own and (trained or evaluated):
        idkl, idkl_file = (trained, TRAIN_STEP) if trained else (evaluated, EVAL_STEP)
        note = (
            f"{EVAL_STEP} holds no side-by-side baseline: the baseline's numbers are its own final evaluation "
            f"({BASELINE_STEP}/{METRICS_NAME}), IDKL's from {idkl_file}/{METRICS_NAME}."
        )
        return Comparison(idkl, own, _differences(idkl, own), "baseline_step", note, main)
    idkl, idkl_file = (evaluated, EVAL_STEP) if evaluated else (trained, TRAIN_STEP)
    if not idkl:
        return Comparison({}, note="No protocol metrics in this run (yet).")
    note = f"IDKL alone ({idkl_file}/{METRICS_NAME}): this run has no baseline evaluation."
    return Comparison(idkl, source="idkl_only", note=note, main_setting=main)


def parameter_line(status: Mapping[str, Any], params: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    """The run's parameters as one line of text (``"preset demo · dataset sysu · arch resnet18 · ..."``)."""
    config = _dict(_dict(metrics.get(TRAIN_STEP)).get("train_config")) or _dict(params.get(TRAIN_STEP))
    explored = _dict(metrics.get(DATA_STEP))
    parts = [f"preset {status['preset']}"] if status.get("preset") else []
    for label, read in PARAMETER_FIELDS:
        value = read(config)
        if label == "dataset" and explored.get("dataset") == "synthetic":
            value = f"synthetic ({explored.get('parsed_as') or value} layout)"
        if value is not None and value != "" and value is not False:
            parts.append(f"{label} {value}")
    size = _dict(_dict(metrics.get(TRAIN_STEP)).get("complexity"))  # idkl_lib.models.complexity.Complexity
    if size:
        parts.append(
            f"{size['params_total'] / 1e6:.2f} M parameters ({size['params_retrieval'] / 1e6:.2f} M retrieval) · "
            f"GFLOPs per image {size['gflops_retrieval']:.3g} retrieval, {size['gflops_train']:.3g} training"
        )
    evaluation = _dict(metrics.get(EVAL_STEP))
    if evaluation.get("feature"):
        parts.append(f"eval feature {evaluation['feature']}{' + flip' if evaluation.get('flip') else ''}")
    return " · ".join(parts)


def _fmt(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:.2f}"


def _diff_cell(diff: float | None) -> str:
    if diff is None:
        return '<td class="num">–</td>'
    cls = "pos" if diff > 0 else "neg" if diff < 0 else "zero"
    sign = "+" if diff > 0 else "−" if diff < 0 else "±"
    return f'<td class="num diff {cls}">{sign}{abs(diff):.2f}</td>'


def _queries(row: Mapping[str, Any]) -> str:
    count = _number(row.get("num_queries"))
    return "" if count is None else f"{round(count):,d}"


def comparison_table(result: Comparison) -> str:
    """The summary table: one row per protocol setting, R1/mAP/mINP of IDKL (and baseline with the difference)."""
    if not result.idkl:
        return f"<p class='sub'>{html.escape(result.note)}</p>"
    paired = bool(result.baseline)
    per = ("IDKL", "baseline", "Δ") if paired else ("IDKL",)
    head = "<tr><th rowspan='2'>setting</th><th rowspan='2'>queries</th>" + "".join(
        f"<th colspan='{len(per)}'>{m} (%)</th>" for m in SUMMARY_METRICS
    )
    head += "</tr><tr>" + "".join(f"<th>{p}</th>" for _ in SUMMARY_METRICS for p in per) + "</tr>"
    rows = []
    for setting, row in result.idkl.items():
        other = result.baseline.get(setting) or {}
        diffs = result.differences.get(setting) or {}
        cells = []
        for m in SUMMARY_METRICS:
            cells.append(f'<td class="num">{_fmt(row.get(m))}</td>')
            if paired:
                cells.append(f'<td class="num">{_fmt(other.get(m))}</td>{_diff_cell(diffs.get(m))}')
        main = setting == result.main_setting
        label = html.escape(setting) + (" <span class='sub'>(rank lists)</span>" if main else "")
        rows.append(f"<tr><td>{label}</td><td class='num'>{_queries(row)}</td>{''.join(cells)}</tr>")
    legend = " Δ = IDKL − baseline in percentage points." if paired else ""
    return f"<table class='summary'>{head}{''.join(rows)}</table><p class='sub'>{html.escape(result.note + legend)}</p>"


def key_figures(run_dir: Path, order: Sequence[str]) -> list[tuple[Path, Path | None, str, str]]:
    """``(png, html or None, caption, step)`` of the :data:`KEY_FIGURES` found, each from the first step having it."""
    found = []
    for stem, caption in KEY_FIGURES:
        for name in order:
            if name == BASELINE_STEP:
                continue
            png = run_dir / name / FIGURES_DIR / f"{stem}.png"
            if png.is_file():
                page = png.with_suffix(".html")
                found.append((png, page if page.is_file() else None, caption, name))
                break
    return found


def _key_figures_html(run_dir: Path, order: Sequence[str]) -> str:
    items = []
    for png, page, caption, step in key_figures(run_dir, order):
        src = quote(png.relative_to(run_dir).as_posix())
        target = quote((page or png).relative_to(run_dir).as_posix())
        kind = "interactive" if page else "image"
        items.append(
            f'<figure><a href="{target}"><img src="{src}" alt="{html.escape(caption)}"></a>'
            f"<figcaption>{html.escape(caption)} ({html.escape(step)}) · "
            f'<a href="{target}">{kind}</a></figcaption></figure>'
        )
    return f'<div class="figs key">{"".join(items)}</div>' if items else ""


def render_summary(
    run_dir: Path, status: Mapping[str, Any], params: Mapping[str, Any], metrics: Mapping[str, Any]
) -> str:
    """The summary section of the report page (HTML)."""
    order = [str(n) for n in status.get("order") or []] + [n for n in metrics if n not in (status.get("order") or [])]
    line = parameter_line(status, params, metrics)
    result = comparison(metrics)
    title = "IDKL vs baseline" if result.baseline else "Result"
    synthetic = _dict(metrics.get(DATA_STEP)).get("dataset") == "synthetic"
    return (
        '<section id="summary"><h2>Summary</h2>'
        + (f"<p class='params'>{html.escape(line)}</p>" if line else "")
        + f"<h3>{title}</h3>{comparison_table(result)}"
        + (f"<p class='sub note'>{html.escape(SYNTHETIC_NOTE)}</p>" if synthetic and result.baseline else "")
        + _key_figures_html(run_dir, order)
        + "</section>"
    )
