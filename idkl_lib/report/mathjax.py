"""Notebook HTML pages that render their equations offline: a local MathJax for nbconvert.

nbconvert's HTML and slide exporters load MathJax from a CDN, so offline the equations show as raw LaTeX. MathJax 2
(the version nbconvert's templates configure) is installed with the ``jupyter-server-mathjax`` package; it is copied
once into ``<folder>/mathjax/`` (about 12 MB, written to a temporary sibling and renamed into place, completed by a
version file) and the pages point at it by a relative URL, so the run folder keeps working when moved or copied.

reveal.js for the slide decks, plotly.js for the figures and the pages' stand-ins for widget snapshots come from
:mod:`idkl_lib.report.offline`, which uses the same copy (:func:`copy_once`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from idkl_lib.runs import MATHJAX_DIR

__all__ = ["MATHJAX_CONFIG", "MATHJAX_DIR", "copy_once", "local_mathjax", "nbconvert_options"]

MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe,local/idkl"
"""The configuration the package ships (TeX and MathML input, HTML-CSS output; ``Safe`` as nbconvert's) and ours."""
_PACKAGE = "jupyter-server-mathjax"
_VERSION_FILE = ".version"
_LOCAL_CONFIG = "config/local/idkl.js"
# The package ships only the STIX-Web web fonts (MathJax's default web font, TeX, is left out): use them, as the
# classic Jupyter notebook did; otherwise \mathcal and friends fall back to plain letters.
_LOCAL_CONFIG_JS = """MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web",
  imageFont: null}});
MathJax.Ajax.loadComplete("[MathJax]/config/local/idkl.js");
"""


def _mathjax_source() -> tuple[Path, str] | None:
    """The installed MathJax 2 folder and the copy's version (package version, hash of our configuration), or None
    when the package is missing."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    static = Path(jupyter_server_mathjax.__file__).resolve().parent / "static"
    if not (static / "MathJax.js").is_file():
        return None
    digest = hashlib.sha256(_LOCAL_CONFIG_JS.encode()).hexdigest()[:12]
    return static, f"{importlib.metadata.version(_PACKAGE)} {digest}"


def local_mathjax(folder: str | Path) -> str | None:
    """Copy MathJax into ``<folder>/mathjax/`` unless that copy is complete, and return its URL relative to
    ``folder`` (for HTML pages written in ``folder``); None when ``jupyter-server-mathjax`` is not installed."""
    source = _mathjax_source()
    if source is None:
        return None
    static, version = source

    def fill(staging: Path) -> None:
        shutil.copytree(static, staging, dirs_exist_ok=True)
        (staging / _LOCAL_CONFIG).parent.mkdir(parents=True, exist_ok=True)
        (staging / _LOCAL_CONFIG).write_text(_LOCAL_CONFIG_JS)

    copy_once(Path(folder) / MATHJAX_DIR, version, fill, "MathJax.js")
    return f"{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def copy_once(target: Path, version: str, fill: Callable[[Path], None], main_file: str) -> bool:
    """Make ``target`` a complete copy of ``version`` unless it already is one; True when it was (re)written.

    ``fill(staging)`` writes the files into a temporary sibling folder, which is completed by a version file and
    renamed into place, so an interrupted copy is never taken for a complete one; ``main_file`` (relative to
    ``target``) must exist in a complete copy. An older version's copy is replaced. Two processes copying at once
    are fine: the second finds the first one's complete copy.
    """
    if _complete(target, version, main_file):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        fill(staging)
        (staging / _VERSION_FILE).write_text(version)  # written last: the copy is complete
        if target.exists():
            shutil.rmtree(target)  # an older version or an interrupted copy
        staging.rename(target)
    except OSError:
        if not _complete(target, version, main_file):  # another process renamed its complete copy into place first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return True


def _complete(target: Path, version: str, main_file: str) -> bool:
    marker = target / _VERSION_FILE
    return marker.is_file() and marker.read_text().strip() == version and (target / main_file).is_file()


def nbconvert_options(folder: str | Path) -> dict[str, str]:
    """Options of nbconvert's HTML/slide exporters for pages written in ``folder``: the local MathJax when
    available, else nothing (nbconvert's CDN default)."""
    url = local_mathjax(folder)
    return {"mathjax_url": url} if url else {}
