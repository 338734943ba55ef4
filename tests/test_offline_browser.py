"""A real browser with the network blocked presents a deck and shows a notebook page of a tiny pipeline run.

Headless Chromium (the system's ``chromium``, driven by Playwright) opens ``<step>.slides.html`` and ``<step>.html``
of a one-step run whose folder was copied elsewhere after the run (relative paths only), with every request that is
not a local file refused and the host resolver mapped to nowhere. It checks that reveal.js started (its API answers,
a key press moves to the next slide, ``Esc`` opens the overview, ``s`` opens the speaker view with the notes), that
the equations are typeset by the local MathJax, that the plotly figures and the widget's stand-in are drawn, and
that the pages asked for nothing outside the machine. Skipped, with the reason, where Playwright or a Chromium is
missing (``apt-get install chromium``; ``IDKL_CHROMIUM`` names another binary). A deck written without reveal.js
shows, offline, the banner saying that it needs the network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from idkl_lib.pipeline import Step, run_pipeline
from idkl_lib.report import offline as offline_assets
from idkl_lib.report.offline import NEEDS_NETWORK_NOTE, WIDGET_NOTE
from idkl_lib.report.slides import export_slides
from idkl_lib.runs import SLIDES_SUFFIX

STEP = "01_talk"
NOTE = "Say that every batch alternates the two modalities."
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
"""Requests that do not leave the machine."""
SETUP = """import json, pathlib
import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio
from IPython.display import display
pio.renderers.default = "plotly_mimetype+notebook"  # what idkl_lib.workbench.setup_notebook sets, without torch
"""
FIGURE = 'go.Figure(go.Bar(x=["VIS", "IR"], y=[3, 2]), layout={"title": "images per modality"}).show()'
WIDGET = """output = widgets.Output()
display(widgets.VBox([widgets.HBox([widgets.Dropdown(options=["pid 0", "pid 1"], description="identity")]), output]))
fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout={"title": "drawn by the widget"})
output.outputs = ({"output_type": "display_data", "data": {"application/vnd.plotly.v1+json": json.loads(fig.to_json()),
                   "text/plain": "<Figure>"}, "metadata": {}},)
"""
METRICS = """pathlib.Path(step_dir).mkdir(parents=True, exist_ok=True)
(pathlib.Path(step_dir) / "metrics.json").write_text("{}")
"""


def _chromium() -> str:
    """The Chromium binary to drive, or skip the test saying how to get one."""
    pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
    for candidate in (os.environ.get("IDKL_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.skip("no Chromium on PATH for the offline browser test: apt-get install chromium (or set IDKL_CHROMIUM)")


def _slide(kind: str) -> dict[str, Any]:
    return {"slideshow": {"slide_type": kind}}


def _talk(path: Path) -> Path:
    """Three slides: a title with equations and speaker notes, a figure, a widget that drew a figure."""
    cells = [
        new_code_cell('run_dir = "unset"\nstep_dir = "unset"', metadata={"tags": ["parameters"], **_slide("skip")}),
        new_markdown_cell(
            "# Offline talk\n\nThe loss $\\mathcal{L} = \\sum_i x_i^2$ and\n\n$$a^2 + b^2 = c^2$$",
            metadata=_slide("slide"),
        ),
        new_markdown_cell(NOTE, metadata=_slide("notes")),
        new_code_cell(SETUP, metadata=_slide("skip")),
        new_markdown_cell("## A figure", metadata=_slide("slide")),
        new_code_cell(FIGURE, metadata=_slide("-")),
        new_markdown_cell("## A widget", metadata=_slide("slide")),
        new_code_cell(WIDGET, metadata=_slide("-")),
        new_code_cell(METRICS, metadata=_slide("skip")),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def moved_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-step pipeline run, copied to another folder after it finished (as to a USB stick)."""
    root = tmp_path_factory.mktemp("lecture")
    _talk(root / "notebooks" / f"{STEP}.ipynb")
    run_pipeline(root / "run", preset=None, steps=[Step(STEP)], notebooks_dir=root / "notebooks", verbose=False)
    return Path(shutil.copytree(root / "run", root / "usb-stick" / "talk"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium with every non-file request refused; yields ``open(path) -> (page, external requests)``."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable, args=["--host-resolver-rules=MAP * ~NOTFOUND", "--no-sandbox"]
        )
        context = chromium.new_context(viewport={"width": 1280, "height": 800})
        external: list[str] = []
        context.on(
            "request", lambda request: None if request.url.startswith(LOCAL_SCHEMES) else external.append(request.url)
        )
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith(LOCAL_SCHEMES) else route.abort()
        )

        def open_page(path: Path) -> tuple[Any, list[str]]:
            external.clear()
            page = context.new_page()
            page.goto(path.as_uri(), wait_until="load")
            return page, external

        yield open_page
        context.close()
        chromium.close()


def _typeset(page: Any) -> int:
    """Wait for MathJax's queue to finish and return how many equations it typeset."""
    page.wait_for_function(
        "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue && MathJax.Hub.queue.pending === 0"
        " && document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
        timeout=30_000,
    )
    return int(page.evaluate("document.querySelectorAll('.MathJax, .MathJax_Display').length"))


def test_deck_presents_with_the_network_off(browser: Any, moved_run: Path) -> None:
    page, external = browser(moved_run / f"{STEP}{SLIDES_SUFFIX}")
    page.wait_for_function("() => window.Reveal && Reveal.isReady()", timeout=30_000)
    assert page.evaluate("Reveal.getTotalSlides()") == 3
    assert page.evaluate("Reveal.getIndices().h") == 0
    assert _typeset(page) >= 2 and page.evaluate("document.querySelector('.slides').innerText").count("$") == 0
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => Reveal.getIndices().h === 1", timeout=10_000)
    page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div .main-svg').length >= 2")
    page.keyboard.press("Escape")
    assert page.evaluate("Reveal.isOverview()") is True
    page.keyboard.press("Escape")
    assert page.evaluate("Reveal.isOverview()") is False
    assert page.evaluate("Reveal.hasPlugin('notes')") is True
    with page.expect_popup() as speaker_view:
        page.keyboard.press("s")
    speaker = speaker_view.value
    speaker.wait_for_load_state()
    page.keyboard.press("ArrowLeft")  # back to the title slide, whose notes the speaker view shows
    speaker.wait_for_function(f"() => document.body.innerText.includes({NOTE!r})", timeout=10_000)
    assert page.locator("#idkl-needs-network").count() == 0
    index = (moved_run / "index.html").read_text(encoding="utf-8")
    assert index.index('id="presenting"') < index.index(f'href="{STEP}{SLIDES_SUFFIX}"', index.index('id="presenting"'))
    assert external == [], f"requests that left the machine: {external}"


def test_notebook_page_renders_with_the_network_off(browser: Any, moved_run: Path) -> None:
    page, external = browser(moved_run / f"{STEP}.html")
    assert _typeset(page) >= 2
    page.wait_for_function("() => document.querySelectorAll('.plotly-graph-div .main-svg').length >= 4")
    assert page.evaluate("document.querySelectorAll('.plotly-graph-div').length") == 2  # the figure, the widget's
    note = page.locator(".idkl-widget-note")
    assert note.count() == 1 and WIDGET_NOTE in note.inner_text() and note.is_visible()
    assert "identity: pid 0" in page.inner_text("body")
    assert external == [], f"requests that left the machine: {external}"
    # the watch works: a request to the internet is seen and refused
    assert page.evaluate("fetch('https://example.org/').then(() => 'reached', () => 'refused')") == "refused"
    assert external == ["https://example.org/"]


def test_without_reveal_the_deck_says_it_needs_the_network(
    browser: Any, moved_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(offline_assets, "_reveal_source", lambda: None)
    monkeypatch.setattr(offline_assets, "_warned", set())
    executed = Path(shutil.copy(moved_run / f"{STEP}.ipynb", tmp_path / f"{STEP}.ipynb"))
    with pytest.warns(UserWarning, match="sphinx-revealjs is not installed"):
        deck = export_slides(executed)
    assert deck is not None
    page, external = browser(deck)
    banner = page.locator("#idkl-needs-network")
    banner.wait_for(state="visible")
    assert NEEDS_NETWORK_NOTE in banner.inner_text()
    assert page.evaluate("typeof window.Reveal") == "undefined"  # refused: the CDN's reveal.js did not load
    assert external and all("reveal.js" in url for url in external), external
