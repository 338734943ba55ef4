"""The tables of ``docs/results.md``, printed from committed result files and checked against the page.

A sweep's cell folders hold checkpoints and are not committed; what a table needs is small: per finished cell its
training parameters, seed, the retrieval metrics of one protocol and the training time. ``--export`` writes that
from a sweep folder into ``docs/results/<name>/results.json``; ``docs/results/tables.yaml`` says which tables are
made from which of those files; ``docs/results.md`` marks each such table::

    <!-- table: NAME -->
    ...the table, as this command prints it...
    <!-- /table -->

Commands::

    python -m idkl_lib.experiments.results_doc --export reports/ablation-demo --name ablation-demo
    python -m idkl_lib.experiments.results_doc            # print every table of tables.yaml
    python -m idkl_lib.experiments.results_doc --check    # exit 1 when a marked table differs from its data
    python -m idkl_lib.experiments.results_doc --write    # rewrite the marked tables in place

``tables.yaml``: one entry per table name::

    ablation-demo:
      sweeps: [ablation-demo]         # folders under docs/results/, their runs pooled in this order
      show: [summary, paired]         # parts, in order: summary, paired (vs the baseline), gap (needs by);
                                      # or [views]: notebooks 04/05 over seeds, from <folder>/views.json
      baseline: ""                    # configuration label to compare with (default: the baseline preset)
      protocol: ""                    # protocol setting (default: single-shot all-search)
      by: ""                          # compare's --by, for the gap part
      by_default: null                # compare's --by-default
      configs: []                     # keep only these configuration labels, in this order (default: all)

The tables are exactly :func:`~idkl_lib.experiments.compare.markdown_tables` /
:func:`~idkl_lib.experiments.compare.gap_change_table` of those runs, i.e. what ``python -m
idkl_lib.experiments.compare`` prints for the sweep folders. A ``views`` table is
:func:`~idkl_lib.experiments.views.views_table` of a ``views.json`` (``--export`` copies it from the ``--out`` folder
of ``python -m idkl_lib.experiments.views``), i.e. what that command prints.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from idkl_lib.experiments.compare import Run, _label, gap_change_table, load_runs, markdown_tables
from idkl_lib.experiments.views import VIEWS_NAME, read_views, views_table
from idkl_lib.runs import RESULTS_JSON, is_sweep, read_json
from idkl_lib.utils.errors import CommandParser, run_command
from idkl_lib.utils.io import atomic_write_json, atomic_write_text

__all__ = [
    "PARTS",
    "check_doc",
    "export_sweep",
    "load_result_runs",
    "load_tables",
    "marked_tables",
    "render_table",
    "render_tables",
    "replace_tables",
]

RESULTS_DIR = Path("docs/results")
DOC = Path("docs/results.md")
TABLES_NAME = "tables.yaml"
RESULTS_NAME = RESULTS_JSON
PARTS = ("summary", "paired", "gap", "views")
MACHINE_PARAMS = ("run_dir", "step_dir")
"""Parameters that name folders of the machine the sweep ran on: left out of the committed results."""
TABLE_KEYS = ("sweeps", "show", "baseline", "protocol", "by", "by_default", "configs")
_SCHEMA = 1
_MARKER = re.compile(r"^<!-- table: (?P<name>[\w.+@-]+) -->\n(?P<body>.*?)^<!-- /table -->", re.S | re.M)


def export_sweep(sweep_dir: str | Path, out_dir: str | Path, protocol: str = "") -> Path:
    """Write ``<out_dir>/results.json``: the finished cells of ``sweep_dir`` (parameters, seed, metrics of one
    protocol, training time), no checkpoints; returns the file. From the ``--out`` folder of
    :mod:`idkl_lib.experiments.views`: its ``views.json``, as it is (it names no folder of the machine)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep folder {sweep_dir} does not exist")
    if (sweep_dir / VIEWS_NAME).is_file():
        return atomic_write_json(Path(out_dir) / VIEWS_NAME, read_views(sweep_dir))
    sweep = is_sweep(sweep_dir)
    runs, chosen = load_runs(sweep_dir if sweep else None, runs=() if sweep else [sweep_dir], protocol=protocol)
    cells = [
        {
            "cell": run.path.name,
            "seed": run.seed,
            "params": {k: v for k, v in run.params.items() if k not in MACHINE_PARAMS},
            "metrics": run.metrics,
            "train_time_s": run.train_time_s,
        }
        for run in runs
    ]
    data = {
        "schema": _SCHEMA,
        "source": sweep_dir.name,
        "exported": time.strftime("%Y-%m-%d"),
        "protocol": chosen,
        "runs": cells,
    }
    return atomic_write_json(Path(out_dir) / RESULTS_NAME, data)


def load_result_runs(folder: str | Path) -> tuple[list[Run], str]:
    """The runs of an exported ``<folder>/results.json`` as :class:`~idkl_lib.experiments.compare.Run` objects
    (no CMC curves or loss histories) and their protocol."""
    path = Path(folder) / RESULTS_NAME
    data = read_json(path, expected=dict)
    if data is None:
        raise FileNotFoundError(f"{path} does not exist; write it with --export SWEEP_DIR --name {Path(folder).name}")
    if data.get("schema") != _SCHEMA or not isinstance(data.get("runs"), list):
        raise ValueError(f"{path} is not a results file of schema {_SCHEMA} (keys schema, protocol, runs)")
    runs = [
        Run(
            Path(folder) / cell["cell"],
            dict(cell["params"]),
            cell["seed"],
            dict(cell["metrics"]),
            [],
            [],
            cell["train_time_s"],
        )
        for cell in data["runs"]
    ]
    return runs, str(data.get("protocol", ""))


def load_tables(results_dir: str | Path = RESULTS_DIR) -> dict[str, dict[str, Any]]:
    """``<results_dir>/tables.yaml``: table name -> its spec (module docstring); {} when the file is missing."""
    path = Path(results_dir) / TABLES_NAME
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must map table names to their specs")
    for name, spec in data.items():
        if not isinstance(spec, dict) or not spec.get("sweeps"):
            raise ValueError(f"{path}: table {name!r} needs 'sweeps: [folder, ...]'")
        unknown = sorted(set(spec) - set(TABLE_KEYS))
        if unknown:
            raise ValueError(f"{path}: table {name!r} has unknown key(s) {unknown}; keys: {', '.join(TABLE_KEYS)}")
        bad = sorted(set(spec.get("show", PARTS[:2])) - set(PARTS))
        if bad:
            raise ValueError(f"{path}: table {name!r} shows unknown part(s) {bad}; parts: {', '.join(PARTS)}")
        if "gap" in spec.get("show", ()) and not spec.get("by"):
            raise ValueError(f"{path}: table {name!r} shows 'gap' but names no 'by' parameter")
        if "views" in spec.get("show", ()) and list(spec["show"]) != ["views"]:
            raise ValueError(
                f"{path}: table {name!r}: 'views' (from {VIEWS_NAME}) is shown alone, in a table of its own"
            )
    return data


def render_table(spec: Mapping[str, Any], results_dir: str | Path = RESULTS_DIR) -> str:
    """One table (or several parts of one comparison) as Markdown, from the committed results files."""
    if list(spec.get("show") or ()) == ["views"]:
        return "\n".join(views_table(read_views(Path(results_dir) / folder)) for folder in spec["sweeps"])
    runs: list[Run] = []
    protocols = set()
    for sweep in spec["sweeps"]:
        loaded, protocol = load_result_runs(Path(results_dir) / sweep)
        runs += loaded
        protocols.add(protocol)
    if spec.get("protocol") and protocols != {spec["protocol"]}:
        raise ValueError(f"sweeps {spec['sweeps']} hold protocol(s) {sorted(protocols)}, not {spec['protocol']!r}")
    by, by_default = spec.get("by") or "", spec.get("by_default")
    if by and by_default is not None:
        for run in runs:
            for name in by.split(","):
                run.params.setdefault(name.strip(), by_default)
    _label(runs)
    if spec.get("configs"):
        order = list(spec["configs"])
        missing = sorted(set(order) - {r.config for r in runs})
        if missing:
            raise ValueError(f"sweeps {spec['sweeps']} have no configuration(s) {missing}")
        runs = sorted((r for r in runs if r.config in order), key=lambda r: order.index(r.config))
    baseline = spec.get("baseline") or ""
    parts: list[str] = []
    show = list(spec.get("show") or PARTS[:2])
    if "summary" in show or "paired" in show:
        summary, paired = markdown_tables(runs, baseline).split("\n\n")
        parts += [text.strip() + "\n" for part, text in (("summary", summary), ("paired", paired)) if part in show]
    if "gap" in show:
        parts.append(gap_change_table(runs, by, baseline))
    return "\n".join(parts)


def render_tables(results_dir: str | Path = RESULTS_DIR) -> dict[str, str]:
    """Every table of ``tables.yaml``: name -> Markdown."""
    return {name: render_table(spec, results_dir) for name, spec in load_tables(results_dir).items()}


def marked_tables(text: str) -> dict[str, str]:
    """The generated tables a page holds: marker name -> the text between ``<!-- table: NAME -->`` and
    ``<!-- /table -->``."""
    found: dict[str, str] = {}
    for match in _MARKER.finditer(text):
        if match["name"] in found:
            raise ValueError(f"table {match['name']!r} is marked twice")
        found[match["name"]] = match["body"]
    return found


def replace_tables(text: str, tables: Mapping[str, str]) -> str:
    """``text`` with every marked table replaced by ``tables[name]`` (a marker without a table is an error)."""

    def body(match: re.Match[str]) -> str:
        if match["name"] not in tables:
            raise ValueError(f"the page marks table {match['name']!r}, which {TABLES_NAME} does not define")
        return f"<!-- table: {match['name']} -->\n{tables[match['name']]}<!-- /table -->"

    return _MARKER.sub(body, text)


def check_doc(doc: str | Path = DOC, results_dir: str | Path = RESULTS_DIR) -> list[str]:
    """The problems of ``doc``'s generated tables: a marker no spec defines, a spec no marker uses, a table whose
    text differs from what its data gives (with a diff). Empty when the page is up to date."""
    text = Path(doc).read_text(encoding="utf-8")
    marked = marked_tables(text)
    specs = load_tables(results_dir)
    problems = [f"{doc}: table {n!r} is marked but {TABLES_NAME} does not define it" for n in marked if n not in specs]
    problems += [f"{doc}: table {n!r} of {TABLES_NAME} is not marked in the page" for n in specs if n not in marked]
    for name in (n for n in marked if n in specs):
        want = render_table(specs[name], results_dir)
        if marked[name] != want:
            diff = difflib.unified_diff(marked[name].splitlines(), want.splitlines(), "page", "data", lineterm="")
            problems.append(f"{doc}: table {name!r} differs from its data:\n" + "\n".join(diff))
    return problems


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="python -m idkl_lib.experiments.results_doc",
        description="Print the tables of docs/results.md from the committed result files (docs/results/), "
        "check or rewrite the page, or export a sweep's results.",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="committed results (docs/results)")
    parser.add_argument("--doc", type=Path, default=DOC, help="the page with the marked tables (docs/results.md)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 when a marked table differs from its data")
    mode.add_argument("--write", action="store_true", help="rewrite the marked tables of the page in place")
    mode.add_argument("--export", type=Path, metavar="SWEEP_DIR", help="write a sweep's results under --results-dir")
    parser.add_argument("--name", default="", help="with --export: the folder name (default: the sweep's)")
    parser.add_argument("--protocol", default="", help="with --export: protocol setting (default: single-shot)")
    parser.add_argument("tables", nargs="*", metavar="NAME", help="print only these tables")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: 0, 1 (``--check`` found differences) or 2 (bad input, one line)."""
    return run_command(_parser(), _command, argv)


def _command(args: argparse.Namespace) -> int:
    if args.export is not None:
        path = export_sweep(args.export, args.results_dir / (args.name or args.export.name), args.protocol)
        print(f"wrote {path}; add a table using it to {args.results_dir / TABLES_NAME}")
        return 0
    if args.check:
        problems = check_doc(args.doc, args.results_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    tables = render_tables(args.results_dir)
    if args.write:
        text = args.doc.read_text(encoding="utf-8")
        atomic_write_text(args.doc, replace_tables(text, tables))
        print(f"rewrote {len(marked_tables(text))} table(s) of {args.doc}")
        return 0
    unknown = sorted(set(args.tables) - set(tables))
    if unknown:
        raise ValueError(f"no table(s) {unknown} in {args.results_dir / TABLES_NAME}; tables: {sorted(tables)}")
    if not tables:
        print(f"no tables defined in {args.results_dir / TABLES_NAME}", file=sys.stderr)
    for name, table in tables.items():
        if not args.tables or name in args.tables:
            print(f"<!-- table: {name} -->\n{table}<!-- /table -->\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
