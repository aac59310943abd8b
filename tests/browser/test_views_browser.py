"""The standalone page in headless chromium: offline, interactive, numbers true to the capture, injection-proof."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from attnlens import capture
from attnlens.views.html import static_text, to_html
from attnlens.views.widget import head_view
from conftest import tiny_model
from views_helpers import (
    HTML_MODEL,
    HTML_TEXT_A,
    HTML_TEXT_B,
    HTML_TOKEN,
    HTML_TOKENS,
    hover_neuron_cell,
    html_capture,
    synthetic_capture,
)

INJECTION = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def pair_page(default_capture, tmp_path_factory):
    path = tmp_path_factory.mktemp("views") / "pair.html"
    to_html(default_capture, path)
    return path


def test_loads_offline_without_errors(probe, pair_page):
    probe.open(pair_page)
    assert probe.errors == []
    assert all(url.startswith("file:") for url in probe.requests), probe.requests
    assert probe.page.locator(".al-error").count() == 0
    assert int(probe.page.eval_on_selector(".al-head-canvas", "c => +c.dataset.lines")) > 0


def test_layer_selector_heads_and_filter_change_the_drawing(probe, pair_page):
    probe.open(pair_page)
    page, canvas = probe.page, ".al-head-canvas"
    base = probe.canvas_hash(canvas)
    page.select_option('select[aria-label="Layer"] >> nth=0', "3")
    probe.wait_drawn("head", 2)
    assert probe.state()["layer"] == "3"
    layer3 = probe.canvas_hash(canvas)
    assert layer3 != base
    # click a head block: hidden; double-click: only it
    page.click(".al-head[data-head='0']")
    probe.wait_drawn("head", 3)
    assert probe.state()["heads"] == ",".join(str(h) for h in range(1, 12))
    assert probe.canvas_hash(canvas) != layer3
    page.dblclick(".al-head[data-head='5']")
    page.wait_for_function("() => document.querySelector('.attnlens').dataset.heads === '5'")
    solo = probe.canvas_hash(canvas)
    # sentence-pair filter A -> B
    lines_all = int(page.eval_on_selector(canvas, "c => +c.dataset.lines"))
    page.select_option('select[aria-label="Sentence filter"] >> nth=0', "AB")
    page.wait_for_function("() => document.querySelector('.attnlens').dataset.filter === 'AB'")
    probe.wait_drawn("head", probe.drawn("head"))
    assert probe.canvas_hash(canvas) != solo
    assert int(page.eval_on_selector(canvas, "c => +c.dataset.lines")) < lines_all
    assert probe.errors == []


def test_token_hover_and_click_select_one_token(probe, pair_page):
    probe.open(pair_page)
    page, canvas = probe.page, ".al-head-canvas"
    base, lines = probe.canvas_hash(canvas), int(page.eval_on_selector(canvas, "c => +c.dataset.lines"))
    box = page.locator(canvas).bounding_box()
    row = page.evaluate("() => document.querySelector('.attnlens').attnlens.layout")
    y = box["y"] + row["top"] + 5 * row["row"] + row["row"] / 2
    page.mouse.move(box["x"] + row["xl"] - 10, y)  # left column: query 5
    page.wait_for_function("() => document.querySelector('.attnlens').dataset.selected === 'query:5'")
    assert probe.canvas_hash(canvas) != base
    assert int(page.eval_on_selector(canvas, "c => +c.dataset.lines")) < lines
    page.mouse.move(box["x"] + row["xr"] + 10, y)  # right column: key 5
    page.wait_for_function("() => document.querySelector('.attnlens').dataset.selected === 'key:5'")
    page.mouse.click(box["x"] + row["xr"] + 10, y)  # pin it, then leave
    page.mouse.move(0, 0)
    page.wait_for_timeout(100)
    assert probe.state()["selected"] == "key:5"
    assert "Attention to #5" in page.inner_text(".al-info")


def test_model_view_opens_a_head(probe, pair_page):
    probe.open(pair_page)
    page = probe.page
    page.click("button[data-view=model]")
    probe.wait_drawn("model", 1)
    geo = page.evaluate("() => document.querySelector('.attnlens').attnlens.modelGeo")
    box = page.locator(".al-model-canvas").bounding_box()
    page.mouse.click(box["x"] + geo["left"] + 2 * (geo["cell"] + geo["pad"]) + 5,
                     box["y"] + geo["top"] + 4 * (geo["cell"] + geo["pad"]) + 5)
    page.wait_for_function("() => document.querySelector('.attnlens').dataset.view === 'head'")
    state = probe.state()
    assert (state["layer"], state["head"], state["heads"]) == ("4", "2", "2")
    assert probe.errors == []


def test_neuron_view_numbers_equal_the_capture(probe, default_capture, tmp_path):
    cap, layer, head, query = default_capture, 1, 4, 3
    path = tmp_path / "n.html"
    to_html(cap, path, views=["neuron", "head", "model"], layer=layer, head=head, query=query)
    probe.open(path, wait="neuron")
    half = 0.5e-3  # values are shown with 3 decimals
    q = cap.queries[layer, head, query].astype(np.float64)
    k = cap.keys[layer, head].astype(np.float64)
    for dim in (0, 7, 31):
        shown = hover_neuron_cell(probe.page, "q", query, dim)
        assert abs(shown - q[dim]) <= half + abs(q[dim]) * 2 ** -11 + 1e-9
    for j in (0, 5, cap.num_tokens - 1):
        for dim in (3, 30):
            shown = hover_neuron_cell(probe.page, "k", j, dim)
            assert abs(shown - k[j, dim]) <= half + abs(k[j, dim]) * 2 ** -11 + 1e-9
            shown = hover_neuron_cell(probe.page, "qk", j, dim)
            assert abs(shown - q[dim] * k[j, dim]) <= half + abs(q[dim] * k[j, dim]) * 2 ** -10 + 1e-9
        shown = hover_neuron_cell(probe.page, "dot", j)
        assert abs(shown - q @ k[j]) <= half + np.abs(q * k[j]).sum() * 2 ** -10
        shown = hover_neuron_cell(probe.page, "softmax", j)
        assert abs(shown - cap.attentions[layer, head, query, j]) <= half + 3e-3
    # the pickers change what is drawn
    before = probe.canvas_hash(".al-neuron-canvas")
    probe.page.select_option('select[aria-label="Query token"]', "6")
    probe.wait_drawn("neuron", 2)
    assert probe.canvas_hash(".al-neuron-canvas") != before
    assert hover_neuron_cell(probe.page, "q", 6, 0) == pytest.approx(cap.queries[layer, head, 6, 0], abs=half + 5e-3)
    probe.page.select_option('select[aria-label="Head"]', "0")
    probe.wait_drawn("neuron", 3)
    assert probe.state()["head"] == "0"
    at = probe.page.evaluate("() => document.querySelector('.attnlens').attnlens.neuronCellCenter('k', 9, 0)")
    box = probe.page.locator(".al-neuron-canvas").bounding_box()
    probe.page.mouse.click(box["x"] + 20, box["y"] + at["y"])  # a key's label: becomes the query
    probe.page.wait_for_function("() => document.querySelector('.attnlens').dataset.query === '9'")
    assert probe.errors == []


def test_injection_sentence_runs_nothing(probe, tmp_path):
    cap = capture(INJECTION, 'a "quoted" & <b>bold</b>', model=tiny_model("bert"))
    path = tmp_path / "inject.html"
    to_html(cap, path)
    probe.open(path)
    page = probe.page
    assert probe.dialogs == [] and probe.errors == []
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert INJECTION in page.inner_text(".al-sentences")
    page.click("button[data-view=neuron]")
    probe.wait_drawn("neuron", 1)
    page.click("button[data-view=model]")
    probe.wait_drawn("model", 1)
    assert probe.dialogs == [] and probe.errors == []
    assert all(url.startswith("file:") for url in probe.requests)


MARKUP = "img, svg, b, i, iframe, object, embed, script:not([type])"  # elements that page text could have made


def _markup(page):
    """Elements in the page that none of attnlens's own code makes (they could only come from text parsed as HTML)."""
    return page.evaluate("s => [...document.querySelectorAll(s)].map(e => e.outerHTML)", MARKUP)


def _tooltip(page):
    return page.eval_on_selector(".al-tooltip", "t => ({text: t.textContent, children: t.childElementCount})")


def test_html_tokens_sentences_and_model_name_stay_text_in_every_view(probe, tmp_path):
    """A hand-built capture keeps each HTML token whole (real WordPiece would split it into harmless
    characters): the head view's info line, the neuron view's pickers and hover tooltips and the
    header show them as text, and nothing runs."""
    cap = html_capture(layers=2, heads=3)
    path = tmp_path / "html.html"
    to_html(cap, path)
    probe.open(path)
    page = probe.page
    assert HTML_MODEL in page.text_content(".al-model")
    sentences = page.text_content(".al-sentences")
    assert HTML_TEXT_A in sentences and HTML_TEXT_B in sentences
    # head view: hovering each token names it in the info line
    box = page.locator(".al-head-canvas").bounding_box()
    lay = page.evaluate("() => document.querySelector('.attnlens').attnlens.layout")
    for i, token in enumerate(HTML_TOKENS):
        page.mouse.move(box["x"] + lay["xl"] - 10, box["y"] + lay["top"] + i * lay["row"] + lay["row"] / 2)
        page.wait_for_function("i => document.querySelector('.attnlens').dataset.selected === 'query:' + i", arg=i)
        assert f"#{i} \u201c{token}\u201d" in page.text_content(".al-info")
        assert page.eval_on_selector(".al-info", "e => e.querySelectorAll('*').length") == 1  # one <span>, no markup
    page.mouse.move(0, 0)
    # neuron view: the query picker's options, the key rows' and the query's tooltips
    page.click("button[data-view=neuron]")
    probe.wait_drawn("neuron", 1)
    options = page.eval_on_selector_all('select[aria-label="Query token"] option',
                                        "os => os.map(o => [o.value, o.textContent])")
    assert options == [[str(i), f"{i}: {t}"] for i, t in enumerate(HTML_TOKENS)]
    assert page.eval_on_selector('select[aria-label="Query token"]', "s => s.querySelectorAll('option *').length") == 0
    for i, token in enumerate(HTML_TOKENS):
        for kind in ("k", "softmax"):
            hover_neuron_cell(probe.page, kind, i, 1)
            tip = _tooltip(page)
            assert f"#{i} \u201c{token}\u201d" in tip["text"] and tip["children"] == 0, (kind, i, tip)
    page.select_option('select[aria-label="Query token"]', "1")
    probe.wait_drawn("neuron", 2)
    hover_neuron_cell(probe.page, "q", 1, 0)
    tip = _tooltip(page)
    assert tip["text"].startswith(f"q #1 \u201c{HTML_TOKEN}\u201d dim 0 = ") and tip["children"] == 0
    # model view tooltip
    page.click("button[data-view=model]")
    probe.wait_drawn("model", 1)
    geo = page.evaluate("() => document.querySelector('.attnlens').attnlens.modelGeo")
    box = page.locator(".al-model-canvas").bounding_box()
    page.mouse.move(box["x"] + geo["left"] + geo["cell"] + geo["pad"] + 5, box["y"] + geo["top"] + 5)
    page.wait_for_function(
        "() => { const t = document.querySelector('.al-tooltip'); return !t.hidden && t.dataset.head === '1'; }")
    page.wait_for_timeout(200)  # an injected handler would have fired by now
    assert _markup(page) == []
    assert probe.dialogs == [] and probe.errors == []
    assert all(url.startswith("file:") for url in probe.requests)


def test_tooltip_shows_text_not_html(probe, tmp_path):
    """The tooltip itself (dom.js Tooltip.show), given HTML: it must show it as text."""
    path = tmp_path / "tip.html"
    to_html(synthetic_capture(["a", "b"]), path)
    probe.open(path)
    page = probe.page
    shown = page.evaluate("""(html) => { const v = document.querySelector('.attnlens').attnlens;
        v.tooltip.show({clientX: 10, clientY: 10}, html, {kind: "k"});
        const t = document.querySelector('.al-tooltip');
        return {text: t.textContent, children: t.childElementCount, hidden: t.hidden}; }""", HTML_TOKEN)
    assert shown == {"text": HTML_TOKEN, "children": 0, "hidden": False}
    page.wait_for_timeout(200)
    assert probe.dialogs == [] and _markup(page) == []


def test_atlas_report_and_its_view_pages_keep_html_as_text(probe, tmp_path):
    """The atlas report (analysis/report.py) of a model whose name is HTML, on a corpus named with
    HTML, with view pages of a hand-built example whose tokens and sentences are HTML."""
    pytest.importorskip("matplotlib")
    from attnlens import atlas

    lm = tiny_model("bert")
    lm.name = HTML_MODEL
    result = atlas([("I went to the store.", "At the store, I bought fresh strawberries."), "The cat sat."], model=lm,
                   progress=False)
    result.corpus_name = "<svg onload=alert(7)>"
    report = result.save(tmp_path / "atlas", example=html_capture(layers=3, heads=4), explain=False, causal=False)
    page = probe.page
    page.goto(report.resolve().as_uri())
    page.wait_for_selector("h1")
    assert page.text_content("h1") == f"Attention atlas of {HTML_MODEL}"
    assert page.title() == f"attnlens atlas: {HTML_MODEL}"
    assert "<svg onload=alert(7)>" in page.text_content("body")
    injected = page.evaluate("""() => [...document.querySelectorAll("svg, script, iframe, img:not([src$='.png'])")]
        .map(e => e.outerHTML)""")
    assert injected == []
    views = sorted((tmp_path / "atlas" / "views").glob("*.html"))
    assert views
    probe.open(views[0])
    assert HTML_MODEL in page.text_content(".al-model") and HTML_TEXT_A in page.text_content(".al-sentences")
    options = page.eval_on_selector_all('select[aria-label="Query token"] option', "os => os.map(o => o.textContent)")
    assert options == [f"{i}: {t}" for i, t in enumerate(HTML_TOKENS)]
    page.wait_for_timeout(200)
    assert _markup(page) == []
    assert probe.dialogs == [] and probe.errors == []
    assert all(url.startswith("file:") for url in probe.requests)


def test_theme_toggle_redraws(probe, pair_page):
    probe.open(pair_page)
    before = probe.canvas_hash(".al-head-canvas")
    theme = probe.state()["theme"]
    probe.page.click(".al-theme")
    probe.wait_drawn("head", 2)
    assert probe.state()["theme"] != theme
    assert probe.canvas_hash(".al-head-canvas") != before


def test_long_input_draws_every_view(probe, tmp_path):
    tokens = [f"tok{i}" for i in range(512)]
    cap = synthetic_capture(tokens, [0] * 300 + [1] * 212, layers=3, heads=4, d_head=16, text_b="b")
    path = tmp_path / "long.html"
    to_html(cap, path)
    probe.open(path)
    lines = int(probe.page.eval_on_selector(".al-head-canvas", "c => +c.dataset.lines"))
    assert 0 < lines < 4 * 512 * 512 // 20  # faint lines are not drawn
    for view in ("model", "neuron"):
        probe.page.click(f"button[data-view={view}]")
        probe.wait_drawn(view, 1)
    assert probe.errors == []


def test_widget_module_renders_from_binary_traits(probe, default_capture, tmp_path):
    """The anywidget path: the widget's own ES module, a model whose buffers are DataViews."""
    widget = head_view(default_capture)
    state = {"meta": widget.meta, "options": widget.options,
             "buffers": {k: base64.b64encode(v).decode() for k, v in widget.buffers.items()}}
    page = probe.page
    page.set_content(
        f"<!DOCTYPE html><html><head><style>{widget._css}</style></head><body><div id=host></div></body></html>")
    page.evaluate("""async ([esm, state]) => {
        const mod = await import(URL.createObjectURL(new Blob([esm], {type: "text/javascript"})));
        const bytes = (b64) => { const s = atob(b64), u = new Uint8Array(s.length + 3);
            for (let i = 0; i < s.length; i++) u[i + 3] = s.charCodeAt(i);
            return new DataView(u.buffer, 3, s.length); };
        const buffers = Object.fromEntries(Object.entries(state.buffers).map(([k, v]) => [k, bytes(v)]));
        const model = { get: (name) => name === "buffers" ? buffers : state[name], on() {}, off() {} };
        mod.default.render({ model, el: document.getElementById("host") });
    }""", [widget._esm, state])
    probe.wait_drawn("head", 1)
    assert probe.state()["view"] == "head"
    assert int(page.eval_on_selector(".al-head-canvas", "c => +c.dataset.lines")) > 0
    assert probe.errors == []
    assert widget._esm == static_text("attnlens.js")
    assert json.loads(widget.options)["views"][0] == "head"


def test_drawn_attention_equals_the_capture(probe, pair_page, default_capture):
    probe.open(pair_page)
    cap = default_capture
    for layer in (0, 4):
        drawn = np.array(probe.page.evaluate(
            "l => document.querySelector('.attnlens').attnlens.data.attention(l).then(a => Array.from(a))", layer))
        assert np.abs(drawn.reshape(cap.attentions[layer].shape) - cap.attentions[layer]).max() <= 5e-3


def test_fetch_source_and_mask_token_hook(browser, default_capture):
    """The server shim: meta and buffers fetched per name; a host-provided maskToken action."""
    from attnlens.views.payload import build_payload

    meta, buffers = build_payload(default_capture)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    served = []

    def serve(route):
        name = route.request.url.split("/cap/", 1)[1]
        served.append(name)
        if name == "meta":
            route.fulfill(body=json.dumps(meta), content_type="application/json")
        else:
            route.fulfill(body=buffers[name], content_type="application/octet-stream")

    page.route("http://attnlens.test/cap/**", serve)
    page.set_content("<div id=host></div>")
    page.evaluate("""async (esm) => {
        const mod = await import(URL.createObjectURL(new Blob([esm], {type: "text/javascript"})));
        const actions = { maskToken: async (i) => ({ items: [{ label: "<img src=x onerror=alert(1)>", value: 0.75 },
                                                             { label: "b", value: 0.25 }] }) };
        const source = await mod.sourceFromFetch("http://attnlens.test/cap", actions);
        mod.createView(document.getElementById("host"), source);
    }""", static_text("attnlens.js"))
    page.wait_for_selector("[data-head-drawn]")
    assert served[0] == "meta" and set(served[1:]) == {"queries/0", "keys/0"}  # one layer fetched, not all
    box = page.locator(".al-head-canvas").bounding_box()
    lay = page.evaluate("() => document.querySelector('.attnlens').attnlens.layout")
    page.mouse.click(box["x"] + lay["xl"] - 10, box["y"] + lay["top"] + 3 * lay["row"] + 2)
    page.click(".al-mask")
    page.wait_for_selector(".al-pred")
    assert page.inner_text(".al-mask-result").count("0.750") == 1
    assert page.locator(".al-mask-result img").count() == 0
    page.close()


def test_png_of_a_view(browser, pair_page, tmp_path):
    from attnlens.views.browser import save_png

    for view in ("head", "neuron"):
        out = save_png(pair_page, tmp_path / f"{view}.png", view=view, browser=browser)
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width == 1200 and height > 300


def test_single_sentence_page(probe, tmp_path):
    cap = capture("Attention is all you need.", model=tiny_model("distilbert"))
    path = tmp_path / "single.html"
    to_html(cap, path, theme="dark")
    probe.open(path)
    page = probe.page
    assert page.locator('select[aria-label="Sentence filter"]').count() == 0
    assert probe.state()["theme"] == "dark"
    for view in ("model", "neuron"):
        page.click(f"button[data-view={view}]")
        probe.wait_drawn(view, 1)
    assert probe.errors == []
