"""The package's structure holds: no import loops, the core packages import nothing from the outer layer, only
``runs/`` spells a run folder's file names, and every command follows one command-line convention.

The import graph is read from the source (``ast``), imports inside functions included, so a loop hidden in a lazy
import is found too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from idkl_lib import runs

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "idkl_lib"

CORE = ("config", "data", "models", "losses", "eval", "viz", "utils", "testing", "checkpoint", "distances")
"""The layers below the outer one (and the two shared leaves): they import nothing from :data:`OUTER`."""
OUTER = (
    "train",
    "runs",
    "notebook",
    "pipeline",
    "report",
    "experiments",
    "workbench",
    "features",
    "search",
    "export",
    "pretrain",
)

COMMANDS = {
    "idkl_lib.train": "idkl-train",
    "idkl_lib.pipeline": "idkl-pipeline",
    "idkl_lib.experiments.sweep": "idkl-sweep",
    "idkl_lib.experiments.compare": "idkl-compare",
    "idkl_lib.experiments.term_analysis": "idkl-term-analysis",
    "idkl_lib.experiments.views": "idkl-views",
    "idkl_lib.features": "idkl-features",
    "idkl_lib.search": "idkl-search",
    "idkl_lib.export": "idkl-export",
    "idkl_lib.pretrain": "idkl-pretrain",
}
"""Every command: ``python -m MODULE`` and its console script."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__main__.py"}


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The package's modules that ``name`` imports (at any depth of its code), each resolved to a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from idkl_lib.runs import layout" imports a module; "from idkl_lib.runs import X" its package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # "idkl_lib.data.records.Sample" -> its module
                target = target.rpartition(".")[0]
            if target.startswith("idkl_lib") and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(name, path, known)) for name, path in found.items()}


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (the modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_and_the_graph_reader_sees_lazy_imports(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    lazy = tmp_path / "mod.py"
    lazy.write_text("def f():\n    from idkl_lib.train.loop import train\n    from .. import workbench\n")
    known = {"idkl_lib.train.loop", "idkl_lib.workbench", "idkl_lib.report.mod"}
    assert set(imported("idkl_lib.report.mod", lazy, known)) == {"idkl_lib.train.loop", "idkl_lib.workbench"}


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_packages_import_each_other_in_one_direction() -> None:
    packages: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        packages.setdefault(layer(name), set()).update(layer(t) for t in targets if layer(t) not in ("", layer(name)))
    cycle = find_cycle(packages)
    assert cycle is None, "package cycle: " + " -> ".join(cycle or [])


def test_the_core_imports_nothing_from_the_outer_layer() -> None:
    upward = [
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if layer(name) in CORE
        for target in targets
        if layer(target) in OUTER
    ]
    assert not upward, upward


def test_few_modules_at_the_top_of_the_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert top == ["checkpoint.py", "distances.py", "workbench.py"], top


def string_literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """The string constants of a module's code, documentation left out: docstrings and the bare strings that
    document an attribute (they describe the layout for a reader)."""
    documentation = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation:
            yield node.lineno, node.value


RUN_FOLDER_NAMES = sorted(
    node.value.value
    for node in ast.parse((PACKAGE / "runs" / "layout.py").read_text(encoding="utf-8")).body
    if isinstance(node, ast.Assign)
    and isinstance(node.value, ast.Constant)
    and isinstance(node.value.value, str)
    and any(getattr(target, "id", "").endswith(("_NAME", "_STEP", "_CSV", "_JSON")) for target in node.targets)
)
"""The file and step names that ``runs/layout.py`` owns (written there as literals)."""


def test_the_layout_names_are_collected() -> None:
    assert {"metrics.json", "params.json", "status.json", "history.json", "run.json", "checkpoint.pth"} <= set(
        RUN_FOLDER_NAMES
    )
    assert {"02_train", "03_evaluate", "sweep.json", "results.json"} <= set(RUN_FOLDER_NAMES)


def test_no_module_outside_runs_spells_a_run_folder_file_name() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "runs":
            continue
        for line, text in string_literals(ast.parse(path.read_text(encoding="utf-8"))):
            hits = [name for name in RUN_FOLDER_NAMES if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text)]
            if hits:
                found.append(f"{path.relative_to(ROOT)}:{line}: {text!r} spells {hits}")
    assert not found, "use the constants and readers of idkl_lib.runs:\n" + "\n".join(found)


def test_every_command_is_a_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    for module, script in COMMANDS.items():
        target = scripts.get(script, "")
        assert target.split(":")[0] in (module, f"{module}.cli"), f"[project.scripts] {script} = {target!r}"


RUNNER = """
import contextlib, importlib, io, json, sys, tomllib
scripts = tomllib.load(open("pyproject.toml", "rb"))["project"]["scripts"]
results = []
for script, args in json.loads(sys.argv[1]):
    module, _, function = scripts[script].partition(":")
    main = getattr(importlib.import_module(module), function)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print(json.dumps(results))
"""
"""Runs each command's console-script entry point on its arguments in one fresh process (one import of torch for
all of them, not one per call), as the command line would: its exit status and what it printed."""


def run_commands(calls: list[tuple[str, list[str]]]) -> list[dict]:
    """Each ``(module, args)`` through its command's entry point; ``[{"code", "stdout", "stderr"}]``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    scripted = [(COMMANDS[module], args) for module, args in calls]
    done = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(scripted)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_command_module_runs_as_python_dash_m() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "idkl_lib.pipeline", "--run-dir", "x", "--presett", "ci"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "python -m idkl_lib.pipeline: error: unknown option --presett: did you mean --preset? "
        "(python -m idkl_lib.pipeline --help lists the options)"
    ]


BAD_INPUT = {
    "idkl_lib.train": [
        (["--learning-rate", "0.1"], "--learning-rate: did you mean --lr?"),
        (["--data-root", "/nonexistent/sysu", "--epochs", "1"], "/nonexistent/sysu"),
        (["--epochs", "many"], "--epochs"),
    ],
    "idkl_lib.pipeline": [
        (["--run-dir", "x", "--presett", "ci"], "did you mean --preset?"),
        (["--run-dir", "x", "--notebooks-dir", "/nonexistent/notebooks"], "/nonexistent/notebooks"),
        (["--run-dir", "x", "-p", "epochs", "[1,"], "epochs"),
    ],
    "idkl_lib.experiments.sweep": [
        (["--run-dir", "x", "--sweeps", "seed=0"], "did you mean --sweep?"),
        (["--run-dir", "x", "--experiment", "/nonexistent/e.yaml"], "/nonexistent/e.yaml"),
        (["--run-dir", "x", "--sweep", "seed"], "NAME=V1,V2"),
    ],
    "idkl_lib.experiments.compare": [
        (["x", "--basline", "b"], "did you mean --baseline?"),
        (["/nonexistent/sweep"], "/nonexistent/sweep"),
    ],
    "idkl_lib.experiments.term_analysis": [
        (["--sweep-dir", "x", "--batchs", "2"], "did you mean --batches?"),
        (["--sweep-dir", "/nonexistent/sweep"], "/nonexistent/sweep"),
        (["--sweep-dir", "x", "--batches", "two"], "--batches"),
    ],
    "idkl_lib.experiments.views": [
        (["x", "--idkl", "full", "--out", "o", "--basline", "b"], "did you mean --baseline?"),
        (["/nonexistent/sweep", "--idkl", "full", "--out", "o"], "/nonexistent/sweep"),
    ],
    "idkl_lib.features": [
        (
            ["--checkpoint", "c.pth", "--images", "x", "--out", "f.npz", "--bach-size", "2"],
            "did you mean --batch-size?",
        ),
        (["--checkpoint", "/nonexistent/c.pth", "--images", "/nonexistent/im", "--out", "f.npz"], "/nonexistent/"),
    ],
    "idkl_lib.search": [
        (["--gallery", "g.npz", "--query", "q.png", "--top-k", "3"], "did you mean --topk?"),
        (["--gallery", "/nonexistent/g.npz", "--query", "q.png"], "/nonexistent/g.npz"),
    ],
    "idkl_lib.export": [
        (["--checkpoint", "c.pth", "--onx", "m.onnx"], "did you mean --onnx?"),
        (["--checkpoint", "/nonexistent/c.pth", "--onnx", "m.onnx"], "/nonexistent/c.pth"),
    ],
    "idkl_lib.pretrain": [
        (["--epohcs", "2"], "did you mean --epochs?"),
        (["--first-pid", "5"], "1000000"),
        (["--ids", "many"], "--ids"),
    ],
}


@pytest.fixture(scope="module")
def answers() -> dict[str, list[dict]]:
    """Every command's answers to its bad inputs and to ``--help``, from one process."""
    calls = [(module, args) for module in sorted(BAD_INPUT) for args, _ in BAD_INPUT[module]]
    calls += [(module, ["--help"]) for module in sorted(COMMANDS)]
    results = iter(run_commands(calls))
    found: dict[str, list[dict]] = {}
    for module, _ in calls:
        found.setdefault(module, []).append(next(results))
    return found


@pytest.mark.parametrize("module", sorted(BAD_INPUT))
def test_every_command_answers_bad_input_with_one_line_and_exit_2(module: str, answers: dict[str, list[dict]]) -> None:
    for (args, expected), result in zip(BAD_INPUT[module], answers[module], strict=False):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2, (args, result["code"], result["stderr"][-2000:])
        assert len(lines) == 1 and expected in lines[0], (args, result["stderr"])
        assert lines[0].startswith(f"python -m {module}: error: "), lines[0]
        assert "Traceback" not in result["stderr"]


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_every_command_has_help_and_debug(module: str, answers: dict[str, list[dict]]) -> None:
    result = answers[module][-1]
    assert result["code"] == 0 and "--debug" in result["stdout"], result["stderr"]


def test_a_corrupt_metrics_file_gives_one_message_whichever_command_reads_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.METRICS_NAME).write_text('{"02_train": {', encoding="utf-8")
    (run_dir / runs.PARAMS_NAME).write_text("{}", encoding="utf-8")
    with pytest.raises(runs.RunFileError) as caught:
        runs.read_metrics(run_dir)
    message = str(caught.value)
    assert str(run_dir / runs.METRICS_NAME) in message and "rerun the step that writes it" in message
    sweep = tmp_path / "sweep"
    (sweep / "cell").mkdir(parents=True)
    (sweep / "cell" / runs.METRICS_NAME).write_text("[1, 2", encoding="utf-8")
    (sweep / runs.SWEEP_NAME).write_text('{"cells": {"cell": {"state": "done"}}, "order": ["cell"]}', encoding="utf-8")
    direct, swept = run_commands(
        [("idkl_lib.experiments.compare", [str(run_dir)]), ("idkl_lib.experiments.compare", [str(sweep)])]
    )
    assert direct["code"] == 2 and direct["stderr"].strip().endswith(message), direct["stderr"]
    assert swept["code"] == 2 and "cell/metrics.json cannot be read" in swept["stderr"]
    assert "rerun the step that writes it" in swept["stderr"]
    with pytest.warns(UserWarning, match="rerun the step that writes it"):
        assert runs.read_metrics(run_dir, on_error="warn") is None
    assert runs.read_metrics(run_dir, on_error="ignore") is None
    assert runs.read_metrics(tmp_path / "missing") is None
