"""Notebook HTML pages load MathJax from the run folder (copied once from jupyter-server-mathjax), not from a CDN."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from idkl_lib.report import mathjax as offline_html
from idkl_lib.report.mathjax import MATHJAX_CONFIG, MATHJAX_DIR, local_mathjax, nbconvert_options
from idkl_lib.report.slides import export_slides


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("The loss $\\mathcal{L}_{ip} = \\sum_i x_i^2$ and\n\n$$a^2 + b^2 = c^2$$"),
        nbformat.v4.new_code_cell("1 + 1", metadata={"slideshow": {"slide_type": "slide"}}),
    ]
    nbformat.write(nb, path)
    return path


def test_html_export_points_at_the_local_mathjax(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "01_step.ipynb")
    body, _ = HTMLExporter(**nbconvert_options(tmp_path)).from_filename(str(nb))
    src = f'src="{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"'
    assert src in body and "cdnjs.cloudflare.com/ajax/libs/mathjax" not in body
    assert "\\mathcal{L}_{ip}" in body  # the equation source is there for MathJax to typeset
    local = tmp_path / MATHJAX_DIR
    assert (local / "MathJax.js").stat().st_size > 10_000
    for name in MATHJAX_CONFIG.split(","):  # every configuration file the URL names is there
        assert (local / "config" / f"{name}.js").is_file(), name
    assert "STIX-Web" in (local / "config" / "local" / "idkl.js").read_text()  # the web font the package ships
    assert (local / "jax" / "output" / "HTML-CSS").is_dir() and (local / "fonts" / "HTML-CSS").is_dir()
    assert not list(tmp_path.glob(f".{MATHJAX_DIR}.*")), "no temporary copy left behind"


def test_slides_use_the_same_local_mathjax(tmp_path: Path) -> None:
    deck = export_slides(_notebook(tmp_path / "02_step.ipynb"))
    assert deck is not None and f'src="{MATHJAX_DIR}/MathJax.js?config=' in deck.read_text()
    assert (tmp_path / MATHJAX_DIR / "MathJax.js").is_file()


def test_mathjax_is_copied_once_and_a_stale_copy_is_replaced(tmp_path: Path) -> None:
    url = local_mathjax(tmp_path)
    main = tmp_path / MATHJAX_DIR / "MathJax.js"
    stamp = main.stat().st_mtime_ns
    assert local_mathjax(tmp_path) == url and main.stat().st_mtime_ns == stamp  # complete copy: kept
    (tmp_path / MATHJAX_DIR / ".version").write_text("0.0.1")  # an older package's copy
    (tmp_path / MATHJAX_DIR / "stale.js").write_text("old")
    assert local_mathjax(tmp_path) == url
    assert not (tmp_path / MATHJAX_DIR / "stale.js").exists() and main.is_file()


def test_without_the_package_nbconvert_keeps_its_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_html, "_mathjax_source", lambda: None)
    assert nbconvert_options(tmp_path) == {} and local_mathjax(tmp_path) is None
    assert not (tmp_path / MATHJAX_DIR).exists()
