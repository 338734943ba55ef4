"""``make venv`` installs the ``nbstripout`` git filter that ``.gitattributes`` names (its ``nbstripout`` target): in a
fresh clone, a notebook saved with outputs is committed without them; outside a git checkout the target does nothing
and succeeds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (shutil.which("git") and shutil.which("make")), reason="needs git and make")


def _env(home: Path) -> dict[str, str]:
    """No system or user git configuration: the clone has only what the Makefile installs."""
    return {
        **os.environ,
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }


def _run(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, env=env, check=True, capture_output=True, text=True)


def _make_filter(folder: Path, env: dict[str, str]) -> str:
    """``make nbstripout`` with this interpreter as the venv's Python (it has the dev dependencies)."""
    env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return _run(folder, env, "make", "--no-print-directory", "nbstripout", f"PY={sys.executable}").stdout


def _notebook_with_outputs(path: Path) -> None:
    cell = new_code_cell("print('hello')", execution_count=3)
    cell.outputs = [new_output("stream", name="stdout", text="hello\n")]
    nbformat.write(new_notebook(cells=[cell]), str(path))


def test_a_fresh_clone_commits_notebooks_without_outputs(tmp_path: Path) -> None:
    env = _env(tmp_path)
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    for name in ("Makefile", ".gitattributes"):
        shutil.copy(ROOT / name, origin / name)
    _run(origin, env, "git", "init", "-q")
    _run(origin, env, "git", "add", ".")
    _run(origin, env, "git", "commit", "-qm", "the project's Makefile and .gitattributes")
    _run(tmp_path, env, "git", "clone", "-q", str(origin), str(clone))  # a clone gets no filter configuration

    assert "nbstripout installed" in _make_filter(clone, env)
    assert (clone / ".gitattributes").read_text() == (ROOT / ".gitattributes").read_text(), "left unchanged"
    _notebook_with_outputs(clone / "saved.ipynb")
    _run(clone, env, "git", "add", "saved.ipynb")
    _run(clone, env, "git", "commit", "-qm", "a notebook saved with outputs")
    committed = nbformat.reads(_run(clone, env, "git", "show", "HEAD:saved.ipynb").stdout, as_version=4)
    (cell,) = committed.cells
    assert cell.source == "print('hello')" and cell.outputs == [] and cell.execution_count is None
    (kept,) = nbformat.read(str(clone / "saved.ipynb"), as_version=4).cells
    assert kept.outputs and kept.execution_count == 3, "the working copy keeps its outputs"
    assert "nbstripout installed" in _make_filter(clone, env), "running it again is harmless"


def test_outside_a_git_checkout_there_is_nothing_to_install(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    assert "not a git checkout" in _make_filter(tmp_path, _env(tmp_path))
