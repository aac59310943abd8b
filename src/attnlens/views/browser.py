"""Headless Chromium (through Playwright) for pictures of a page and for the browser tests.

Uses the system's chromium (Debian package); Playwright's own browser download is not needed.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

from ..errors import AttnlensError

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    """The chromium executable on PATH, if any."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def headless_chromium():
    """A Playwright Browser on the system chromium; closed on exit."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415  (playwright is optional: pictures only)
    except ImportError:
        raise AttnlensError("pictures need playwright: pip install playwright") from None
    exe = chromium_path()
    if exe is None:
        raise AttnlensError("pictures need chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def offline(page) -> None:
    """Fail every request that is not for a file:, data: or blob: URL."""
    page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), lambda route: route.abort())


def save_png(html_path: str | Path, png_path: str | Path, *, view: str = "head", width: int = 1200,
             timeout_s: float = 60.0, browser=None) -> Path:
    """Open a page written by to_html, show `view` and save a full-page PNG.

    browser: a Playwright Browser to use (default: start headless chromium for this call).
    """
    if view not in ("head", "model", "neuron"):
        raise AttnlensError(f"view must be head, model or neuron, not {view!r}")
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if not html_path.is_file():
        raise AttnlensError(f"no page at {html_path}")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if browser is None:
        with headless_chromium() as own:
            return save_png(html_path, png_path, view=view, width=width, timeout_s=timeout_s, browser=own)
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        offline(page)
        page.goto(html_path.as_uri())
        page.wait_for_selector("[data-head-drawn]", timeout=timeout_s * 1000)
        if view != "head":
            page.click(f"button[data-view={view}]")
            page.wait_for_selector(f"[data-{view}-drawn]", timeout=timeout_s * 1000)
        page.add_style_tag(content=".attnlens .al-scroll{max-height:none;overflow:visible}")
        page.screenshot(path=str(png_path), full_page=True)
    finally:
        page.close()
    return png_path
