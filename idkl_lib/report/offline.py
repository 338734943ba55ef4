"""Notebook pages and slide decks that work with the network off: local reveal.js and plotly.js, no CDN scripts.

nbconvert's templates load reveal.js, require.js, jQuery, mermaid and the Jupyter widgets HTML manager from CDNs,
and plotly's notebook output asks for MathJax 3 from a CDN in every figure. The exporters built with
:func:`page_options` (``<step>.html``) and :func:`deck_options` (``<step>.slides.html``) load nothing from the
network:

* **reveal.js** comes from the ``sphinx-revealjs`` package (its ``_static/revealjs``: ``dist/`` and the notes
  plugin, about 2.6 MB), copied once into ``<run_dir>/reveal.js/`` like MathJax (:func:`idkl_lib.report.mathjax.
  copy_once`); a deck loads it and the speaker-notes plugin with plain ``<script>`` tags (no require.js, no jQuery)
  by a relative URL, so a run folder copied elsewhere still presents. Without the package a deck loads reveal.js
  from a CDN, shows a banner saying that it needs the network until reveal.js has started, and the export warns
  once per folder.
* **plotly.js** is written once to ``<run_dir>/plotly.min.js`` and loaded in the page head; the copy of plotly.js
  that the notebook's first figure embeds (4.8 MB) is taken out of the page, so every figure renders wherever its
  cell is (a deck leaves out ``skip`` cells) and pages are smaller.
* **MathJax**: plotly's CDN MathJax 3 tag is taken out of the figure outputs; the page's local MathJax 2
  (:mod:`idkl_lib.report.mathjax`) typesets the equations.
* **mermaid** diagrams (none in the notebooks) show as their source: mermaid.js is not loaded.
* **widgets**: no installed package ships the Jupyter widgets HTML manager (``@jupyter-widgets/html-manager``'s
  ``embed-amd.js`` is on npm only; ipywidgets, jupyterlab_widgets and widgetsnbextension ship JupyterLab's and the
  classic notebook's extensions, which need a kernel-side page), so a widget output becomes a static snapshot of its
  saved state: texts and progress bars as they ended, each control's last value, the outputs (figures) that its
  Output widgets last showed, and a note that the control needs JupyterLab.
"""

from __future__ import annotations

import functools
import html
import importlib.metadata
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool, Unicode

from idkl_lib.report.mathjax import copy_once, nbconvert_options
from idkl_lib.runs import PLOTLY_JS_NAME, REVEAL_DIR
from idkl_lib.utils.io import atomic_write_text

__all__ = [
    "DECK_TEMPLATE",
    "NEEDS_NETWORK_NOTE",
    "PAGE_TEMPLATE",
    "WIDGET_NOTE",
    "OfflineOutputs",
    "deck_options",
    "local_plotly",
    "local_reveal",
    "page_options",
    "widget_snapshot",
]

REVEAL_PACKAGE = "sphinx-revealjs"
REVEAL_FILES = ("dist", "plugin/notes", "LICENSE")
"""What a deck needs of reveal.js (themes and their fonts included); source maps and ES-module copies are left out."""
PAGE_TEMPLATE = "idkl_offline_page.html.j2"
DECK_TEMPLATE = "idkl_offline_deck.html.j2"
WIDGET_NOTE = "Interactive control: it needs a running kernel (open the notebook in JupyterLab)."
NEEDS_NETWORK_NOTE = (
    "This deck loads reveal.js from the internet: the sphinx-revealjs package was not installed when it was "
    "written. Without a network it shows as one long page; install sphinx-revealjs and export it again."
)
_PLOTLY_MIME = "application/vnd.plotly.v1+json"
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_CDN_SCRIPT = re.compile(r"<script\s+src=\"https?://[^\"]*mathjax[^\"]*\">\s*</script>", re.IGNORECASE)
_REMOTE_IMPORT = re.compile(r"@import url\((?:https?:)?//[^)]*\);?\s*", re.IGNORECASE)
_DISPLAY_ONLY = {"HTMLModel", "HTMLMathModel", "LabelModel", "FloatProgressModel", "IntProgressModel"}
_warned: set[Path] = set()

_HEAD = """{%- if resources.offline and resources.offline.plotly_url %}
<script charset="utf-8" src="{{ resources.offline.plotly_url }}"></script>
{%- endif %}
<style type="text/css">
.idkl-widget-note{border-left:4px solid #f08c00;background:#fff9db;padding:6px 10px;margin:4px 0;font-size:0.85em}
.idkl-widget-snapshot{padding:4px 0}.idkl-widget-snapshot progress{vertical-align:middle;margin:0 6px}
.idkl-widget-control{display:inline-block;margin-right:14px;color:#52606d}
</style>"""
_TEMPLATES = {
    PAGE_TEMPLATE: f"""{{%- extends 'index.html.j2' -%}}
{{% block html_head_js %}}{_HEAD}{{% endblock html_head_js %}}
{{% block jupyter_widgets %}}{{% endblock jupyter_widgets %}}
{{% block html_head_js_mermaidjs %}}{{% endblock html_head_js_mermaidjs %}}
""",
    DECK_TEMPLATE: f"""{{%- extends 'index.html.j2' -%}}
{{% block html_head_js %}}{_HEAD}{{% endblock html_head_js %}}
{{% block jupyter_widgets %}}{{% endblock jupyter_widgets %}}
{{% block body_footer %}}
{{%- if resources.offline and resources.offline.needs_network %}}
<div id="idkl-needs-network" style="position:fixed;top:0;left:0;right:0;z-index:1000;background:#fff3bf;
border-bottom:2px solid #f08c00;padding:8px 14px;font:16px/1.4 sans-serif">{NEEDS_NETWORK_NOTE}</div>
{{%- endif %}}
{{{{ super() }}}}
{{% endblock body_footer %}}
{{% block footer_js %}}
{{% set prefix = resources.reveal.url_prefix %}}
<script src="{{{{ prefix }}}}/dist/reveal.js"></script>
<script src="{{{{ prefix }}}}/plugin/notes/notes.js"></script>
<script>
(function () {{
  if (!window.Reveal) {{ return; }}  // reveal.js did not load: the banner above stays
  var fitTallSlides = function () {{
    var height = document.querySelector('.reveal').offsetHeight * 0.95;
    if (!{{{{ resources.reveal.scroll | default(false, true) | json_dumps }}}}) {{ return; }}
    document.querySelectorAll('section.present section').forEach(function (section) {{
      if (section.offsetHeight > height) {{
        section.style.height = 'calc(95vh)';
        section.style.overflowY = 'scroll';
        section.style.marginTop = '20px';
      }}
    }});
  }};
  var typeset = function () {{
    if (window.MathJax && MathJax.Hub && MathJax.Hub.getAllJax(Reveal.getCurrentSlide()).length) {{
      MathJax.Hub.Rerender(Reveal.getCurrentSlide());
    }}
  }};
  Reveal.initialize({{
    controls: true,
    progress: true,
    history: true,
    transition: "{{{{ resources.reveal.transition | default('slide', true) }}}}",
    slideNumber: "{{{{ resources.reveal.number | default('', true) }}}}",
    plugins: [RevealNotes],
    width: {{{{ resources.reveal.width | default('960', true) }}}},
    height: {{{{ resources.reveal.height | default('700', true) }}}}
  }}).then(function () {{
    var banner = document.getElementById('idkl-needs-network');
    if (banner) {{ banner.remove(); }}
    fitTallSlides();
  }});
  Reveal.on('slidechanged', typeset);
  Reveal.on('slidechanged', fitTallSlides);
}}());
</script>
{{% endblock footer_js %}}
""",
}


def _reveal_source() -> tuple[Path, str] | None:
    """The installed reveal.js folder and its package version, or None when ``sphinx-revealjs`` is missing."""
    try:
        import sphinx_revealjs
    except ImportError:
        return None
    static = Path(sphinx_revealjs.__file__).resolve().parent / "_static" / "revealjs"
    if not (static / "dist" / "reveal.js").is_file():
        return None
    return static, f"{importlib.metadata.version(REVEAL_PACKAGE)} local-fonts"


def local_reveal(folder: str | Path) -> str | None:
    """Copy reveal.js into ``<folder>/reveal.js/`` unless that copy is complete, and return its URL relative to
    ``folder`` (nbconvert's ``reveal_url_prefix``); None when ``sphinx-revealjs`` is not installed."""
    source = _reveal_source()
    if source is None:
        return None
    static, version = source

    def fill(staging: Path) -> None:
        ignore = shutil.ignore_patterns("*.map", "*.esm.js")
        for name in REVEAL_FILES:
            if (static / name).is_dir():
                shutil.copytree(static / name, staging / name, ignore=ignore)
            else:
                shutil.copy2(static / name, staging / name)
        for theme in (staging / "dist" / "theme").glob("*.css"):  # e.g. "simple" (nbconvert's) imports Google fonts:
            css = theme.read_text(encoding="utf-8")  # offline the theme's fallback fonts are used at once
            theme.write_text(_REMOTE_IMPORT.sub("", css), encoding="utf-8")

    copy_once(Path(folder) / REVEAL_DIR, version, fill, "dist/reveal.js")
    return REVEAL_DIR


def local_plotly(folder: str | Path) -> str:
    """Write the installed plotly.js to ``<folder>/plotly.min.js`` unless it is there already, and return its URL
    relative to ``folder``."""
    from plotly.offline import get_plotlyjs

    target = Path(folder) / PLOTLY_JS_NAME
    script = get_plotlyjs()
    if not target.is_file() or target.stat().st_size != len(script.encode()) or target.read_text() != script:
        atomic_write_text(target, script)
    return PLOTLY_JS_NAME


class OfflineOutputs(Preprocessor):
    """Outputs that need no network: plotly's CDN MathJax tag and its embedded plotly.js taken out of the HTML
    outputs (the page loads ``plotly_url``), plotly figures without an HTML version given one, and every widget
    output replaced by a static snapshot of its saved state (see the module docstring).

    Sets ``resources["offline"]``: ``plotly_url``, ``widgets`` (how many widget outputs were replaced) and
    ``needs_network`` (False; :func:`deck_options` sets it where reveal.js comes from a CDN).
    """

    plotly_url = Unicode("", help="URL of plotly.js loaded by the page ('' keeps the notebook's own copy)").tag(
        config=True
    )
    needs_network = Bool(False, help="the page says that it needs the network (reveal.js from a CDN)").tag(config=True)

    def preprocess(self, nb: Any, resources: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """Rewrite every code cell's outputs and drop the saved widget state (it is in the snapshots now)."""
        state = nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}).get("state", {})
        replaced = 0
        for cell in nb.cells:
            if cell.get("cell_type") != "code":
                continue
            outputs = []
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if _WIDGET_VIEW in data:
                    replaced += 1
                    outputs.extend(widget_snapshot(data[_WIDGET_VIEW].get("model_id", ""), state))
                else:
                    outputs.append(output)
            cell.outputs = [self._clean(output) for output in outputs]
        nb.metadata.pop("widgets", None)
        resources["offline"] = {
            "plotly_url": self.plotly_url,
            "widgets": replaced,
            "needs_network": self.needs_network,
        }
        return nb, resources

    def _clean(self, output: Any) -> Any:
        data = output.get("data")
        if not data:
            return output
        if _PLOTLY_MIME in data and "text/html" not in data:
            data["text/html"] = _figure_html(data[_PLOTLY_MIME])
        if "text/html" in data:
            text = data["text/html"]
            text = "".join(text) if isinstance(text, list) else str(text)
            text = _CDN_SCRIPT.sub("", text)
            if self.plotly_url and "* plotly.js v" in text:
                text = text.replace(f"<script>{_plotlyjs()}</script>", "")
            data["text/html"] = text
        return output


@functools.lru_cache(maxsize=1)
def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def _figure_html(figure: Any) -> str:
    """A plotly figure (its JSON) as an HTML div drawn by the page's plotly.js."""
    import plotly.io as pio

    return str(
        pio.to_html(
            dict(figure),
            include_plotlyjs=False,
            include_mathjax=False,
            full_html=False,
            validate=False,
            default_width="100%",
            default_height=525,
        )
    )


def widget_snapshot(model_id: str, state: dict[str, Any], seen: set[str] | None = None) -> list[Any]:
    """The outputs that stand for the widget ``model_id`` of a notebook's saved widget ``state``.

    Boxes are walked in order; texts (HTML, Label) and progress bars show as they ended, each other control as
    ``description: value`` with :data:`WIDGET_NOTE`, and an Output widget contributes the outputs it last showed
    (a widget among them is replaced in turn; ``seen`` holds the models already shown, so a cycle ends).
    """
    seen = set() if seen is None else seen
    if model_id not in state:
        return [
            _html_output(f'<div class="idkl-widget-note">{html.escape(WIDGET_NOTE)} Its state was not saved.</div>')
        ]
    parts: list[Any] = []
    controls: list[str] = []
    texts: list[str] = []
    drew = False

    def flush() -> None:
        if texts:
            parts.append(_html_output(f'<div class="idkl-widget-snapshot">{"".join(texts)}</div>'))
            texts.clear()

    for kind, value in _walk(model_id, state, seen):
        if kind == "outputs":
            flush()
            for output in value:
                view = output.get("data", {}).get(_WIDGET_VIEW) if isinstance(output, dict) else None
                nested = str(view.get("model_id", "")) if isinstance(view, dict) else None
                if nested is None:
                    parts.append(nbformat.from_dict(output))
                elif nested not in seen:
                    parts.extend(widget_snapshot(nested, state, seen))
            drew = drew or bool(value)
        else:
            texts.append(value)
            controls += [value] if kind == "control" else []
    flush()
    if controls:
        note = f"{WIDGET_NOTE}{' Below: what it showed last, with the setting it had.' if drew else ''}"
        parts.insert(0, _html_output(f'<div class="idkl-widget-note">{html.escape(note)}</div>'))
    return parts


def _walk(model_id: str, state: dict[str, Any], seen: set[str]) -> Iterator[tuple[str, Any]]:
    """``("text" | "control", html)`` and ``("outputs", [output, ...])`` of a widget tree, depth first."""
    model = state.get(model_id)
    if model is None or model_id in seen:
        return
    seen.add(model_id)
    name, values = str(model.get("model_name", "")), model.get("state", {})
    description = html.escape(str(values.get("description") or ""))
    if name == "OutputModel":
        yield "outputs", list(values.get("outputs", []))
    elif "children" in values:
        for child in values["children"]:
            yield from _walk(str(child).removeprefix("IPY_MODEL_"), state, seen)
    elif name in ("HTMLModel", "HTMLMathModel"):
        yield "text", f"<span>{description} {values.get('value', '')}</span>"
    elif name == "LabelModel":
        yield "text", f"<span>{description} {html.escape(str(values.get('value', '')))}</span>"
    elif name in ("FloatProgressModel", "IntProgressModel"):
        low, high, value = (values.get(key, default) for key, default in (("min", 0), ("max", 100), ("value", 0)))
        yield "text", f'<span>{description}<progress value="{value - low}" max="{high - low}"></progress></span>'
    elif name not in _DISPLAY_ONLY and ("value" in values or "index" in values):
        label = description or html.escape(name.removesuffix("Model"))
        yield "control", f'<span class="idkl-widget-control">{label}: {html.escape(_control_value(values))}</span>'


def _control_value(values: dict[str, Any]) -> str:
    """A control's last value as shown: the selected option's label for a selection (Dropdown, ToggleButtons)."""
    labels, index = values.get("_options_labels"), values.get("index")
    if isinstance(labels, list) and isinstance(index, int) and 0 <= index < len(labels):
        return str(labels[index])
    if isinstance(labels, list) and isinstance(index, list | tuple):  # a multiple selection
        return ", ".join(str(labels[i]) for i in index if isinstance(i, int) and 0 <= i < len(labels))
    return str(values.get("value", ""))


def _html_output(text: str) -> Any:
    return nbformat.v4.new_output("display_data", data={"text/html": text, "text/plain": re.sub(r"<[^>]+>", "", text)})


def page_options(folder: str | Path) -> dict[str, Any]:
    """Keyword arguments of nbconvert's ``HTMLExporter`` for a notebook page written in ``folder``: local MathJax
    and plotly.js, no CDN script, widget snapshots (see the module docstring)."""
    from jinja2 import DictLoader

    return {
        **nbconvert_options(folder),
        "extra_loaders": [DictLoader(_TEMPLATES)],
        "template_file": PAGE_TEMPLATE,
        "preprocessors": [OfflineOutputs(plotly_url=local_plotly(folder))],
    }


def deck_options(folder: str | Path) -> dict[str, Any]:
    """Keyword arguments of nbconvert's ``SlidesExporter`` for a deck written in ``folder``: those of
    :func:`page_options` and the local reveal.js. Without ``sphinx-revealjs`` the deck loads reveal.js from
    nbconvert's CDN and says that it needs the network; the first such export in ``folder`` warns."""
    folder = Path(folder)
    options = {**page_options(folder), "template_file": DECK_TEMPLATE}
    prefix = local_reveal(folder)
    if prefix is not None:
        options["reveal_url_prefix"] = prefix
        return options
    options["preprocessors"] = [OfflineOutputs(plotly_url=local_plotly(folder), needs_network=True)]
    if folder.resolve() not in _warned:
        _warned.add(folder.resolve())
        warnings.warn(
            f"{REVEAL_PACKAGE} is not installed: the slide decks in {folder} load reveal.js from the internet and "
            f"show as one long page without a network (pip install {REVEAL_PACKAGE}, then export them again)",
            stacklevel=2,
        )
    return options
