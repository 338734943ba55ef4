"""Writing figures: offline interactive HTML always, PNG with kaleido (plotly's exporter) when a Chrome or Chromium
is installed.

kaleido >= 1 drives an installed Chrome/Chromium and renders the exact plotly figure. Without one, :func:`save_figure`
still writes the HTML and says once per process how to enable PNGs (install ``chromium``, or run plotly's
``plotly_get_chrome``); :func:`figure_to_png` raises :class:`PNGExportUnavailable`.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import plotly.graph_objects as go

from idkl_lib.utils.io import atomic_write_bytes, atomic_write_text

__all__ = ["PNGExportUnavailable", "PNGExportWarning", "figure_to_png", "png_export_available", "save_figure"]

ENABLE_PNG_HINT = (
    "install Chrome or Chromium (Debian/Ubuntu: apt-get install chromium) or run plotly_get_chrome, "
    "then restart the kernel"
)
_STATE: dict[str, object] = {}  # "missing": the reason once no browser was found; "warned": message shown


class PNGExportUnavailable(RuntimeError):
    """PNG export needs a Chrome or Chromium, and kaleido found none."""


class PNGExportWarning(UserWarning):
    """A figure was written as HTML only (shown once per process)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _is_missing_browser(exc: BaseException) -> bool:
    text = f"{type(exc).__name__} {exc}".lower()
    return "chrome" in text or "chromium" in text or "browser" in text


def figure_to_png(fig: go.Figure, width: int | None = None, height: int | None = None, scale: float = 2.0) -> bytes:
    """Render a figure to PNG bytes with kaleido (the exact plotly rendering).

    Args:
        fig: The figure (not modified).
        width: Width in CSS pixels (default: the figure's layout width, else 700).
        height: Height in CSS pixels (default: the figure's layout height, else 500).
        scale: Pixel density multiplier.

    Raises:
        PNGExportUnavailable: No Chrome/Chromium was found (the message says how to install one).
    """
    if "missing" in _STATE:
        raise PNGExportUnavailable(f"PNG export is unavailable ({_STATE['missing']}): {ENABLE_PNG_HINT}")
    last: BaseException | None = None
    for _attempt in range(2):  # the browser connection occasionally fails once; a second try succeeds
        try:
            return fig.to_image(format="png", width=width, height=height, scale=scale)
        except Exception as exc:  # kaleido/choreographer raise their own error types
            if _is_missing_browser(exc):
                _STATE["missing"] = _first_line(exc)
                raise PNGExportUnavailable(
                    f"PNG export is unavailable ({_STATE['missing']}): {ENABLE_PNG_HINT}"
                ) from None
            last = exc
    raise RuntimeError(f"kaleido could not export the figure to PNG ({_first_line(last)})") from last  # type: ignore[arg-type]


def png_export_available() -> bool:
    """Whether :func:`figure_to_png` works on this machine (probed once per process with a tiny figure)."""
    if "available" not in _STATE:
        try:
            figure_to_png(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), width=40, height=30, scale=1.0)
            _STATE["available"] = True
        except Exception:
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
        png: Also write a PNG (:func:`figure_to_png`). Without a Chrome/Chromium only the HTML is written and a
            :class:`PNGExportWarning` says once per process how to enable PNGs.
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
        except (PNGExportUnavailable, RuntimeError) as exc:
            if not _STATE.get("warned"):
                _STATE["warned"] = True
                reason = ENABLE_PNG_HINT if isinstance(exc, PNGExportUnavailable) else str(exc)
                warnings.warn(f"figures are written as HTML only, no PNG: {reason}", PNGExportWarning, stacklevel=2)
    return paths


def _ensure_plotlyjs(folder: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs().encode("utf-8")
    target = folder / "plotly.min.js"
    if not target.is_file() or target.stat().st_size != len(js):
        atomic_write_bytes(target, js)
