"""Decks and notebook pages name no CDN: reveal.js and plotly.js copied into the folder, widget snapshots in place of
empty widgets, and an honest deck when reveal.js is not installed (the browser checks are in
test_offline_browser.py)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from nbconvert import HTMLExporter
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from idkl_lib.report import offline as offline_assets
from idkl_lib.report.offline import NEEDS_NETWORK_NOTE, WIDGET_NOTE, local_reveal, page_options, widget_snapshot
from idkl_lib.report.slides import export_slides
from idkl_lib.runs import MATHJAX_DIR, PLOTLY_JS_NAME, REVEAL_DIR

DROPDOWN, OUTPUT, HBOX, VBOX, BAR = "dd01", "out01", "hbox01", "vbox01", "bar01"


def _model(name: str, **state: object) -> dict[str, object]:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}


def _figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[0, 1, 2], y=[3, 1, 2], name="drawn by the widget"), layout={"title": "last drawn"})


def _widget_state() -> dict[str, object]:
    """A saved identity browser (VBox(HBox(Dropdown), Output showing a plotly figure)) and a tqdm-like progress bar."""
    drawn = {"output_type": "display_data", "metadata": {}}
    drawn["data"] = {"application/vnd.plotly.v1+json": json.loads(_figure().to_json()), "text/plain": "<Figure>"}
    return {
        VBOX: _model("VBoxModel", children=[f"IPY_MODEL_{HBOX}", f"IPY_MODEL_{OUTPUT}"]),
        HBOX: _model("HBoxModel", children=[f"IPY_MODEL_{DROPDOWN}"]),
        DROPDOWN: _model("DropdownModel", description="identity", index=1, _options_labels=["pid 0", "pid 7 <b>"]),
        OUTPUT: _model("OutputModel", outputs=[drawn]),
        BAR: _model("HBoxModel", children=["IPY_MODEL_bartext", "IPY_MODEL_barvalue"]),
        "bartext": _model("HTMLModel", description="", value="epoch 1/1: 94%"),
        "barvalue": _model("FloatProgressModel", description="", value=15.0, min=0.0, max=16.0),
    }


def _view(model_id: str) -> object:
    data = {"application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2}, "text/plain": "x"}
    return new_output("display_data", data=data)


def _notebook(path: Path) -> Path:
    """Title with an equation, speaker notes, a figure shown through plotly's notebook renderer (its first output
    embeds plotly.js and every figure asks for MathJax from a CDN), the two widgets."""
    renderer = pio.renderers["notebook"]
    init_html = f"<script>window.PlotlyConfig = {{}};</script>\n<script>{offline_assets._plotlyjs()}</script>"
    figure = new_code_cell("fig.show()", metadata={"slideshow": {"slide_type": "slide"}})
    figure.outputs = [
        new_output("display_data", data={"text/html": init_html}),
        new_output("display_data", data=renderer.to_mimebundle(_figure().to_dict())),
    ]
    widgets = new_code_cell("browser", metadata={"slideshow": {"slide_type": "slide"}})
    widgets.outputs = [_view(VBOX), _view(BAR), _view("never-saved")]
    nb = new_notebook(
        cells=[
            new_markdown_cell(
                "# Talk\n\nThe loss $\\mathcal{L} = \\sum_i x_i^2$", metadata={"slideshow": {"slide_type": "slide"}}
            ),
            new_markdown_cell(
                "Say that the batch alternates modalities.", metadata={"slideshow": {"slide_type": "notes"}}
            ),
            figure,
            widgets,
        ]
    )
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {"state": _widget_state(), "version_major": 2}
    }
    nbformat.write(nb, path)
    return path


def _external(page: str) -> list[str]:
    """Every URL the page would load (``src``, stylesheet ``href``, ES-module imports) that is not relative."""
    urls = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", page)
    urls += re.findall(r"<link[^>]*\shref=\"([^\"]+)\"", page)
    urls += re.findall(r"import\s*\(?\s*['\"]([^'\"]+)['\"]", page)
    return [url for url in urls if re.match(r"^([a-z]+:|/)", url)]


def test_deck_loads_reveal_and_plotly_from_the_folder(tmp_path: Path) -> None:
    deck_path = export_slides(_notebook(tmp_path / "01_talk.ipynb"))
    assert deck_path is not None
    deck = deck_path.read_text()
    assert f'src="{REVEAL_DIR}/dist/reveal.js"' in deck and f'src="{REVEAL_DIR}/plugin/notes/notes.js"' in deck
    assert f'href="{REVEAL_DIR}/dist/reveal.css"' in deck and f'src="{PLOTLY_JS_NAME}"' in deck
    assert f'src="{MATHJAX_DIR}/MathJax.js?config=' in deck
    assert _external(deck) == [], "the deck names nothing outside its folder"
    assert "require.min.js" not in deck and "jquery" not in deck.lower() and "mermaid" not in deck
    assert '<aside class="notes">' in deck and "batch alternates modalities" in deck
    assert NEEDS_NETWORK_NOTE not in deck
    reveal = tmp_path / REVEAL_DIR
    for name in ("dist/reveal.js", "dist/reveal.css", "dist/theme/simple.css", "plugin/notes/notes.js", "LICENSE"):
        assert (reveal / name).is_file(), name
    assert not list(reveal.rglob("*.map")) and not list(reveal.rglob("*.esm.js"))
    assert "fonts.googleapis" not in (reveal / "dist/theme/simple.css").read_text()  # nbconvert's theme, offline
    assert (tmp_path / PLOTLY_JS_NAME).read_text() == offline_assets._plotlyjs()


def test_page_outputs_need_no_network(tmp_path: Path) -> None:
    nb = _notebook(tmp_path / "01_talk.ipynb")
    page, resources = HTMLExporter(**page_options(tmp_path)).from_filename(str(nb))
    assert _external(page) == [] and "require.min.js" not in page and "cdnjs" not in page and "unpkg" not in page
    assert offline_assets._plotlyjs()[:2000] not in page, "the notebook's embedded plotly.js is left out"
    assert len(page) < 1_000_000 and f'src="{PLOTLY_JS_NAME}"' in page
    assert resources["offline"] == {"plotly_url": PLOTLY_JS_NAME, "widgets": 3, "needs_network": False}
    assert "widget-view+json" not in page and "widget-state+json" not in page
    assert page.count('class="plotly-graph-div"') == 2  # the figure and the one the widget last drew
    assert WIDGET_NOTE in page and "identity: pid 7 &lt;b&gt;" in page and "Its state was not saved" in page
    bar = re.search(r"<progress [^>]*>", page)
    assert bar and 'value="15.0"' in bar.group() and 'max="16.0"' in bar.group() and "epoch 1/1: 94%" in page


def test_widget_snapshot_keeps_the_tree_order() -> None:
    parts = widget_snapshot(VBOX, _widget_state())
    texts = [str(p.get("data", {}).get("text/html", "")) for p in parts]
    assert WIDGET_NOTE in texts[0] and "what it showed last" in texts[0]
    assert "identity: pid 7" in texts[1] and "application/vnd.plotly.v1+json" in parts[2]["data"]
    bar = widget_snapshot(BAR, _widget_state())  # no control: no note, only what it showed
    assert len(bar) == 1 and WIDGET_NOTE not in bar[0]["data"]["text/html"]


def test_assets_are_copied_once_and_a_stale_copy_is_replaced(tmp_path: Path) -> None:
    assert local_reveal(tmp_path) == REVEAL_DIR
    main = tmp_path / REVEAL_DIR / "dist" / "reveal.js"
    stamp = main.stat().st_mtime_ns
    assert local_reveal(tmp_path) == REVEAL_DIR and main.stat().st_mtime_ns == stamp
    (tmp_path / REVEAL_DIR / ".version").write_text("0.0.1")
    (tmp_path / REVEAL_DIR / "stale.js").write_text("old")
    local_reveal(tmp_path)
    assert not (tmp_path / REVEAL_DIR / "stale.js").exists() and main.is_file()
    assert not list(tmp_path.glob(f".{REVEAL_DIR}.*")), "no temporary copy left behind"


def test_without_reveal_a_deck_says_it_needs_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_assets, "_reveal_source", lambda: None)
    monkeypatch.setattr(offline_assets, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decks = [export_slides(_notebook(tmp_path / f"0{i}_talk.ipynb")) for i in (1, 2)]
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "sphinx-revealjs is not installed" in messages[0], messages
    for deck in decks:
        assert deck is not None
        text = deck.read_text()
        assert NEEDS_NETWORK_NOTE in text and 'id="idkl-needs-network"' in text
        assert re.search(r'src="https://[^"]*reveal\.js[^"]*/dist/reveal\.js"', text)
    assert not (tmp_path / REVEAL_DIR).exists()


def test_a_widget_shown_inside_an_output_widget_is_replaced_too() -> None:
    state = _widget_state()
    inner = {"output_type": "display_data", "metadata": {}, "data": _view("label01")["data"]}
    loop = {"output_type": "display_data", "metadata": {}, "data": _view(VBOX)["data"]}  # shows its own parent
    state[OUTPUT]["state"]["outputs"] = [inner, loop]  # type: ignore[index]
    state["label01"] = _model("LabelModel", description="", value="query 3 of 5")
    parts = widget_snapshot(VBOX, state)
    texts = " ".join(str(p.get("data", {}).get("text/html", "")) for p in parts)
    assert "query 3 of 5" in texts and "widget-view" not in json.dumps(parts)
    assert texts.count(WIDGET_NOTE) == 1, "the parent shown inside itself ends the walk"
