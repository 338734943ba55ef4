"""Saving figures: offline HTML, PNG through one reused kaleido browser, retries, one short failure message, and no
browser left behind at exit."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from choreographer.errors import BrowserFailedError, ChromeNotFoundError
from kaleido.errors import JavascriptError
from PIL import Image

from idkl_lib.viz import export, plots

REPO = Path(__file__).resolve().parents[1]
_TINY_PNG = (  # a 1x1 PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\x0bIDATx\x9cc`\x00\x02\x00\x00\x05\x00\x01\xe2&\x05\x9b\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def needs_chrome() -> None:
    if not export.png_export_available():
        pytest.skip("PNG export needs Chrome/Chromium for kaleido (apt-get install chromium, or plotly_get_chrome)")


@pytest.fixture
def fake_exporter(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Replace the browser by a fake whose ``png`` fails as ``fake_exporter.failures`` says; returns the log of
    exporters made (each records its calls)."""
    made: list[object] = []

    class FakeExporter:
        failures: list[BaseException] = []  # raised by the next png calls, in order; then it succeeds

        def __init__(self) -> None:
            self.pid = export.os.getpid()
            self.calls = 0
            self.closed = False
            made.append(self)

        def png(self, fig: dict, opts: dict) -> bytes:
            self.calls += 1
            if FakeExporter.failures:
                raise FakeExporter.failures.pop(0)
            assert opts["format"] == "png" and opts["width"] and opts["height"] and "data" in fig
            return _TINY_PNG

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(export, "_STATE", {})
    monkeypatch.setattr(export, "_EXPORTER", None)
    monkeypatch.setattr(export, "_Exporter", FakeExporter)
    made.append(FakeExporter)  # made[0]: the class (its failures list); then the instances
    return made


def _png(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def test_one_browser_serves_every_figure(fake_exporter: list) -> None:
    fig = plots.heatmap(np.eye(3), "I", "j", "i")
    for _ in range(3):
        assert plots.figure_to_png(fig) == _TINY_PNG
    (exporter,) = fake_exporter[1:]
    assert exporter.calls == 3 and not exporter.closed
    export.close_png_export()
    assert exporter.closed and export._EXPORTER is None


_SLOW_START = BrowserFailedError(  # as choreographer words it: it mentions Chrome, yet Chromium is installed
    "The browser seemed to close immediately after starting.",
    "You may try installing a known working copy of Chrome by running `$ choreo_get_chrome`.",
)


@pytest.mark.parametrize("error", [RuntimeError("JSONError decoding message"), _SLOW_START], ids=["json", "start"])
def test_a_transient_error_is_retried_on_a_fresh_browser(fake_exporter: list, tmp_path: Path, error: Exception) -> None:
    fake_exporter[0].failures.append(error)
    fig = plots.heatmap(np.eye(3), "I", "j", "i")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a recovered error says nothing
        paths = plots.save_figure(fig, tmp_path, "heat")
    assert paths["png"].read_bytes() == _TINY_PNG
    first, second = fake_exporter[1:]
    assert first.calls == 1 and first.closed and second.calls == 1 and not second.closed


def test_failures_are_reported_once_in_one_line_and_the_html_is_written(fake_exporter: list, tmp_path: Path) -> None:
    dump = '{"error": "Kaleido requires Google Chrome to be installed", "trace": "' + "x" * 900 + '"}'
    fake_exporter[0].failures.extend(RuntimeError(dump + "\nmore lines") for _ in range(3 * export.ATTEMPTS))
    fig = plots.heatmap(np.eye(3), "I", "j", "i")
    with pytest.warns(export.PNGExportWarning) as caught:
        written = [plots.save_figure(fig, tmp_path, name) for name in ("a", "b", "c")]
    assert len(caught) == 1  # one message per process, for three failed figures
    message = str(caught[0].message)
    assert message.startswith("a.png not written, a.html is (RuntimeError: ") and "rerun the cell" in message
    assert "Kaleido requires Google Chrome" in message  # the JSON's error text, not the dump
    assert "\n" not in message and "{" not in message and "xxxx" not in message and len(message) < 400
    assert all(set(paths) == {"html"} and paths["html"].is_file() for paths in written)
    assert not list(tmp_path.glob("*.png"))
    assert len(fake_exporter) - 1 == 3 * export.ATTEMPTS  # every try on a fresh browser, bounded
    with pytest.raises(export.PNGExportError, match="RuntimeError") as info:
        fake_exporter[0].failures.extend([RuntimeError("down")] * export.ATTEMPTS)
        plots.figure_to_png(fig)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_without_chrome_html_is_written_and_one_short_message_says_how_to_get_pngs(
    fake_exporter: list, tmp_path: Path
) -> None:
    fake_exporter[0].failures.append(ChromeNotFoundError("Kaleido v1 and later requires Chrome to be installed. " * 9))
    fig = plots.heatmap(np.eye(4), "I", "j", "i")
    with pytest.warns(export.PNGExportWarning) as caught:
        first = plots.save_figure(fig, tmp_path, "a")
        second = plots.save_figure(fig, tmp_path, "b")
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "chromium" in message and "plotly_get_chrome" in message and "{" not in message and len(message) < 400
    assert set(first) == set(second) == {"html"} and first["html"].is_file()
    assert len(fake_exporter) - 1 == 1  # no browser: not retried, and later figures do not try again
    with pytest.raises(export.PNGExportUnavailable, match="plotly_get_chrome"):
        plots.figure_to_png(fig)


@pytest.mark.usefixtures("needs_chrome")
def test_save_figure_writes_offline_html_and_png(tmp_path: Path) -> None:
    fig = plots.cmc_curves({"a": np.linspace(0.5, 1.0, 10), "b": np.linspace(0.2, 0.9, 10)})
    paths = plots.save_figure(fig, tmp_path / "figs", "cmc")
    browser = export._EXPORTER
    assert browser is not None and plots.figure_to_png(fig, scale=0.5).startswith(b"\x89PNG")
    assert export._EXPORTER is browser  # the same browser serves the next figure
    html = paths["html"].read_text()
    assert paths["html"].name == "cmc.html" and 'src="plotly.min.js"' in html and "cdn.plot.ly" not in html
    assert (tmp_path / "figs" / "plotly.min.js").stat().st_size > 1_000_000
    arr = _png(paths["png"].read_bytes())
    assert arr.shape[0] == 1000 and arr.shape[1] == 1400  # default 700 x 500 at scale 2
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20  # not a blank canvas
    single = plots.save_figure(fig, tmp_path / "solo", "cmc", png=False, self_contained=True)
    assert set(single) == {"html"} and not (tmp_path / "solo" / "plotly.min.js").exists()
    assert single["html"].stat().st_size > 1_000_000
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["cmc.html", "cmc.png", "plotly.min.js"]
    with pytest.raises(ValueError, match="plain file stem"):
        plots.save_figure(fig, tmp_path, "a/b")


_SAVE_THREE = """
import tempfile, warnings
import numpy as np
from idkl_lib.viz import plots

folder = tempfile.mkdtemp()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    written = [sorted(plots.save_figure(plots.heatmap(np.eye(3), "I", "j", "i"), folder, name)) for name in "abc"]
print(written)
print("WARNINGS", len(caught))
print("MESSAGE", caught[0].message)
"""


def test_a_wrong_browser_path_gives_html_and_one_line_without_hanging() -> None:
    env = {**os.environ, "BROWSER_PATH": "/nonexistent/chromium", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", _SAVE_THREE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "[['html'], ['html'], ['html']]" in done.stdout and "WARNINGS 1" in done.stdout
    message = done.stdout.split("MESSAGE ", 1)[1].strip()
    assert message.startswith("a.png not written, a.html is (ChromeNotFoundError: No browser found at BROWSER_PATH")
    assert "apt-get install chromium" in message and "\n" not in message and len(message) < 300


_EXPORT_AND_EXIT = """
import os
from pathlib import Path
import numpy as np
from idkl_lib.viz import export, plots

figs = [plots.heatmap(np.eye(3) * k, "I", "j", "i") for k in range(1, 4)]
sizes = [len(export.figure_to_png(fig, scale=1.0)) for fig in figs]
exporter = export._EXPORTER
assert exporter is not None and all(size > 1000 for size in sizes), sizes
parents = {}
for p in filter(str.isdigit, os.listdir("/proc")):
    try:
        parents[p] = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1]
    except OSError:
        pass
family, grew = {str(os.getpid())}, True
while grew:
    more = {p for p, parent in parents.items() if parent in family} - family
    family, grew = family | more, bool(more)
print("DESCENDANTS", " ".join(sorted(family - {str(os.getpid())})))
"""  # exits without closing: the atexit hook must close the browser


def _alive(pid: str) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.usefixtures("needs_chrome")
def test_real_exports_reuse_one_browser_that_is_gone_after_exit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EXPORT_AND_EXIT)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    children = done.stdout.split("DESCENDANTS", 1)[1].split()
    assert children, "the browser runs below the exporting process"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if _alive(pid)], "a browser process outlived the interpreter"


_JS_ERROR = {
    "type": "object",
    "subtype": "error",
    "description": "TypeError: Plotly is undefined\n    at render (k.js:1)",
}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (JavascriptError(str(_JS_ERROR)), "JavascriptError: TypeError: Plotly is undefined"),
        (_SLOW_START, "BrowserFailedError: The browser seemed to close immediately after starting."),
        (RuntimeError('{"error": "no tab"}\n{"more": 1}'), "RuntimeError: no tab"),
        (RuntimeError("First sentence. " + "y" * 300), "RuntimeError: First sentence."),
        (RuntimeError(""), "RuntimeError"),
    ],
)
def test_errors_are_shown_by_their_first_line(error: Exception, expected: str) -> None:
    assert export._first_line(error) == expected
