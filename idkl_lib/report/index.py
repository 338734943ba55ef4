"""The run report: ``<run_dir>/index.html``, built from what the pipeline left in the run folder.

:func:`write_index` reads ``status.json`` (step order and states), ``environment.json``, ``params.json`` and
each step's ``<step>/metrics.json`` and ``<step>/figures/``, and writes one dependency-free HTML page
(inline CSS, relative links, no scripts), so a run folder can be zipped, mailed or served as it is.

The page leads with the result (:mod:`idkl_lib.report.summary`: the run's parameters in one line, IDKL against the
baseline, the key figures), then the steps in run order, each with its figures in the order the notebook saved
them (file modification times, which copies made with ``zip``, ``rsync -a`` or ``cp -p`` keep), linking the
interactive HTML version of each; the full metrics table is collapsed at the bottom. Each step links its HTML page,
its slide deck (``<step>.slides.html``) and its executed notebook; when a step folder holds TensorBoard logs, the
page shows the command that opens them. Under the steps, "Presenting" links every deck and gives the presenter's keys
and the way to present live with code (RISE in JupyterLab).

A run folder written from JupyterLab (notebooks 01-05 run by hand) has no ``status.json``: its steps are the step
folders that hold a ``metrics.json``, in name order (``01_data_exploration``, ``02_train``, ``02_train_baseline``,
...), each marked ``done``, and the page is marked ``interactive``; notebook 05 writes it
(:meth:`idkl_lib.notebook.context.RunFolder.write_report`).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from idkl_lib.report.summary import render_summary
from idkl_lib.runs import (
    ENVIRONMENT_NAME,
    EVAL_STEP,
    METRICS_NAME,
    PARAMS_NAME,
    SLIDES_SUFFIX,
    STATUS_NAME,
    TENSORBOARD_DIR,
    TRAIN_STEP,
    read_json,
    read_metrics,
    read_params,
    read_status,
    step_path,
)
from idkl_lib.utils.io import atomic_write_text

__all__ = ["IMAGE_SUFFIXES", "figure_order", "flatten_metrics", "interactive_steps", "render_index", "write_index"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif", ".webp")
"""Figures shown inline; other files in ``figures/`` (``.html``, ``.pdf``, ...) are linked."""
_SUPPORT_SUFFIXES = (".js", ".css", ".map")
"""Files in ``figures/`` that serve the HTML figures (plotly.min.js) and are not listed."""

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;margin:0;background:#f5f7fa}
main{max-width:1180px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:20px;margin:36px 0 10px;border-bottom:2px solid #d9e2ec;
padding-bottom:4px}h3{font-size:16px;margin:18px 0 8px}
.sub{color:#52606d;margin:0 0 16px}
table{border-collapse:collapse;background:#fff;margin:6px 0 14px;font-size:14px}
th,td{border:1px solid #d9e2ec;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef2f7;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
a{color:#1f6feb;text-decoration:none}a:hover{text-decoration:underline}
.badge{display:inline-block;border-radius:10px;padding:0 9px;font-size:12px;font-weight:600;color:#fff}
.done{background:#2f9e44}.failed,.interrupted{background:#e03131}.running{background:#f08c00}
.not-run,.skipped{background:#868e96}.interactive{background:#1f6feb}
.banner{background:#fff5f5;border:1px solid #ffa8a8;border-left:6px solid #e03131;padding:10px 14px;margin:14px 0}
.banner pre{white-space:pre-wrap;margin:6px 0 0;font-size:13px}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid #d9e2ec;padding:8px}
figure img{width:100%;height:auto;max-height:440px;object-fit:contain}
figcaption{font-size:13px;color:#52606d;margin-top:4px}
details{margin:6px 0}summary{cursor:pointer;color:#52606d}code{font-size:13px}
.params{background:#fff;border:1px solid #d9e2ec;padding:6px 12px;font-size:14px}
table.summary td.diff{font-weight:600}.pos{color:#00795a}.neg{color:#c2410c}.zero{color:#52606d}
.figs.key{grid-template-columns:repeat(auto-fill,minmax(360px,1fr))}h3 small{font-weight:400;font-size:13px}
kbd{border:1px solid #bcccdc;border-bottom-width:2px;border-radius:3px;padding:0 5px;font-size:12px;background:#fff}
.present{background:#fff;border:1px solid #d9e2ec;padding:6px 14px}.present p{margin:6px 0}
"""
PRESENT_FIRST = (TRAIN_STEP, EVAL_STEP)
"""The decks of a talk on the method and its results, in the order to show them (when the run has them)."""


def flatten_metrics(metrics: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Flatten nested metric dicts to ``("a.b.c", value)`` rows (lists are kept as values).

    Args:
        metrics: A step's ``metrics.json`` content.
        prefix: Key prefix for the recursion.

    Returns:
        Rows in the file's key order.
    """
    if isinstance(metrics, dict):
        rows: list[tuple[str, Any]] = []
        for key, value in metrics.items():
            rows.extend(flatten_metrics(value, f"{prefix}.{key}" if prefix else str(key)))
        return rows
    return [(prefix or "value", metrics)]


def _fmt(value: Any) -> tuple[str, bool]:
    """Display text for a metric value and whether it is numeric."""
    if isinstance(value, bool) or value is None:
        return str(value), False
    if isinstance(value, int):
        return f"{value:,}", True
    if isinstance(value, float):
        return f"{value:.6g}", True
    if isinstance(value, list):
        if len(value) <= 10 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return "[" + ", ".join(_fmt(v)[0] for v in value) + "]", False
        return f"list of {len(value)}", False
    return str(value), False


def _link(run_dir: Path, path: Path, text: str) -> str:
    rel = path.relative_to(run_dir).as_posix()
    return f'<a href="{quote(rel)}">{html.escape(text)}</a>'


def _badge(state: str) -> str:
    return f'<span class="badge {html.escape(state.replace(" ", "-"))}">{html.escape(state)}</span>'


def _environment_table(env: dict[str, Any]) -> str:
    commit = env.get("git_commit")
    rows = [
        ("started", env.get("started")),
        ("finished", env.get("finished")),
        ("preset", env.get("preset")),
        ("device", env.get("device")),
        ("git commit", None if commit is None else f"{commit[:12]}{' (dirty)' if env.get('git_dirty') else ''}"),
        ("idkl_lib", env.get("idkl_lib_version")),
        ("python / torch / torchvision", f"{env.get('python')} / {env.get('torch')} / {env.get('torchvision')}"),
        ("host", env.get("hostname")),
    ]
    cells = ((k, "—" if v is None else str(v)) for k, v in rows)
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in cells)
    return f"<table>{body}</table>"


def _failure_banner(run_dir: Path, failure: dict[str, Any] | None) -> str:
    if not failure:
        return ""
    page = run_dir / f"{failure.get('step')}.html"
    link = f" ({_link(run_dir, page, 'open the failed notebook')})" if page.is_file() else ""
    where = ""
    if failure.get("exec_count") is not None or failure.get("cell_index") is not None:
        where = f" in cell In [{failure.get('exec_count')}] (cell index {failure.get('cell_index')})"
    return (
        f'<div class="banner"><strong>Step {html.escape(str(failure.get("step")))} failed</strong>{where}: '
        f"{html.escape(str(failure.get('ename')))}: {html.escape(str(failure.get('evalue')))}"
        f"{link}<pre>{html.escape(str(failure.get('message', '')))}</pre></div>"
    )


def _steps_table(run_dir: Path, order: list[str], steps: dict[str, Any]) -> str:
    rows = []
    for number, name in enumerate(order, start=1):
        entry = steps.get(name) or {}
        links = [
            _link(run_dir, path, label)
            for path, label in (
                (run_dir / f"{name}.html", "report"),
                (run_dir / f"{name}{SLIDES_SUFFIX}", "slides"),
                (run_dir / f"{name}.ipynb", "notebook"),
            )
            if path.is_file()
        ]
        duration = entry.get("duration_s")
        rows.append(
            f'<tr><td class="num">{number}</td><td><a href="#step-{quote(name)}">{html.escape(name)}</a></td>'
            f"<td>{html.escape(Path(str(entry.get('notebook', ''))).name)}</td>"
            f"<td>{_badge(str(entry.get('state', 'not run')))}</td>"
            f'<td class="num">{"" if duration is None else f"{duration:.1f} s"}</td>'
            f"<td>{' · '.join(links)}</td></tr>"
        )
    head = "<tr><th>#</th><th>step</th><th>notebook</th><th>state</th><th>time</th><th>outputs</th></tr>"
    logged = [name for name in order if (run_dir / name / TENSORBOARD_DIR).is_dir()]
    board = ""
    if logged:
        board = (
            f"<p>Training curves of {html.escape(', '.join(logged))} in TensorBoard: "
            f"<code>tensorboard --logdir {html.escape(str(run_dir))}</code></p>"
        )
    return f"<table>{head}{''.join(rows)}</table>{board}"


def _presenting(run_dir: Path, order: list[str]) -> str:
    """Which deck to open, the keys, and how to present live with code (empty when the run has no deck)."""
    decks = [name for name in order if (run_dir / f"{name}{SLIDES_SUFFIX}").is_file()]
    if not decks:
        return ""
    links = " · ".join(_link(run_dir, run_dir / f"{name}{SLIDES_SUFFIX}", name) for name in decks)
    first = [name for name in PRESENT_FIRST if name in decks]
    talk = ""
    if first:
        talk = f" For a talk on the method and its results open {' then '.join(html.escape(n) for n in first)}."
    return (
        '<h2 id="presenting">Presenting</h2><div class="present">'
        f"<p>One slide deck per notebook, code hidden: {links}.{talk} They work offline and from a copy of this "
        "folder (reveal.js, plotly.js and MathJax are in it); an interactive control shows what it last drew.</p>"
        "<p><kbd>→</kbd> / <kbd>Space</kbd> next (<kbd>↓</kbd> inside a stack), <kbd>←</kbd> back, <kbd>f</kbd> full "
        "screen, <kbd>Esc</kbd> overview, <kbd>s</kbd> speaker view with the notes and a timer (allow the pop-up).</p>"
        "<p>Live, with code that runs: open the notebook in JupyterLab (<code>.venv/bin/jupyter lab</code>), run it, "
        "then <kbd>Alt</kbd>+<kbd>R</kbd> (RISE) presents the same slides.</p></div>"
    )


def _metrics_table(order: list[str], all_metrics: dict[str, Any]) -> str:
    rows = []
    for name in order:
        flat = flatten_metrics(all_metrics[name]) if name in all_metrics else []
        for i, (key, value) in enumerate(flat):
            text, numeric = _fmt(value)
            step_cell = f'<th rowspan="{len(flat)}">{html.escape(name)}</th>' if i == 0 else ""
            cls = ' class="num"' if numeric else ""
            rows.append(
                f"<tr>{step_cell}<td><code>{html.escape(key)}</code></td><td{cls}>{html.escape(text)}</td></tr>"
            )
    if not rows:
        return "<p class='sub'>No metrics yet.</p>"
    return f"<table><tr><th>step</th><th>metric</th><th>value</th></tr>{''.join(rows)}</table>"


def figure_order(figures_dir: Path) -> list[Path]:
    """The files of a ``figures/`` folder in the order they were saved (plotly.js and hidden files left out).

    A figure's files (``name.html``, ``name.png``) stay together, placed by the oldest of them (``save_figure``
    writes the HTML first); files saved at the same time are ordered by name.
    """
    files = [
        p
        for p in figures_dir.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in _SUPPORT_SUFFIXES
    ]
    stems: dict[Path, int] = {}
    for p in files:
        key = p.with_suffix("")
        stems[key] = min(stems.get(key, p.stat().st_mtime_ns), p.stat().st_mtime_ns)
    return sorted(files, key=lambda p: (stems[p.with_suffix("")], p.with_suffix("").as_posix(), p.suffix))


def _thumbnail(run_dir: Path, figures_dir: Path, image: Path) -> str:
    page = image.with_suffix(".html")
    src = quote(image.relative_to(run_dir).as_posix())
    target = quote((page if page.is_file() else image).relative_to(run_dir).as_posix())
    interactive = f' · <a href="{target}">interactive</a>' if page.is_file() else ""
    return (
        f'<figure><a href="{target}"><img src="{src}" alt="{html.escape(image.stem)}" loading="lazy"></a>'
        f"<figcaption>{html.escape(image.relative_to(figures_dir).as_posix())}{interactive}</figcaption></figure>"
    )


def _step_section(run_dir: Path, name: str, entry: dict[str, Any], params: Any) -> str:
    links = [
        _link(run_dir, path, label)
        for path, label in ((run_dir / f"{name}.html", "notebook page"), (run_dir / f"{name}.ipynb", "notebook"))
        if path.is_file()
    ]
    parts = [
        f'<h3 id="step-{html.escape(name)}">{html.escape(name)} {_badge(str(entry.get("state", "not run")))}'
        f"{' <small>' + ' · '.join(links) + '</small>' if links else ''}</h3>"
    ]
    figures_dir = run_dir / name / "figures"
    files = figure_order(figures_dir) if figures_dir.is_dir() else []
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    shown = {p.with_suffix(".html") for p in images}
    others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES and p not in shown]
    if images:
        parts.append(f'<div class="figs">{"".join(_thumbnail(run_dir, figures_dir, p) for p in images)}</div>')
    if others:
        items = "".join(f"<li>{_link(run_dir, p, p.relative_to(figures_dir).as_posix())}</li>" for p in others)
        parts.append(f"<p>Interactive figures and other files:</p><ul>{items}</ul>")
    if not files:
        parts.append("<p class='sub'>No figures.</p>")
    if isinstance(params, dict) and params:
        rows = "".join(
            f"<tr><td><code>{html.escape(str(k))}</code></td><td><code>{html.escape(json.dumps(v))}</code></td></tr>"
            for k, v in sorted(params.items())
        )
        parts.append(f"<details><summary>parameters</summary><table>{rows}</table></details>")
    return "".join(parts)


def interactive_steps(run_dir: Path) -> dict[str, Any]:
    """The steps of a run folder without ``status.json`` (run in JupyterLab): ``{step: {"state": "done", "notebook":
    ...}}`` for every step folder holding a ``metrics.json``, in name order."""
    folders = sorted(p for p in run_dir.iterdir() if p.is_dir() and (p / METRICS_NAME).is_file())
    return {p.name: {"state": "done", "notebook": f"{p.name.removesuffix('_baseline')}.ipynb"} for p in folders}


def render_index(run_dir: str | os.PathLike[str], title: str | None = None) -> str:
    """Render the report page for ``run_dir`` (see the module docstring for what is read).

    Args:
        run_dir: The run folder.
        title: Page title; default ``"IDKL run <folder name>"``.

    Returns:
        The HTML text.
    """
    run_dir = Path(run_dir).resolve()
    status = read_status(run_dir, on_error="warn") or {}
    env = read_json(run_dir / ENVIRONMENT_NAME, on_error="warn", expected=dict) or {}
    params = read_params(run_dir, on_error="warn") or {}
    steps: dict[str, Any] = status.get("steps") or {}
    if not status and run_dir.is_dir():
        steps, status = interactive_steps(run_dir), {"state": "interactive"}
    order = [str(name) for name in status.get("order") or []]
    order += [name for name in steps if name not in order]
    all_metrics = {}
    for name in order:
        metrics = read_metrics(step_path(run_dir, name), on_error="warn")
        if metrics is not None:
            all_metrics[name] = metrics
    title = title or f"IDKL run {run_dir.name}"
    state = str(status.get("state", "not run"))
    rows = sum(len(flatten_metrics(m)) for m in all_metrics.values())
    sections = "".join(_step_section(run_dir, name, steps.get(name) or {}, params.get(name)) for name in order)
    files = [run_dir / f for f in (METRICS_NAME, PARAMS_NAME, ENVIRONMENT_NAME, STATUS_NAME)]
    file_links = " · ".join(_link(run_dir, p, p.name) for p in files if p.is_file())
    summary = render_summary(run_dir, status, params, all_metrics)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>{html.escape(title)} {_badge(state)}</h1>"
        f"<p class='sub'>{html.escape(str(run_dir))} · {file_links}</p>"
        f"{_failure_banner(run_dir, status.get('failure'))}"
        f"{summary}"
        f"<h2>Steps</h2>{_steps_table(run_dir, order, steps)}"
        f"{_presenting(run_dir, order)}"
        f"<h2>Notebooks</h2>{sections}"
        f"<h2>Run</h2>{_environment_table(env)}"
        f'<h2 id="metrics">Metrics</h2><details><summary>all metrics of every step ({rows} rows)</summary>'
        f"{_metrics_table(order, all_metrics)}</details>"
        "</main></body></html>\n"
    )


def write_index(run_dir: str | os.PathLike[str], title: str | None = None) -> Path:
    """Atomically write ``<run_dir>/index.html`` from the run folder's contents.

    Args:
        run_dir: The run folder.
        title: Page title; default ``"IDKL run <folder name>"``.

    Returns:
        The path of ``index.html``.
    """
    return atomic_write_text(Path(run_dir) / "index.html", render_index(run_dir, title))
