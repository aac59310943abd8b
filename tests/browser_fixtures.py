"""Browser fixtures (a pytest plugin of tests/conftest.py): Debian chromium driven by Playwright, every
non-file request failed and recorded.

Without chromium or playwright the browser tests are skipped, except under CI (the `CI`
environment variable set), where every JavaScript claim rests on them: there they fail.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from attnlens.views.browser import CHROMIUM_ARGS, chromium_path


def require_browser() -> str:
    """The chromium executable; skips the test without one (fails under CI)."""
    missing = None
    if chromium_path() is None:
        missing = "chromium is not installed (Debian: apt-get install chromium; `make browser` does it as root)"
    else:
        try:
            import playwright.sync_api  # noqa: F401  (only: is playwright installed?)
        except ImportError:
            missing = "the playwright Python package is not installed (pip install -e '.[test]')"
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {missing}", pytrace=False)
        pytest.skip(missing)
    return chromium_path()


@pytest.fixture(scope="session")
def browser():
    executable = require_browser()
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class PageProbe:
    """A page plus what it logged: console errors, page errors, dialogs and network requests."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), lambda route: route.abort())

    def open(self, path, *, wait="head"):
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_selector(f"[data-{wait}-drawn]", timeout=30000)
        return self

    def state(self):
        return self.page.evaluate("() => ({...document.querySelector('.attnlens').dataset})")

    def canvas_hash(self, selector):
        url = self.page.evaluate("s => document.querySelector(s).toDataURL()", selector)
        return hashlib.sha1(url.encode()).hexdigest()

    def wait_drawn(self, view, count):
        self.page.wait_for_function(
            "([v, n]) => +(document.querySelector('.attnlens').dataset[v + 'Drawn'] || 0) >= n", arg=[view, count],
            timeout=30000)

    def drawn(self, view):
        return int(self.state().get(f"{view}Drawn", 0))


@pytest.fixture
def probe(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    yield PageProbe(page)
    page.close()


@pytest.fixture(scope="module")
def browser_thread():
    """Chromium on its own thread, for the web-app tests (the views' tests keep a session-wide
    Playwright on the main one, and Playwright's sync API cannot run twice on one thread)."""
    from server_helpers import BrowserThread

    thread = BrowserThread(require_browser(), CHROMIUM_ARGS)
    yield thread
    thread.close()
