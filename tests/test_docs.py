"""The documentation is true to the code: every command in README.md, docs/*.md (and docs/*/README.md),
benchmarks/README.md and reports/README.md still exists and accepts the options it is shown with, and every
repository path and ``idkl_lib.`` name they put in backticks exists.

Commands are the lines of ``bash`` code blocks (continuation lines joined, comments dropped) and backticked spans
that start with ``python -m``, ``.venv/bin/python -m``, ``torchrun`` or ``make``. A ``python -m MODULE`` command is
checked against ``python -m MODULE --help`` (run once per module): the module must exist and list every ``--option``
the command uses. A ``make TARGET`` command is checked with ``make -n TARGET``.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "benchmarks" / "README.md", ROOT / "reports" / "README.md",
               *(ROOT / "docs").glob("*.md"), *(ROOT / "docs").glob("*/README.md")])  # fmt: skip

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
BACKTICK = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
COMMAND_START = re.compile(r"^(?:\.venv/bin/)?(?:python3?|torchrun|make)\b")
MODULE_ARG = re.compile(r"(?:^|\s)-m\s+([\w.<>]+)")
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
REPO_PATH = re.compile(
    r"^(?:idkl_lib|docs|notebooks|experiments|benchmarks|tests)/[\w./+-]*$"
    r"|^(?:README\.md|Makefile|pyproject\.toml|environment\.yml|reports/README\.md)$"
)
GENERATED = ("benchmarks/results/",)  # written by runs, not committed
DOTTED_NAME = re.compile(r"^idkl_lib(?:\.\w+)+$")
KNOWN_MISSING: dict[str, set[str]] = {}
"""Paths a page may name although they do not exist yet (none today)."""


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code_blocks(text: str) -> list[tuple[str, str]]:
    return [(m[1], m[2]) for m in FENCE.finditer(text)]


def _without_code_blocks(text: str) -> str:
    return FENCE.sub("", text)


def commands(path: Path) -> list[str]:
    """The shell commands a page shows (module docstring)."""
    text = _text(path)
    found = []
    for lang, body in _code_blocks(text):
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip().removeprefix("$ ")
            if COMMAND_START.match(line):
                found.append(line)
    for span in BACKTICK.findall(_without_code_blocks(text)):
        if COMMAND_START.match(span) and (" -m " in span or span.startswith("make ")):
            found.append(span)
    return found


def paths_and_names(path: Path) -> tuple[list[str], list[str]]:
    """The backticked repository paths and ``idkl_lib.`` dotted names of a page (outside code blocks)."""
    repo_paths, names = [], []
    for span in BACKTICK.findall(_without_code_blocks(_text(path))):
        span = span.strip().split("#")[0]
        if REPO_PATH.match(span) and not span.startswith(GENERATED) and "..." not in span:
            repo_paths.append(span.rstrip("/") or span)
        elif DOTTED_NAME.match(span):
            names.append(span)
    return repo_paths, names


_HELP_SCRIPT = """
import contextlib, io, json, runpy, sys
out = {}
for module in sys.argv[1:]:
    buffer, code = io.StringIO(), 0
    sys.argv = [module, "--help"]
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # an import error: the module is gone
        code, _ = 1, buffer.write(f"{type(exc).__name__}: {exc}")
    out[module] = [code, buffer.getvalue()]
sys.stdout = sys.__stdout__
print(json.dumps(out))
"""


def _our_module(module: str) -> bool:
    """A module of this repository named in full (not another tool's, not a placeholder such as ``benchmarks.<name>``
    or ``idkl_lib...``)."""
    return module.startswith(("idkl_lib.", "benchmarks.")) and re.fullmatch(r"\w+(\.\w+)+", module) is not None


@functools.cache
def _all_help() -> dict[str, list]:
    """``--help`` of every module the pages name, in one interpreter (one torch import): module -> [exit, text]."""
    modules = sorted(
        {m[1] for page in DOCS for c in commands(page) if (m := MODULE_ARG.search(c)) and _our_module(m[1])}
    )
    done = subprocess.run([sys.executable, "-c", _HELP_SCRIPT, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@functools.cache
def help_text(module: str) -> str:
    """``python -m MODULE --help`` (a module that does not exist fails here)."""
    code, text = _all_help()[module] if module in _all_help() else _help_of_one(module)
    assert code == 0, f"`python -m {module} --help` failed:\n{text[-1500:]}"
    return str(text)


def _help_of_one(module: str) -> list:
    done = subprocess.run([sys.executable, "-c", _HELP_SCRIPT, module], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])[module]


def _options_used(tokens: list[str]) -> list[str]:
    return [m for token in tokens for m in OPTION.findall(token.split("=")[0]) if token.startswith("--")]


def check_command(command: str) -> list[str]:
    """The problems of one documented command: a missing module or make target, an option its --help lacks."""
    try:
        tokens = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    except ValueError as exc:
        return [f"{command!r} does not parse as a shell command ({exc})"]
    if tokens[0] == "make":
        targets = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t]
        variables = [t for t in tokens[1:] if "=" in t]
        if shutil.which("make") is None:
            pytest.skip("make is not installed")
        problems = []
        for target in targets or [""]:
            done = subprocess.run(["make", "-n", *([target] if target else []), *variables], cwd=ROOT,
                                  capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            if done.returncode != 0:
                problems.append(f"{command!r}: `make -n {target}` fails: {done.stderr.strip()[:300]}")
        return problems
    match = MODULE_ARG.search(" ".join(tokens))
    if match is None:
        return []  # an interpreter call without -m
    module = match[1]
    if not _our_module(module):
        return []  # another tool (venv, pip, ipykernel) or a placeholder
    helptext = help_text(module)
    listed = set(OPTION.findall(helptext))
    after = tokens[tokens.index(module) + 1 :]
    return [
        f"{command!r}: `python -m {module}` has no option {opt} (its --help lists {sorted(listed)})"
        for opt in _options_used(after)
        if opt not in listed
    ]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_documented_command_exists_and_accepts_its_options(page: Path) -> None:
    problems = [problem for command in commands(page) for problem in check_command(command)]
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_backticked_path_and_name_exists(page: Path) -> None:
    repo_paths, names = paths_and_names(page)
    known = KNOWN_MISSING.get(str(page.relative_to(ROOT)), set())
    assert all(not (ROOT / p).exists() and p in repo_paths for p in known), f"remove {known} from KNOWN_MISSING"
    missing = [p for p in repo_paths if not (ROOT / p).exists() and p not in known]
    unknown = [n for n in names if not _resolves(n)]
    assert not missing and not unknown, (
        f"{page.relative_to(ROOT)}: paths that do not exist {missing}; names that do not resolve {unknown}"
    )


def _resolves(dotted: str) -> bool:
    """Whether ``idkl_lib.a.b.c`` is a module, or an attribute of the longest importable module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_checker_finds_a_removed_command_a_wrong_option_and_a_missing_path(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `python -m idkl_lib.experiments.compare reports/x --baseline full --no-such-option`.\n\n"
        "```bash\npython -m idkl_lib.no_such_module --run-dir x\nmake no-such-target\n```\n\n"
        "See `idkl_lib/no_such_file.py`, `docs/method.md` and `idkl_lib.experiments.compare.no_such_name`.\n"
    )
    found = commands(page)
    assert found == [
        "python -m idkl_lib.no_such_module --run-dir x",
        "make no-such-target",
        "python -m idkl_lib.experiments.compare reports/x --baseline full --no-such-option",
    ]
    with pytest.raises(AssertionError, match="no_such_module --help` failed"):
        check_command(found[0])
    assert "fails" in check_command(found[1])[0]
    problems = check_command(found[2])
    assert len(problems) == 1 and "has no option --no-such-option" in problems[0]
    repo_paths, names = paths_and_names(page)
    assert repo_paths == ["idkl_lib/no_such_file.py", "docs/method.md"]
    assert [n for n in names if not _resolves(n)] == ["idkl_lib.experiments.compare.no_such_name"]
