"""Slide decks of executed notebooks: reveal.js HTML written by nbconvert's ``SlidesExporter`` with the code hidden.

Every notebook cell carries ``metadata.slideshow.slide_type`` (JupyterLab: the property inspector, "Slide Type"):
``slide`` starts a new slide (left/right), ``subslide`` a new slide below it (up/down), ``fragment`` appears on
the next key press within the current one, ``skip`` is left out (imports, parameters, writing metrics.json) and
``-`` (or no metadata) continues the current one. A notebook without any slide metadata still converts: it becomes
one long, scrollable slide.

A markdown cell of type ``notes`` becomes the previous slide's speaker notes (``s`` opens the speaker view).

The deck works offline: it loads reveal.js (with its speaker-notes plugin) from the run folder's ``reveal.js/``,
plotly.js from ``plotly.min.js`` and MathJax from ``mathjax/``, all copied once per folder and named by relative
URLs (:mod:`idkl_lib.report.offline`, :mod:`idkl_lib.report.mathjax`); the figures are the notebook's interactive
plotly figures and a widget shows what it last drew. Without the ``sphinx-revealjs`` package the deck loads
reveal.js from a CDN and says so. The same metadata drives a live presentation in JupyterLab through the RISE
extension (``jupyterlab-rise``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nbformat

from idkl_lib.report.offline import deck_options
from idkl_lib.runs import SLIDES_SUFFIX
from idkl_lib.utils.io import atomic_write_text

__all__ = ["SLIDES_SUFFIX", "export_slides", "slides_path"]


def slides_path(executed: Path) -> Path:
    """Where the deck of the executed notebook ``executed`` (``<run_dir>/<step>.ipynb``) goes."""
    return executed.with_name(executed.stem + SLIDES_SUFFIX)


def export_slides(executed: str | Path, out_path: str | Path | None = None) -> Path | None:
    """Write the reveal.js deck of the notebook ``executed`` with the code cells' inputs hidden.

    papermill's injected-parameters cell is left out. Returns the deck's path, or None (with a warning naming the
    notebook and the cause) when the notebook cannot be converted, e.g. when every cell is ``skip``: a deck is an
    extra, it never fails a pipeline step.
    """
    from nbconvert import SlidesExporter

    executed = Path(executed)
    out = Path(out_path) if out_path is not None else slides_path(executed)
    try:
        nb = nbformat.read(str(executed), as_version=4)
        for cell in nb.cells:
            if "injected-parameters" in cell.metadata.get("tags", []):
                cell.metadata["slideshow"] = {"slide_type": "skip"}
        exporter = SlidesExporter(
            exclude_input=True,
            exclude_input_prompt=True,
            exclude_output_prompt=True,
            reveal_scroll=True,
            **deck_options(out.parent),
        )
        body, _ = exporter.from_notebook_node(nb)
    except Exception as exc:  # a broken deck must not hide the step's own result
        warnings.warn(f"could not export {executed} to slides: {type(exc).__name__}: {exc}", stacklevel=2)
        return None
    return atomic_write_text(out, body)
