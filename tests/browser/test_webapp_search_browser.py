"""The web app's "Find similar contexts" in headless chromium against a real `attnlens serve` (a tiny model,
a six-sentence search corpus): pin a token, find its contexts, the panel lists them with the token
highlighted and the head's targets; the search is in the URL (a reload shows it again); a hit whose text is
an HTML tag runs no script; a standalone page (no server) does not offer the search."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from conftest import tiny_model
from server_helpers import running_server, save_tiny_mlm
from views_helpers import HTML_TOKEN

pytest.importorskip("fastapi")

EVIL = f"{HTML_TOKEN} went to the store"  # HTML_TOKEN is one token of the served model
CORPUS = ["I went to the store.", "The cat saw a dog.", EVIL + ".", "She reads the book in the garden.",
          "At the store, I bought fresh strawberries.", "Python 3.11.2 was released."]
MARKUP = "img, svg, b, i, iframe, object, embed, script:not([src])"  # elements the app never makes itself


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    model = save_tiny_mlm(tmp / "tiny-html", seed=1, extra_tokens=[HTML_TOKEN])
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    args = ["--model", str(model), "--search-corpus", str(corpus), "--search-limit", "0"]
    with running_server(args, cwd=tmp, env={"ATTNLENS_CACHE": str(tmp / "cache")}) as url:
        yield {"url": url, "model": str(model), "tmp": tmp}


def watch(page, base=None):
    """Console/page errors, dialogs and off-site requests of `page` (requests outside `base` are refused)."""
    seen = {"errors": [], "dialogs": [], "offsite": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    if base:
        page.on("request", lambda r: None if r.url.startswith(base) else seen["offsite"].append(r.url))
        page.route(lambda url: not url.startswith(base), lambda route: route.abort())
    return seen


def pin(page, index):
    """Click token `index` in the head view's query column (pins it)."""
    box = page.evaluate("""i => { const v = document.querySelector('#explore-view .attnlens').attnlens;
        const r = v.headCanvas.getBoundingClientRect(), l = v.layout;
        return {x: r.left + l.left + 6, y: r.top + l.top + i * l.row + l.row / 2}; }""", index)
    page.mouse.click(box["x"], box["y"])
    page.wait_for_function("i => document.querySelector('#explore-view .attnlens').dataset.selected === 'query:' + i",
                           arg=index)


def hits(page):
    return page.evaluate("""() => [...document.querySelectorAll('#search-hits .app-hit')].map((li) => ({
        title: li.title, position: +li.dataset.position,
        match: [...li.querySelectorAll('.app-hit-match')].map((m) => m.textContent),
        targets: li.querySelectorAll('.app-hit-target').length,
        looked: li.querySelector('.app-hit-looked').textContent}))""")


def test_find_similar_contexts(browser_thread, server):
    def job(browser):
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        seen = watch(page, server["url"])
        try:
            page.goto(f"{server['url']}?model={quote(server['model'])}&a={quote(EVIL)}")
            page.wait_for_selector("#explore-view [data-head-drawn]", timeout=90000)
            tokens = page.evaluate("() => document.querySelector('#explore-view .attnlens').attnlens.tokens")
            assert tokens[1] == HTML_TOKEN
            page.select_option('#explore-view select[aria-label="Layer"] >> nth=0', "2")
            page.dblclick('#explore-view .al-head[data-head="3"]')  # only head 3: the search's head
            page.wait_for_function("() => document.querySelector('#explore-view .attnlens').dataset.heads === '3'")
            pin(page, 0)  # [CLS]: nothing to search
            assert page.locator("#explore-view .al-search").count() == 0
            pin(page, 1)
            button = page.locator("#explore-view .al-search")
            assert button.inner_text() == "Find similar contexts (layer 2 head 3)"
            button.click()
            page.wait_for_selector("#search-hits .app-hit", timeout=60000)
            found = hits(page)
            assert len(found) == 10
            assert found[0]["title"] == EVIL + "." and found[0]["position"] == 1 and found[0]["match"] == [HTML_TOKEN]
            assert all(len(h["match"]) == 1 and 1 <= h["targets"] <= 3 and h["looked"].startswith("looked at: #")
                       for h in found)
            assert "layer 2 head 3" in page.text_content("#search-title")
            assert "below" in page.text_content("#explore-view .al-search-result")
            assert page.evaluate("m => [...document.querySelectorAll(m)].map((e) => e.outerHTML)", MARKUP) == []
            page.wait_for_function("() => new URLSearchParams(location.search).get('search') === '2:3:1'")
            # another ranking: the same search by attention rows, in the URL too
            page.select_option("#search-by", "attention")
            page.wait_for_function("() => (document.body.dataset.searched || '').endsWith(':attention')")
            page.wait_for_function("() => new URLSearchParams(location.search).get('search_by') === 'attention'")
            # a reload shows the same search again
            page.reload()
            page.wait_for_function("() => (document.body.dataset.searched || '') === '2:3:1:attention'", timeout=60000)
            assert len(hits(page)) == 10  # (by attention rows a random tiny model's self-match may tie with others)
            assert page.locator("#explore-view .al-search-result").count() == 1
            # another pinned token: the old contexts go
            pin(page, 3)
            page.wait_for_function("() => document.querySelector('#search-pane').hidden")
            page.wait_for_function("() => !new URLSearchParams(location.search).has('search')")
            # an error shows once, in the head view
            page.route("**/api/search", lambda route: route.fulfill(
                status=422, content_type="application/json", body='{"detail": "no index today"}'))
            page.click("#explore-view .al-search")
            page.wait_for_selector("#explore-view .al-search-result.al-error")
            assert page.inner_text("body").count("no index today") == 1
            assert page.evaluate("() => document.querySelector('#search-pane').hidden")
            assert seen["dialogs"] == [] and seen["offsite"] == []
            assert [e for e in seen["errors"] if "422" not in e] == []
        finally:
            page.close()

    browser_thread.run(job)


def test_a_standalone_page_offers_no_search(browser_thread, tmp_path):
    from attnlens import capture
    from attnlens.views.html import to_html

    path = tmp_path / "view.html"
    path.write_text(to_html(capture("I went to the store.", model=tiny_model("bert", seed=2))))

    def job(browser):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        seen = watch(page)
        try:
            page.goto(path.as_uri())
            page.wait_for_selector("[data-head-drawn]", timeout=30000)
            box = page.evaluate("""() => { const v = document.querySelector('.attnlens').attnlens;
                const r = v.headCanvas.getBoundingClientRect(), l = v.layout;
                return {x: r.left + l.left + 6, y: r.top + l.top + 2 * l.row + l.row / 2}; }""")
            page.mouse.click(box["x"], box["y"])
            page.wait_for_function("() => document.querySelector('.attnlens').dataset.selected === 'query:2'")
            assert page.locator(".al-search").count() == 0 and page.locator(".al-mask").count() == 0
            assert seen["errors"] == []
        finally:
            page.close()

    browser_thread.run(job)
