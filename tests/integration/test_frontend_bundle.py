"""The views' front end: one self-contained module joined from its parts (views/static/src/),
served by the web app, and drawing the same from the bundle as from the unbundled parts."""

from __future__ import annotations

import re
import shutil
import subprocess
from importlib import resources

import pytest

from attnlens.views.bundle import PARTS, BundleError, bundle_text, join_parts, part_text
from attnlens.views.html import static_text, to_html
from views_helpers import synthetic_capture

VIEW_CLASSES = {"head.js": "HeadView", "model.js": "ModelView", "neuron.js": "NeuronView"}


def _exports(text: str) -> set[str]:
    """Names of the bundle's `export { ... };` line."""
    found = re.findall(r"^export \{ ([^}]*) \};$", text, re.M)
    assert len(found) == 1
    return {name.strip() for name in found[0].split(",")}


def test_bundle_is_one_self_contained_module():
    text = bundle_text()
    assert static_text("attnlens.js") == text  # what every host loads
    assert len(re.findall(r"^export default\b", text, re.M)) == 1
    assert not re.search(r"^\s*import\b", text, re.M)  # no import left, neither relative nor remote
    assert not re.search(r"\bimport\s*\(", text)  # nor a dynamic one
    assert "http://" not in text and "https://" not in text and "//cdn" not in text.lower()
    assert "</script" not in text.lower() and "<!--" not in text  # safe to inline in the page
    for part, cls in VIEW_CLASSES.items():
        assert f"// ==== {part}" in text and f"\nclass {cls} " in text
    assert re.findall(r"^// ==== (\S+)$", text, re.M) == list(PARTS)  # in dependency order
    # hosts' names: the page and widget (default), the web app (createView, sourceFromFetch, h, cssVar)
    hosts_use = {"createView", "bootInline", "sourceFromFetch", "sourceFromDocument", "sourceFromModel", "h", "cssVar"}
    assert hosts_use <= _exports(text)


def test_parts_are_packaged_and_no_stale_copy():
    static = resources.files("attnlens.views").joinpath("static")
    assert sorted(p.name for p in static.joinpath("src").iterdir() if p.name.endswith(".js")) == sorted(PARTS)
    assert not static.joinpath("attnlens.js").is_file()  # built at run time only: cannot go stale


def test_web_app_imports_only_what_the_bundle_exports():
    app_js = resources.files("attnlens.server").joinpath("static", "app.js").read_text(encoding="utf-8")
    imports = re.findall(r'^import \{([^}]*)\} from "([^"]+)";$', app_js, re.M)
    assert [where for _, where in imports] == ["/static/views/attnlens.js"]
    names = {n.strip().split(" as ")[0] for n in imports[0][0].split(",")}
    assert names <= _exports(bundle_text())
    assert "function el(" not in app_js  # the element helper is the views' own


def test_page_and_widget_carry_the_bundle():
    cap = synthetic_capture(["[CLS]", "a", "b", "[SEP]"])
    assert bundle_text() in to_html(cap)
    pytest.importorskip("anywidget")
    from attnlens.views.widget import head_view

    assert head_view(cap)._esm == bundle_text()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_bundle_and_parts_parse_as_modules(tmp_path):
    for name, text in [("bundle.mjs", bundle_text())] + [(p.replace(".js", ".mjs"), part_text(p)) for p in PARTS]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        done = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name}: {done.stderr}"


def test_join_refuses_what_would_break_the_bundle():
    a = "export const A = 1;\n"
    b = 'import { A } from "./a.js";\nexport default { A };\n'
    text = join_parts({"a.js": a, "b.js": b})
    assert "const A = 1;" in text and "import" not in text and text.rstrip().endswith("export { A };")
    cases = {
        "not an earlier part": {"b.js": b, "a.js": a},
        "does not export": {"a.js": "const A = 1;\n", "b.js": b},
        "one line": {"a.js": a, "b.js": 'import {\n  A } from "./a.js";\nexport default {};\n'},
        "both declare": {"a.js": a, "b.js": "const A = 2;\nexport default {};\n"},
        "export declarations only": {"a.js": "const A = 1;\nexport { A };\nexport default {};\n"},
        "not 1": {"a.js": a},
    }
    for message, parts in cases.items():
        with pytest.raises(BundleError, match=message):
            join_parts(parts)


def test_server_serves_the_bundle():
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from attnlens.server import create_app
    from conftest import tiny_model

    with TestClient(create_app({"tiny": tiny_model("bert")})) as client:
        r = client.get("/static/views/attnlens.js")
        assert r.status_code == 200 and r.text == bundle_text()
        assert "javascript" in r.headers["content-type"]
        assert client.get("/static/views/attnlens.css").status_code == 200
        assert client.get("/static/views/src/shell.js").status_code == 200  # the parts, for development
        assert "/static/app.js" in client.get("/").text


def test_head_view_renders_the_same_from_the_bundle_and_from_the_parts(tmp_path):
    """In chromium: the standalone page (bundle inlined), then the same page importing the parts one by one."""
    from attnlens.views.browser import CHROMIUM_ARGS
    from browser_fixtures import require_browser
    from server_helpers import BrowserThread

    executable = require_browser()

    cap = synthetic_capture([f"t{i}" for i in range(12)], [0] * 6 + [1] * 6, text_b="b")
    page_html = to_html(cap, tmp_path / "page.html")
    base = "http://attnlens.test/"
    # the same page, its module replaced by the parts (shell.js boots the page itself), its CSP letting them load
    unbundled = page_html.replace(bundle_text(), 'import "/src/shell.js";').replace(
        "script-src 'unsafe-inline'", "script-src 'self' 'unsafe-inline'")
    assert unbundled.count("script-src 'self'") == 1

    def job(browser):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors, requested = [], []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        def serve(route):
            if not route.request.url.startswith(base):
                route.abort()
                return
            path = route.request.url[len(base):]
            requested.append(path)
            if path.startswith("src/") and path[4:] in PARTS:
                route.fulfill(body=part_text(path[4:]), content_type="text/javascript")
            elif path == "page.html":
                route.fulfill(body=unbundled, content_type="text/html")
            else:
                route.abort()

        try:
            drawn = []
            page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), serve)
            for url in ((tmp_path / "page.html").as_uri(), base + "page.html"):
                page.goto(url)
                page.wait_for_selector("[data-head-drawn]", timeout=30000)
                root = page.eval_on_selector(".attnlens", "e => ({...e.dataset})")
                canvas = page.eval_on_selector(".al-head-canvas", "c => [+c.dataset.lines, c.toDataURL()]")
                drawn.append((root["view"], root["heads"], canvas))
            return drawn, errors, requested
        finally:
            page.close()

    thread = BrowserThread(executable, CHROMIUM_ARGS)
    try:
        (bundled, parts), errors, requested = thread.run(job)
    finally:
        thread.close()
    assert errors == []
    assert sorted(requested) == sorted(["page.html"] + [f"src/{p}" for p in PARTS])
    assert bundled[0] == "head" and bundled[1] == ",".join(str(h) for h in range(3))
    assert bundled[2][0] > 0  # lines drawn
    assert parts == bundled  # same state, same pixels
