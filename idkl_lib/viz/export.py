"""Writing figures: offline interactive HTML always, PNG with kaleido (plotly's exporter) when a Chrome or Chromium
is installed.

kaleido >= 1 drives an installed Chrome/Chromium and renders the exact plotly figure. One browser is opened on the
first PNG and reused for every later one of the process (a notebook's kernel), instead of one browser per figure; it
is closed at interpreter exit (:func:`close_png_export` closes it earlier). A failed export is retried once with a
fresh browser. It runs on kaleido's public asynchronous API (``kaleido.Kaleido``) in a background event loop with
timeouts: ``kaleido.start_sync_server`` waits forever when its browser fails to start.

When a PNG cannot be written, :func:`save_figure` still writes the HTML and says so once per process in one line
(which figure, the first line of the error, what to do); :func:`figure_to_png` raises :class:`PNGExportUnavailable`
(no browser) or :class:`PNGExportError` (the export failed twice).
"""

from __future__ import annotations

import ast
import asyncio
import atexit
import concurrent.futures
import json
import logging
import os
import threading
import warnings
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

from idkl_lib.utils.io import atomic_write_bytes, atomic_write_text

__all__ = [
    "PNGExportError",
    "PNGExportUnavailable",
    "PNGExportWarning",
    "close_png_export",
    "figure_to_png",
    "png_export_available",
    "save_figure",
]

ENABLE_PNG_HINT = (
    "install Chrome or Chromium (Debian/Ubuntu: apt-get install chromium) or run plotly_get_chrome, "
    "then restart the kernel"
)
RETRY_HINT = "rerun the cell to retry; figure_to_png(fig) raises the full error"
ATTEMPTS = 2  # the first try, then one more with a fresh browser
OPEN_TIMEOUT_S = 120.0  # starting the browser (seconds; seen above 60 s on a 2-core machine at load 20)
RENDER_TIMEOUT_S = 90.0  # one figure (kaleido's own per-figure limit)
CLOSE_TIMEOUT_S = 15.0

_LOG = logging.getLogger(__name__)
# "missing": why no browser was found; "warned": the one message was shown; "available": the probe's answer
_STATE: dict[str, object] = {}


class PNGExportUnavailable(RuntimeError):
    """PNG export needs a Chrome or Chromium, and kaleido found none."""


class PNGExportError(RuntimeError):
    """kaleido failed to export a figure, also on the retry with a fresh browser."""


class PNGExportWarning(UserWarning):
    """A figure was written as HTML only (shown once per process)."""


def _first_line(exc: BaseException) -> str:
    """``Type: first line`` of an error (choreographer errors carry several strings in ``args``)."""
    text = (exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)).strip()
    if text.startswith(("{", "[")):  # a browser's message (JSON, or a dict's repr): its text, never the dump
        data = _parse_message(text)
        keys = ("description", "message", "error", "msg")
        found = [data.get(key) for key in keys] if isinstance(data, dict) else []
        text = next((str(value) for value in found if value), "an unreadable message from the browser")
    lines = text.splitlines()
    line = lines[0].strip() if lines else ""
    if len(line) > 120:  # its first sentence, else cut
        end = line.find(". ", 0, 157)
        line = line[: end + 1] if end > 0 else line[:157] + "..."
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _parse_message(text: str) -> object:
    try:
        return json.JSONDecoder().raw_decode(text)[0]
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)  # kaleido's JavascriptError carries str(dict)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


class _Exporter:
    """One kaleido browser (``kaleido.Kaleido``) driven from its own event loop thread, each call with a timeout."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        # what the loop would print (a cancelled start's unretrieved error): to the debug log, never to a notebook
        self._loop.set_exception_handler(lambda _loop, context: _LOG.debug("kaleido loop: %s", context.get("message")))
        self._thread = threading.Thread(target=self._loop.run_forever, name="idkl-png-export", daemon=True)
        self._thread.start()
        self._kaleido: Any = None
        try:
            self._kaleido = self._run(self._create(), OPEN_TIMEOUT_S)
            self._run(self._kaleido.open(), OPEN_TIMEOUT_S)  # starts the browser
        except BaseException:
            self.close()  # also a browser that started too slowly
            raise

    @staticmethod
    async def _create() -> Any:
        import kaleido

        # plotly.io.defaults' scripts when set; MathJax off otherwise (no figure here uses LaTeX, and kaleido would
        # load it from a CDN on every figure)
        return kaleido.Kaleido(
            n=1, timeout=RENDER_TIMEOUT_S, plotlyjs=pio.defaults.plotlyjs or None, mathjax=pio.defaults.mathjax or False
        )

    @staticmethod
    async def _cancel_pending() -> None:
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"kaleido did not answer within {timeout:g} s") from None

    def png(self, fig: dict[str, Any], opts: dict[str, Any]) -> bytes:
        return self._run(self._kaleido.calc_fig(fig, opts=opts), RENDER_TIMEOUT_S + 30)

    def close(self) -> None:
        """Close the browser (waits for its process to end) and stop the loop; never raises."""
        if self._thread.is_alive():
            for step in ([self._kaleido.close] if self._kaleido is not None else []) + [self._cancel_pending]:
                try:
                    self._run(step(), CLOSE_TIMEOUT_S)
                except BaseException:  # noqa: BLE001  closing is best effort: the browser may be gone already
                    pass
        self._kaleido = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()


_EXPORTER: _Exporter | None = None
_LOCK = threading.Lock()


def close_png_export() -> None:
    """Close the PNG exporter's browser (done automatically at interpreter exit; the next PNG opens a new one)."""
    global _EXPORTER
    with _LOCK:
        exporter, _EXPORTER = _EXPORTER, None
    if exporter is not None and exporter.pid == os.getpid():  # a forked child never closes its parent's browser
        exporter.close()


atexit.register(close_png_export)


def _exporter() -> _Exporter:
    global _EXPORTER
    with _LOCK:
        if _EXPORTER is None or _EXPORTER.pid != os.getpid():
            _EXPORTER = _Exporter()
        return _EXPORTER


def _is_missing_browser(exc: BaseException) -> bool:
    from choreographer.errors import ChromeNotFoundError

    return isinstance(exc, ChromeNotFoundError)


def _unavailable() -> PNGExportUnavailable:
    return PNGExportUnavailable(f"PNG export is unavailable ({_STATE['missing']}): {ENABLE_PNG_HINT}")


def figure_to_png(fig: go.Figure, width: int | None = None, height: int | None = None, scale: float = 2.0) -> bytes:
    """Render a figure to PNG bytes with kaleido (the exact plotly rendering), reusing the process's browser.

    Args:
        fig: The figure (not modified).
        width: Width in CSS pixels (default: the figure's layout width, else 700).
        height: Height in CSS pixels (default: the figure's layout height, else 500).
        scale: Pixel density multiplier.

    Raises:
        PNGExportUnavailable: No Chrome/Chromium was found (the message says how to install one).
        PNGExportError: The export failed, also on a second try with a fresh browser (the cause is chained).
    """
    if "missing" in _STATE:
        raise _unavailable()
    template = fig.layout.template.layout
    opts = {
        "format": "png",
        "width": width or fig.layout.width or template.width or pio.defaults.default_width,
        "height": height or fig.layout.height or template.height or pio.defaults.default_height,
        "scale": scale,
    }
    spec = fig.to_dict()
    last: BaseException | None = None
    for _attempt in range(ATTEMPTS):
        try:
            return _exporter().png(spec, opts)
        except Exception as exc:  # kaleido/choreographer raise their own error types
            if _is_missing_browser(exc):
                _STATE["missing"] = _first_line(exc)
                raise _unavailable() from None
            last = exc
            close_png_export()  # a transient failure (slow browser start, broken message): retry on a fresh one
    raise PNGExportError(f"kaleido could not export the figure to PNG ({_first_line(last)})") from last  # type: ignore[arg-type]


def png_export_available() -> bool:
    """Whether :func:`figure_to_png` works on this machine (probed once per process with a tiny figure)."""
    if "available" not in _STATE:
        try:
            figure_to_png(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), width=40, height=30, scale=1.0)
            _STATE["available"] = True
        except (PNGExportUnavailable, PNGExportError):
            _STATE["available"] = False
    return bool(_STATE["available"])


def save_figure(
    fig: go.Figure,
    folder: str | os.PathLike[str],
    name: str,
    png: bool = True,
    self_contained: bool = False,
    scale: float = 2.0,
) -> dict[str, Path]:
    """Write ``<folder>/<name>.html`` (interactive) and ``<folder>/<name>.png`` (static), atomically.

    The HTML works offline: by default (``self_contained=False``) it loads ``plotly.min.js`` from the same folder,
    which is written once per folder (about 4.7 MB shared by all figures there), so keep the HTML next to it;
    ``self_contained=True`` embeds plotly.js in every HTML file instead (portable single file, about 4.7 MB each).
    Nothing is loaded from the network.

    Args:
        fig: The figure.
        folder: Output folder (created if needed).
        name: File stem.
        png: Also write a PNG (:func:`figure_to_png`). When it cannot be written only the HTML is, and a
            :class:`PNGExportWarning` says so once per process in one line (the figure, the error, what to do).
        self_contained: Embed plotly.js in the HTML.
        scale: PNG pixel density.

    Returns:
        ``{"html": path, "png": path}`` (``"png"`` only when written).
    """
    if not name or any(ch in name for ch in "/\\"):
        raise ValueError(f"name must be a plain file stem, got {name!r}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if self_contained:
        html = fig.to_html(include_plotlyjs=True, full_html=True)
    else:
        html = fig.to_html(include_plotlyjs="directory", full_html=True)
        _ensure_plotlyjs(out)
    paths["html"] = atomic_write_text(out / f"{name}.html", html)
    if png:
        try:
            paths["png"] = atomic_write_bytes(out / f"{name}.png", figure_to_png(fig, scale=scale))
        except (PNGExportUnavailable, PNGExportError) as exc:
            if not _STATE.get("warned"):
                _STATE["warned"] = True
                if isinstance(exc, PNGExportUnavailable):
                    reason, hint = str(_STATE.get("missing", "no Chrome/Chromium")), ENABLE_PNG_HINT
                else:
                    reason, hint = _first_line(exc.__cause__ or exc), RETRY_HINT
                message = f"{name}.png not written, {name}.html is ({reason}); {hint}"
                warnings.warn(message + " (further PNG failures are not reported)", PNGExportWarning, stacklevel=2)
    return paths


PLOTLY_JS = "plotly.min.js"
"""The plotly.js file beside saved HTML figures (and, as ``idkl_lib.runs.PLOTLY_JS_NAME``, at a run folder's top)."""


def _ensure_plotlyjs(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode("utf-8")
    target = folder / PLOTLY_JS
    if not target.is_file() or target.stat().st_size != len(js):
        atomic_write_bytes(target, js)
