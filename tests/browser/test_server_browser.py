"""The web app in headless chromium against a real `attnlens serve` on a free loopback port:
type, submit, switch layer, open the neuron view, mask a token, compare, browse results,
reload from a shared URL; no console error, no request to any other host."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from conftest import PAIR
from server_helpers import running_server, save_tiny_mlm
from views_helpers import HTML_TOKEN

pytest.importorskip("fastapi")

INJECTION = "</script><img src=x onerror=alert(1)>"
HTML_FOLDER = "<img src=x onerror=alert(9)>"  # a folder name that is a tag (no "/" in it): a model, a results folder
MARKUP = "img, svg, b, i, iframe, object, embed, script:not([src])"  # elements the app never makes itself


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`attnlens serve --port 0` with the default model, a tiny masked-LM model and one whose folder name
    and one added token are HTML; yields its URL."""
    tmp = tmp_path_factory.mktemp("serve")
    mlm = save_tiny_mlm(tmp / "tiny-mlm")
    html_mlm = save_tiny_mlm(tmp / HTML_FOLDER, seed=1, extra_tokens=[HTML_TOKEN])
    html_results = tmp / "results" / f"atlas-{HTML_FOLDER}"
    html_results.mkdir(parents=True)
    (html_results / "scores.json").write_text("{}")
    (html_results / "report.html").write_text("<!DOCTYPE html><title>html</title><p>report</p>")
    results = tmp / "results" / "atlas-demo"
    results.mkdir(parents=True)
    (results / "scores.json").write_text(json.dumps({"heads": []}))
    (results / "report.html").write_text("<!DOCTYPE html><title>atlas demo</title><p>report</p>")
    args = ["--model", "default", "--model", str(mlm), "--model", str(html_mlm), "--results", str(tmp / "results")]
    with running_server(args, cwd=tmp) as url:
        yield {"url": url, "mlm": str(mlm), "html_mlm": str(html_mlm)}


class AppProbe:
    def __init__(self, page, base):
        self.page, self.base = page, base
        self.errors, self.requests, self.dialogs = [], [], []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())

    def view(self, where):
        return self.page.evaluate("s => ({...document.querySelector(s + ' .attnlens').dataset})", where)

    def wait_drawn(self, where, view, count=1):
        self.page.wait_for_function(
            "([s, v, n]) => { const e = document.querySelector(s + ' .attnlens'); "
            "return e && +(e.dataset[v + 'Drawn'] || 0) >= n; }",
            arg=[where, view, count], timeout=60000)

    def canvas_hash(self, selector):
        return self.page.evaluate("s => document.querySelector(s).toDataURL().length + ':' "
                                  "+ document.querySelector(s).toDataURL().slice(-200)", selector)

    def offsite(self):
        return [u for u in self.requests if not u.startswith(self.base)]


@pytest.fixture
def on_page(browser_thread, server):
    """on_page(fn): runs fn(probe) with a fresh page on the browser's thread."""

    def run(fn):
        def job(browser):
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            try:
                return fn(AppProbe(page, server["url"]))
            finally:
                page.close()

        return browser_thread.run(job)

    return run


def test_type_submit_switch_layer_neuron_view_and_share(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready]")
        page.fill("#explore-form input[name=a]", PAIR[0])
        page.fill("#explore-form input[name=b]", PAIR[1])
        page.click("#explore-form button[type=submit]")
        p.wait_drawn("#explore-view", "head")
        state = p.view("#explore-view")
        assert state["layer"] == "0"
        assert int(page.eval_on_selector("#explore-view .al-head-canvas", "c => +c.dataset.lines")) > 0
        before = p.canvas_hash("#explore-view .al-head-canvas")
        page.select_option('#explore-view select[aria-label="Layer"] >> nth=0', "3")
        p.wait_drawn("#explore-view", "head", 2)
        assert p.view("#explore-view")["layer"] == "3"
        assert p.canvas_hash("#explore-view .al-head-canvas") != before
        page.click('#explore-view button[data-view="neuron"]')
        p.wait_drawn("#explore-view", "neuron")
        assert p.view("#explore-view")["view"] == "neuron"
        # the URL encodes the input: opening it again draws the same capture without typing
        shared = page.url
        assert "a=I+went+to+the+store." in shared and "b=At+the+store" in shared
        capture_id = page.evaluate("() => document.body.dataset.captureId")
        page.goto(shared)
        p.wait_drawn("#explore-view", "head")
        assert page.evaluate("() => document.body.dataset.captureId") == capture_id
        assert page.input_value("#explore-form input[name=b]") == PAIR[1]
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_a_short_capture_loads_in_one_get_and_a_long_one_layer_by_layer(on_page, server):
    """The page fetches a short capture's view data in one GET (no meta GET: the capture's answer has it); with
    no bundle offered it loads each buffer on its own, and both give the same bytes."""

    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(f"{server['url']}?a={quote(PAIR[0])}&b={quote(PAIR[1])}")
        p.wait_drawn("#explore-view", "head")
        page.click('#explore-view button[data-view="model"]')
        p.wait_drawn("#explore-view", "model")
        data = [u for u in p.requests if "/api/captures/" in u]
        assert len(data) == 1 and data[0].endswith("/buffers"), data
        same = page.evaluate("""async () => {
            const { sourceFromFetch } = await import("/static/views/attnlens.js");
            const id = document.body.dataset.captureId, base = `/api/captures/${id}`;
            const bundled = await sourceFromFetch(base);
            const single = await sourceFromFetch(base, {}, { ...bundled.meta, bundle: null });
            const names = Object.keys(bundled.meta.buffers);
            for (const name of names) {
              const [a, b] = [await bundled.load(name), await single.load(name)];
              if (a.length !== b.length || a.some((x, i) => x !== b[i])) return name;
            }
            return names.length;
        }""")
        assert isinstance(same, int) and same > 0, same
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_mask_a_token_shows_predictions_and_masked_attention(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(f"{server['url']}?tab=explore&model={quote(server['mlm'])}&a={quote(PAIR[0])}&b={quote(PAIR[1])}")
        p.wait_drawn("#explore-view", "head")
        # click token #5 ("store") in the left column to pin it; the view offers "Mask this token"
        box = page.evaluate("""() => { const v = document.querySelector('#explore-view .attnlens').attnlens;
            const r = v.headCanvas.getBoundingClientRect(), l = v.layout;
            return {x: r.left + l.left + 6, y: r.top + l.top + 5 * l.row + l.row / 2}; }""")
        page.mouse.click(box["x"], box["y"])
        page.wait_for_selector("#explore-view .al-mask")
        page.click("#explore-view .al-mask")
        page.wait_for_selector("#explore-view .al-mask-result .al-pred")
        assert page.locator("#explore-view .al-mask-result .al-pred").count() == 5
        assert "store" in page.text_content("#explore-view .al-mask-result")
        p.wait_drawn("#masked-view", "head")
        assert page.is_visible("#masked-pane")
        tokens = page.evaluate("() => document.querySelector('#masked-view .attnlens').attnlens.tokens")
        assert tokens[5] == "[MASK]" and tokens[4] == "the"
        assert "masked" in page.text_content("#masked-title")
        # the masked view follows the original's layer
        page.select_option('#explore-view select[aria-label="Layer"] >> nth=0', "2")
        page.wait_for_function("() => document.querySelector('#masked-view .attnlens').dataset.layer === '2'")
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_compare_two_models_and_browse_results(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(server["url"])
        page.wait_for_selector("body[data-ready]")
        page.click('.app-tabs button[data-tab="compare"]')
        page.fill("#compare-form input[name=a]", PAIR[0])
        page.fill("#compare-form input[name=a2]", PAIR[0])
        page.select_option("#compare-form select[name=model2]", server["mlm"])
        page.click("#compare-form button[type=submit]")
        page.wait_for_selector("#diff:not([hidden])", timeout=60000)
        p.wait_drawn("#compare-left", "head")
        p.wait_drawn("#compare-right", "head")
        assert "total variation" in page.text_content("#diff-measure")
        rect = page.eval_on_selector("#diff-map",
                                     "c => { const r = c.getBoundingClientRect(); return {x: r.left, y: r.top}; }")
        page.mouse.click(rect["x"] + 34 + 28 * 2 + 10, rect["y"] + 18 + 28 * 1 + 10)  # layer 1, head 2
        page.wait_for_selector("#diff-head:not([hidden])")
        assert page.evaluate("() => document.body.dataset.diffHead") == "1:2"
        for side in ("#compare-left", "#compare-right"):
            page.wait_for_function("s => document.querySelector(s + ' .attnlens').dataset.heads === '2'", arg=side)
            assert p.view(side)["layer"] == "1"
        assert "compare" in page.url and "model2=" in page.url
        page.click('.app-tabs button[data-tab="results"]')
        page.wait_for_selector("#atlas-list a")
        assert "atlas-demo/report.html" in page.text_content("#atlas-list")
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_injection_text_runs_nothing(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        other = quote('a "quoted" & <b>bold</b>')
        page.goto(f"{server['url']}?a={quote(INJECTION)}&b={other}")
        p.wait_drawn("#explore-view", "head")
        assert p.dialogs == [] and page.locator("img[src=x]").count() == 0
        assert INJECTION in page.text_content("#explore-view .al-sentences")
        assert p.errors == [] and p.offsite() == []

    on_page(body)


def test_html_in_model_names_tokens_and_results_stays_text(on_page, server):
    """HTML through the whole app: a model whose folder name is a tag (the model picker, the views'
    header, an error message), a token that is a tag (an added token of that model's tokenizer, kept
    whole: the head view's info line, the mask result and the masked view's title, the neuron view's
    picker and tooltip), sentences, and a results folder named like a tag. All of it is text."""
    name = server["html_mlm"]
    a, b = f"{HTML_TOKEN} went home", '<b>bold</b> & "q"'
    markup = "s => [...document.querySelectorAll(s)].map(e => e.outerHTML)"

    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(f"{server['url']}?model={quote(name)}&a={quote(a)}&b={quote(b)}")
        p.wait_drawn("#explore-view", "head")
        options = page.eval_on_selector_all("#explore-form select[name=model] option",
                                            "os => os.map(o => [o.value, o.textContent])")
        assert [name, f"{name} (3\u00d74, MLM)"] in options
        assert page.input_value("#explore-form select[name=model]") == name
        assert name in page.text_content("#explore-view .al-model")
        sentences = page.text_content("#explore-view .al-sentences")
        assert a in sentences and b in sentences
        view = "document.querySelector('#explore-view .attnlens').attnlens"
        assert page.evaluate(f"() => {view}.tokens[1]") == HTML_TOKEN
        # head view: pin the token; the info line names it; mask it
        at = page.evaluate(f"""() => {{ const v = {view}, r = v.headCanvas.getBoundingClientRect(), l = v.layout;
            return {{x: r.left + l.left + 6, y: r.top + l.top + l.row * 1.5}}; }}""")
        page.mouse.click(at["x"], at["y"])
        page.wait_for_selector("#explore-view .al-mask")
        assert f"#1 \u201c{HTML_TOKEN}\u201d" in page.text_content("#explore-view .al-info")
        page.click("#explore-view .al-mask")
        page.wait_for_selector("#explore-view .al-mask-result .al-pred")
        p.wait_drawn("#masked-view", "head")
        assert HTML_TOKEN in page.text_content("#explore-view .al-mask-result")
        assert HTML_TOKEN in page.text_content("#masked-title")
        assert page.eval_on_selector("#masked-title", "e => e.childElementCount") == 0
        # neuron view: the query picker and a key row's tooltip
        page.click('#explore-view button[data-view="neuron"]')
        p.wait_drawn("#explore-view", "neuron")
        options = page.eval_on_selector_all('#explore-view select[aria-label="Query token"] option',
                                            "os => os.map(o => o.textContent)")
        assert options[1] == f"1: {HTML_TOKEN}"
        at = page.evaluate(f"""() => {{ const v = {view}, c = v.neuronCellCenter('k', 1, 0);
            const r = v.el.querySelector('.al-neuron-canvas').getBoundingClientRect();
            return {{x: r.left + c.x, y: r.top + c.y}}; }}""")
        page.mouse.move(at["x"], at["y"])
        page.wait_for_function("() => { const t = document.querySelector('#explore-view .al-tooltip'); "
                               "return t && !t.hidden && t.dataset.kind === 'k' && t.dataset.row === '1'; }")
        text, children = page.eval_on_selector("#explore-view .al-tooltip", "t => [t.textContent, t.childElementCount]")
        assert f"#1 \u201c{HTML_TOKEN}\u201d" in text and children == 0
        page.wait_for_timeout(300)
        assert page.evaluate(markup, MARKUP) == []
        assert p.dialogs == [] and p.errors == [] and p.offsite() == []
        # an error message that names the model: the status line
        page.goto(f"{server['url']}?model={quote(name)}&a={quote('word ' * 300)}")
        page.wait_for_selector("body[data-status=error]")
        assert name in page.text_content("#status")
        assert page.eval_on_selector("#status", "e => e.childElementCount") == 0
        # the results list: a folder named like a tag
        page.click('.app-tabs button[data-tab="results"]')
        page.wait_for_selector("#atlas-list a")
        texts = "es => es.map(e => e.textContent)"
        assert f"atlas-{HTML_FOLDER}" in page.eval_on_selector_all("#atlas-list strong", texts)
        links = page.eval_on_selector_all("#atlas-list a", texts)
        assert f"atlas-{HTML_FOLDER}/report.html" in links
        page.wait_for_timeout(300)
        assert page.evaluate(markup, MARKUP) == []
        assert p.dialogs == [] and p.offsite() == []

    on_page(body)


def test_errors_show_as_a_message(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(f"{server['url']}?a={quote('word ' * 300)}")
        page.wait_for_selector("body[data-status=error]")
        assert "tokens" in page.text_content("#status")
        assert p.offsite() == []

    on_page(body)


def test_api_docs_render_offline(on_page, server):
    def body(app_page):
        p, page = app_page, app_page.page
        page.goto(server["url"] + "docs")
        page.wait_for_selector(".opblock", timeout=60000)
        assert page.locator(".opblock").count() >= 8
        assert "/api/predict/fill-mask" in page.text_content("body")
        assert p.offsite() == []

    on_page(body)
