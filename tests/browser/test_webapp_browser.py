"""The web app in headless chromium against a real `attnlens serve`: result files cannot script
the app, our reports still open (a per-head link shows that head alone), "Mask this token"
shows the position asked for and is offered only where it works, every state is in the URL,
one theme for the page and its views, the compare map's scale / highlight / token labels,
one colour per head index across models, the favicon and the API docs under their policy."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import PAIR, tiny_model
from server_helpers import running_server, save_tiny_mlm

pytest.importorskip("fastapi")

CORNER = "c => { const r = c.getBoundingClientRect(); return {x: r.left, y: r.top}; }"
ISSUE_TEXT = "The [MASK] module provides functions for working with files."
SPLIT_TEXT = "I bought fresh strawberries."  # [CLS] i bought fresh straw ##berries . [SEP]
EVIL = """<!DOCTYPE html><title>start</title><script>
(async () => {
  const out = [];
  for (const [name, init] of [["post", {method: "POST", headers: {"Content-Type": "application/json"},
                                         body: JSON.stringify({text_a: "from a result file"})}], ["get", {}]]) {
    try {
      const r = await fetch(name === "post" ? "/api/capture" : "/api/models", init);
      out.push(`${name}:${r.status}`);
    } catch (e) { out.push(`${name}:blocked`); }
  }
  let cookie; try { cookie = typeof document.cookie; } catch (e) { cookie = "blocked"; }
  document.title = `done ${out.join(" ")} cookie:${cookie}`;
})();
</script>"""
EVIL_SVG = """<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>
fetch("/api/models").then((r) => document.documentElement.setAttribute("data-result", "get:" + r.status),
                          () => document.documentElement.setAttribute("data-result", "get:blocked"));
</script></svg>"""


def png_1x1() -> bytes:
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", (1).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00")
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def write_report(folder: Path) -> None:
    """An atlas report as `attnlens atlas` writes it (report page + per-head view pages), without the plots' cost."""
    from attnlens import atlas, capture
    from attnlens.analysis.report import render_html, view_heads, write_views

    folder.mkdir(parents=True)
    model = tiny_model("bert", seed=4)
    at = atlas([PAIR, ("The cat sat on the mat.", "It was warm.")], model=model, progress=False)
    views = write_views(capture(*PAIR, model=model), folder, view_heads(at))
    (folder / "report.html").write_text(render_html(at, views=views, images=True))
    (folder / "scores.json").write_text("{}")
    for name in ["labels", *(f"heatmap_{p}" for p in at.pattern_names)]:
        (folder / f"{name}.png").write_bytes(png_1x1())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`attnlens serve --port 0`: the default model (12 heads), the shipped tiny checkpoint (MLM) and a
    random tiny masked-LM model with the default tokenizer (4 heads); a results folder."""
    from attnlens.pretraining.predict import shipped_checkpoint

    tmp = tmp_path_factory.mktemp("webapp")
    mlm = save_tiny_mlm(tmp / "tiny-mlm")
    results = tmp / "results"
    write_report(results / "atlas-demo")
    (results / "sent").mkdir()
    (results / "sent" / "scores.json").write_text("{}")
    (results / "sent" / "evil.html").write_text(EVIL)
    (results / "sent" / "evil.svg").write_text(EVIL_SVG)
    shipped = str(shipped_checkpoint())
    args = ["--model", "default", "--model", shipped, "--model", str(mlm), "--results", str(results)]
    with running_server(args, cwd=tmp) as url:
        yield {"url": url, "mlm": str(mlm), "shipped": shipped}


class AppProbe:
    def __init__(self, page, base):
        self.page, self.base = page, base
        self.errors, self.requests = [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())

    def view(self, where):
        return self.page.evaluate("s => ({...document.querySelector(s + ' .attnlens').dataset})", where)

    def wait_drawn(self, where, view="head", count=1):
        self.page.wait_for_function(
            """([s, v, n]) => { const e = document.querySelector(s + ' .attnlens');
                return e && +(e.dataset[v + 'Drawn'] || 0) >= n; }""", arg=[where, view, count], timeout=90000)

    def click_token(self, where, index):
        """Click token `index` in the left (query) column of a head view: pins it."""
        box = self.page.evaluate("""([s, i]) => { const v = document.querySelector(s + ' .attnlens').attnlens;
            const r = v.headCanvas.getBoundingClientRect(), l = v.layout;
            return {x: r.left + l.left + 6, y: r.top + l.top + i * l.row + l.row / 2}; }""", [where, index])
        self.page.mouse.click(box["x"], box["y"])
        self.page.wait_for_function(
            "([s, i]) => document.querySelector(s + ' .attnlens').dataset.selected === 'query:' + i",
            arg=[where, index])

    def tokens(self, where):
        return self.page.evaluate("s => document.querySelector(s + ' .attnlens').attnlens.tokens", where)

    def pixel(self, selector, x, y):
        """[r, g, b, a] of a canvas at CSS pixel (x, y)."""
        return self.page.evaluate("""([s, x, y]) => { const c = document.querySelector(s), k = c.width / c.clientWidth;
            return Array.from(c.getContext('2d').getImageData(Math.round(x * k), Math.round(y * k), 1, 1).data); }""",
                                  [selector, x, y])

    def offsite(self):
        return [u for u in self.requests if not u.startswith(self.base)]


@pytest.fixture
def on_page(browser_thread, server):
    def run(fn):
        def job(browser):
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            try:
                return fn(AppProbe(page, server["url"]))
            finally:
                page.close()

        return browser_thread.run(job)

    return run


def test_result_files_cannot_script_the_app(on_page, server):
    def body(p):
        page = p.page
        page.goto(server["url"] + "results/sent/evil.html")
        page.wait_for_function("() => document.title.startsWith('done')", timeout=30000)
        assert page.title() == "done post:blocked get:blocked cookie:blocked"  # an opaque origin, no requests
        page.goto(server["url"] + "results/sent/evil.svg")
        page.wait_for_function("() => document.documentElement.getAttribute('data-result')", timeout=30000)
        assert page.evaluate("() => document.documentElement.getAttribute('data-result')") == "get:blocked"
        assert p.offsite() == []

    on_page(body)


def test_our_report_opens_and_a_head_link_shows_that_head(on_page, server):
    def body(p):
        page = p.page
        page.goto(server["url"] + "results/atlas-demo/report.html")
        page.wait_for_load_state("load")
        assert page.evaluate("() => [...document.images].every((i) => i.complete && i.naturalWidth === 1)")
        link = page.locator("a[href^='views/']").first
        href = link.get_attribute("href")
        layer, head = map(int, re.match(r"views/L(\d+)-H(\d+)\.html#heads=(\d+)$", href).groups()[:2])
        link.click()
        page.wait_for_selector("[data-head-drawn]", timeout=60000)
        state = page.evaluate("() => ({...document.querySelector('.attnlens').dataset})")
        assert state["heads"] == str(head) and state["layer"] == str(layer) and state["head"] == str(head)
        assert int(page.eval_on_selector(".al-head-canvas", "c => +c.dataset.lines")) > 0
        page.go_back()
        page.wait_for_selector("a[href^='views/']")  # and back to the report
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_mask_shows_the_predictions_of_the_position_asked_for(on_page, server):
    def body(p):
        page = p.page
        page.goto(f"{server['url']}?tab=explore&model={quote(server['shipped'])}&a={quote(ISSUE_TEXT)}")
        p.wait_drawn("#explore-view")
        tokens = p.tokens("#explore-view")
        files, existing = tokens.index("files"), tokens.index("[MASK]")
        p.click_token("#explore-view", files)
        page.click("#explore-view .al-mask")
        page.wait_for_selector("#explore-view .al-mask-result .al-pred")
        groups = page.locator("#explore-view .al-mask-group")
        assert groups.count() == 2  # one per mask, each labelled with its position and token
        first, second = groups.nth(0).inner_text(), groups.nth(1).inner_text()
        assert f"#{files} \u201cfiles\u201d" in first and "[MASK]" not in first.split(":")[0]
        assert f"#{existing} [MASK]" in second and "already in the text" in second
        expected = page.evaluate("""([model, text, position]) => fetch('/api/predict/fill-mask', {method: 'POST',
            headers: {'Content-Type': 'application/json'},
            body: JSON.stringify({model, text_a: text, position, whole_word: true, top_k: 5})}).then(r => r.json())""",
                                 [server["shipped"], ISSUE_TEXT, files])
        by_position = {q["position"]: [c["token"] for c in q["candidates"]] for q in expected["predictions"]}
        shown = groups.nth(0).locator(".al-pred").all_inner_texts()
        assert [s.rsplit(" ", 1)[0] for s in shown] == by_position[files]
        assert by_position[files] != by_position[existing]  # (otherwise the test could not tell them apart)
        p.wait_drawn("#masked-view")
        assert f"already had [MASK] at #{existing}" in page.text_content("#masked-title")
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_mask_is_offered_only_where_it_works(on_page, server):
    def body(p):
        page = p.page
        page.goto(f"{server['url']}?model={quote(server['mlm'])}&a={quote(SPLIT_TEXT)}")
        p.wait_drawn("#explore-view")
        tokens = p.tokens("#explore-view")
        assert tokens[4:6] == ["straw", "##berries"]
        for special in (0, len(tokens) - 1):  # [CLS], [SEP]: nothing to offer
            p.click_token("#explore-view", special)
            assert page.locator("#explore-view .al-mask").count() == 0
        p.click_token("#explore-view", 5)  # a piece of a split word: its whole word
        assert page.text_content("#explore-view .al-mask") == "Mask this word (2 pieces)"
        page.click("#explore-view .al-mask")
        page.wait_for_selector("#explore-view .al-mask-result .al-pred")
        labels = page.locator("#explore-view .al-mask-group strong").all_inner_texts()
        assert labels == ["Predictions for #4 \u201cstraw\u201d:", "Predictions for #5 \u201c##berries\u201d:"]
        p.wait_drawn("#masked-view")
        assert p.tokens("#masked-view")[3:7] == ["fresh", "[MASK]", "[MASK]", "."]
        page.wait_for_function("() => new URLSearchParams(location.search).get('mask') === '5'")
        # a reload shows the same prediction again
        page.reload()
        p.wait_drawn("#masked-view")
        page.wait_for_selector("#explore-view .al-mask-result .al-pred")
        assert page.locator("#explore-view .al-mask-group").count() == 2
        # another token: the old prediction and the masked view go
        p.click_token("#explore-view", 3)
        page.wait_for_function("() => document.querySelector('#masked-pane').hidden")
        assert page.locator("#explore-view .al-mask-result").count() == 0
        assert page.text_content("#explore-view .al-mask") == "Mask this token"
        page.wait_for_function("() => !new URLSearchParams(location.search).has('mask')")
        # an error shows once, where it was asked for
        page.route("**/api/predict/fill-mask", lambda route: route.fulfill(
            status=422, content_type="application/json", body=json.dumps({"detail": "no luck this time"})))
        page.click("#explore-view .al-mask")
        page.wait_for_selector("#explore-view .al-mask-result.al-error")
        assert page.inner_text("body").count("no luck this time") == 1
        assert page.evaluate("() => document.body.dataset.status") != "error"
        assert [e for e in p.errors if "422" not in e] == [] and p.offsite() == []

    on_page(body)


def test_every_state_is_in_the_url(on_page, server):
    def body(p):
        page = p.page
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready]")
        page.fill("#explore-form input[name=a]", PAIR[0])
        page.fill("#explore-form input[name=b]", PAIR[1])
        page.click("#explore-form button[type=submit]")
        p.wait_drawn("#explore-view")
        page.click('.app-tabs button[data-tab="compare"]')
        page.click('.app-tabs button[data-tab="explore"]')
        assert "a=I+went+to+the+store." in page.url and "b=At+the+store" in page.url and "tab=explore" in page.url
        # a view's state: layer, pinned token, view
        page.select_option('#explore-view select[aria-label="Layer"] >> nth=0', "2")
        p.click_token("#explore-view", 3)
        page.wait_for_function("() => location.search.includes('layer=2') && location.search.includes('pin=q3')")
        page.reload()
        p.wait_drawn("#explore-view")
        state = p.view("#explore-view")
        assert state["layer"] == "2" and state["selected"] == "query:3"
        assert page.input_value("#explore-form input[name=a]") == PAIR[0]
        assert page.input_value("#explore-form input[name=b]") == PAIR[1]
        page.click('#explore-view button[data-view="neuron"]')
        page.wait_for_function("() => location.search.includes('view=neuron')")
        # back and forward between tabs
        page.click('.app-tabs button[data-tab="results"]')
        page.wait_for_selector("#atlas-list a")
        page.go_back()
        page.wait_for_function("() => !document.querySelector('#tab-explore').hidden")
        assert p.view("#explore-view")["view"] == "neuron"
        # Compare: its inputs and the chosen head
        page.click('.app-tabs button[data-tab="compare"]')
        page.fill("#compare-form input[name=a]", PAIR[0])
        page.fill("#compare-form input[name=a2]", PAIR[0])
        page.select_option("#compare-form select[name=model2]", server["mlm"])
        page.click("#compare-form button[type=submit]")
        page.wait_for_selector("#diff:not([hidden])", timeout=90000)
        geo = page.eval_on_selector("#diff-map", CORNER)
        page.mouse.click(geo["x"] + 34 + 28 * 2 + 10, geo["y"] + 18 + 28 * 1 + 10)  # layer 1, head 2
        page.wait_for_function("() => location.search.includes('dh=1%3A2')")
        assert "a=I+went" in page.url and "a1=I+went" in page.url  # Explore's input stays in the URL too
        page.select_option('#compare-right select[aria-label="Layer"] >> nth=0', "0")  # one side's own state
        page.wait_for_function("() => new URLSearchParams(location.search).get('r_layer') === '0'")
        page.reload()
        page.wait_for_selector("#diff-head:not([hidden])", timeout=90000)
        assert page.evaluate("() => document.body.dataset.diffHead") == "1:2"
        for side, layer in (("#compare-left", "1"), ("#compare-right", "0")):
            page.wait_for_function("s => document.querySelector(s + ' .attnlens').dataset.heads === '2'", arg=side)
            assert p.view(side)["layer"] == layer
        page.click('.app-tabs button[data-tab="explore"]')  # Explore loads from the URL when shown
        p.wait_drawn("#explore-view")
        assert p.view("#explore-view")["layer"] == "2"
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_theme_compare_map_scale_labels_and_head_colours(on_page, server):
    def body(p):
        page = p.page
        # left: the first served model (the default one, 12 heads); right: a 4-head one with the same tokenizer
        page.goto(f"{server['url']}?tab=compare&a1={quote(PAIR[0])}&model2={quote(server['mlm'])}&a2={quote(PAIR[0])}")
        p.wait_drawn("#compare-left")
        p.wait_drawn("#compare-right")
        # one theme: the header's button sets the page and every view, and a view's own button sets the page
        page.emulate_media(color_scheme="light")
        start = page.evaluate("() => document.documentElement.dataset.theme")
        other = "dark" if start == "light" else "light"
        page.click("#theme")
        assert page.evaluate("() => document.documentElement.dataset.theme") == other
        background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert background == ("rgb(1, 4, 9)" if other == "dark" else "rgb(246, 248, 250)")
        for side in ("#compare-left", "#compare-right"):
            assert p.view(side)["theme"] == other
        page.wait_for_function(f"() => location.search.includes('theme={other}')")
        page.click("#compare-left .al-theme")
        assert page.evaluate("() => document.documentElement.dataset.theme") == start
        assert p.view("#compare-right")["theme"] == start
        # the same head index has one colour in a 12-head and a 4-head model
        colours = page.evaluate("""() => ['#compare-left', '#compare-right'].map((s) =>
            [...document.querySelectorAll(s + ' .al-head')].map((b) => getComputedStyle(b).backgroundColor))""")
        assert len(colours[0]) == 12 and len(colours[1]) == 4 and colours[0][:4] == colours[1]
        assert len(set(colours[0])) == 12
        # the difference map: a colour scale (strong at the top, faint at the bottom) and the chosen head outlined
        geo = page.eval_on_selector("#diff-map", "c => ({...c.dataset})")
        x = float(geo["scaleX"]) + 6
        top = p.pixel("#diff-map", x, float(geo["scaleTop"]) + 3)
        bottom = p.pixel("#diff-map", x, float(geo["scaleTop"]) + float(geo["scaleHeight"]) - 3)
        assert top[3] > 200 and bottom[3] < 60 and top[0] > 150
        rect = page.eval_on_selector("#diff-map", CORNER)
        page.mouse.click(rect["x"] + 34 + 28 * 2 + 10, rect["y"] + 18 + 28 * 1 + 10)
        page.wait_for_selector("#diff-head:not([hidden])")
        assert page.eval_on_selector("#diff-map", "c => c.dataset.selected") == "1:2"
        accent = page.evaluate("() => getComputedStyle(document.documentElement).getPropertyValue('--app-accent')")
        edge = p.pixel("#diff-map", 34 + 28 * 2 + 2, 18 + 28 * 1 + 14)
        assert "#%02x%02x%02x" % tuple(edge[:3]) == accent.strip().lower()
        # the head-difference matrix has the tokens along both sides
        m = page.eval_on_selector("#diff-matrix", "c => ({...c.dataset})")
        label, cell, n = float(m["label"]), float(m["cell"]), int(m["tokens"])
        assert label > 20 and n == len(p.tokens("#compare-left"))
        inked = page.evaluate("""([label, cell, n]) => {
            const c = document.querySelector('#diff-matrix'), k = c.width / c.clientWidth;
            const ink = (x, y, w, h) => {  // painted pixels in a CSS-pixel rectangle
                const d = c.getContext('2d').getImageData(x * k, y * k, w * k, h * k).data;
                let s = 0; for (let i = 3; i < d.length; i += 4) s += d[i] > 0; return s; };
            return {rows: ink(0, label, label - 2, n * cell), cols: ink(label, 0, n * cell, label - 2)}; }""",
                              [label, cell, n])
        assert inked["rows"] > 50 and inked["cols"] > 50
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_favicon_and_api_docs_under_their_policy(on_page, server):
    def body(p):
        page = p.page
        r = page.request.get(server["url"] + "favicon.ico")
        assert r.status == 200 and r.headers["content-type"] == "image/svg+xml"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready]")
        assert page.evaluate("() => document.querySelector('link[rel=icon]').href").endswith("/favicon.ico")
        page.goto(server["url"] + "docs")
        page.wait_for_selector(".opblock", timeout=60000)  # Swagger UI runs under the page's hash-based policy
        assert p.errors == [] and p.offsite() == []

    on_page(body)
