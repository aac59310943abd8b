"""A standalone, offline HTML page with the head, model and neuron views of one Capture.

The page inlines the package's front-end module (attnlens.js, joined from static/src/ by
views/bundle.py), its stylesheet and the payload (views/payload.py): meta as JSON inside
``<script type="application/json">`` with ``<``, ``>``, ``&`` written as \\u escapes, buffers
as base64 inside ``<script type="application/octet-stream">``. It requests nothing from any host.
"""

from __future__ import annotations

import base64
import html
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..capturing import Capture
from ..errors import AttnlensError
from ..io import atomic_write_text
from .bundle import BUNDLE_NAME, bundle_text
from .payload import build_payload

VIEWS = ("head", "model", "neuron")


@lru_cache(maxsize=None)
def static_text(name: str) -> str:
    """The text of one file of views/static/; "attnlens.js" is the module built from static/src/ (views/bundle.py)."""
    if name == BUNDLE_NAME:
        return bundle_text()
    return resources.files("attnlens.views").joinpath("static", name).read_text(encoding="utf-8")


def script_json(value) -> str:
    """JSON that is safe inside a <script> element (no <, >, & or line separators)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _inline(text: str, tag: str) -> str:
    """Refuse a static file that could close its own element early."""
    lowered = text.lower()
    if f"</{tag}" in lowered or "<!--" in lowered:
        raise AttnlensError(f"static file would break out of its <{tag}> element")
    return text


def view_options(views=VIEWS, layer: int | None = None, head: int | None = None, query: int | None = None,
                 theme: str | None = None) -> dict:
    """Options the front end reads: which views (tabs, first shown first), start layer/head/token, theme."""
    views = [views] if isinstance(views, str) else list(views)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise AttnlensError(f"views must be among {', '.join(VIEWS)}; got {', '.join(map(str, unknown)) or 'none'}")
    if theme not in (None, "light", "dark"):
        raise AttnlensError(f"theme must be 'light' or 'dark', not {theme!r}")
    options = {"views": views, "layer": layer, "head": head, "query": query, "theme": theme}
    return {k: v for k, v in options.items() if v is not None}


def checked_payload(cap: Capture, views=VIEWS, layer: int | None = None, head: int | None = None,
                    query: int | None = None, theme: str | None = None):
    """(meta, buffers, options) of a view of `cap`, after checking every argument; shared by all hosts."""
    if not isinstance(cap, Capture):
        raise AttnlensError(f"a view needs a Capture, not {type(cap).__name__}")
    if layer is not None or head is not None:
        cap.check_layer_head(layer or 0, head or 0)
    if query is not None and not 0 <= query < cap.num_tokens:
        raise AttnlensError(f"token {query} is out of range: the input has tokens 0..{cap.num_tokens - 1}")
    meta, buffers = build_payload(cap)
    return meta, buffers, view_options(views, layer, head, query, theme)


def to_html(cap: Capture, path: str | os.PathLike | None = None, *, views=VIEWS, layer: int | None = None,
            head: int | None = None, query: int | None = None, theme: str | None = None) -> str:
    """The standalone page as text; also written (atomically) to `path` when given."""
    meta, buffers, options = checked_payload(cap, views, layer, head, query, theme)
    title = f"attnlens \u2014 {cap.text_a}" + (f" / {cap.text_b}" if cap.text_b is not None else "")
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; img-src data:; connect-src data: blob:\">\n",
        f"<title>{html.escape(title[:200])}</title>\n",
        "<style>\nbody{margin:0;background:#f6f8fa}@media (prefers-color-scheme:dark){body{background:#010409}}\n",
        _inline(static_text("attnlens.css"), "style"),
        "</style>\n</head>\n<body>\n<div data-attnlens-root>\n",
        "<div class=\"attnlens-mount\"><noscript>This page needs JavaScript to draw the views.</noscript></div>\n",
        f"<script type=\"application/json\" data-attnlens=\"meta\">{script_json(meta)}</script>\n",
        f"<script type=\"application/json\" data-attnlens=\"options\">{script_json(options)}</script>\n",
    ]
    for name, data in buffers.items():
        parts.append("<script type=\"application/octet-stream\" data-attnlens=\"buffer\" "
                     f"data-name=\"{html.escape(name)}\">"
                     f"{base64.b64encode(data).decode('ascii')}</script>\n")
    parts += ["</div>\n<script type=\"module\">\n", _inline(static_text("attnlens.js"), "script"),
              "\n</script>\n</body>\n</html>\n"]
    page = "".join(parts)
    if path is not None:
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, page)
    return page
