"""Views at 16, 128 and 512 tokens on the default model, against bertviz 1.4.1 measured in the same run.

For each length: time to build the page, its size, and the time from navigation start until
the head view and the model view are drawn in headless chromium (file://, network off);
ours: median of 3 builds / 3 fresh page loads each, bertviz: one (it is slow).
bertviz (a benchmark-only dependency, `pip install -e '.[bench]'`) loads require.js 2.3.6,
d3 5.7.0 and jQuery from a CDN; here those URLs are answered from the npm packages
(requirejs 2.3.6, d3 5.7.0, jquery 2.1.0), installed into benchmarks/.npm/ on first run.
bertviz's work is capped (build BERTVIZ_BUILD_CAP_S, drawing DRAW_CAP_S); a capped step is
reported as such.

Run:  .venv/bin/python benchmarks/bench_views.py  [--lengths 16 128 512]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
NPM = ROOT / ".npm"
NPM_PACKAGES = ["requirejs@2.3.6", "d3@5.7.0", "jquery@2.1.0"]
CDN = {  # the URLs bertviz's pages request -> npm files serving them
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.3.6/require.min.js": "requirejs/require.js",
    "https://cdnjs.cloudflare.com/ajax/libs/d3/5.7.0/d3.min.js": "d3/dist/d3.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/2.0.0/jquery.min.js": "jquery/dist/jquery.min.js",
}
BERTVIZ_BUILD_CAP_S = 240
DRAW_CAP_S = 60
PAIR_B = "At the store, I bought fresh strawberries."
WORDS = ("i went to the store and then we walked home by the river while it was still light "
         "so that our dog could run in the park with other dogs for a long time").split()


def ensure_npm() -> bool:
    """Install bertviz's front-end libraries from npm once; False (with a note) when that fails."""
    if all((NPM / "node_modules" / rel).is_file() for rel in CDN.values()):
        return True
    try:
        subprocess.run(["npm", "install", "--prefix", str(NPM), "--no-audit", "--no-fund", *NPM_PACKAGES],
                       check=True, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"note: bertviz baseline skipped, npm install failed ({exc})")
        return False
    return True


def have_bertviz() -> bool:
    import importlib.util

    if importlib.util.find_spec("bertviz") is None:
        print("note: bertviz baseline skipped: pip install -e '.[bench]' (bertviz==1.4.1)")
        return False
    return True


def pair_of_length(tokenizer, n: int) -> str:
    """Sentence A such that (A, PAIR_B) is exactly n tokens."""
    words: list[str] = []
    while True:
        length = len(tokenizer(" ".join(words) or "i", PAIR_B)["input_ids"])
        if length == n and words:
            return " ".join(words)
        if length > n:
            raise SystemExit(f"cannot build an input of exactly {n} tokens")
        words.append(WORDS[len(words) % len(WORDS)])


def bertviz_pages(cap, which: str) -> tuple[str, float]:
    """bertviz's page for one view (as the notebook would show it) and its build time."""
    import torch
    from bertviz import head_view, model_view

    attention = tuple(torch.from_numpy(cap.attentions[layer][None]) for layer in range(cap.num_layers))
    b_start = int(next(i for i, s in enumerate(cap.segment_ids) if s == 1))
    start = time.perf_counter()
    fn = head_view if which == "head" else model_view
    html = fn(attention, list(cap.tokens), sentence_b_start=b_start, html_action="return").data
    seconds = time.perf_counter() - start
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{html}</body></html>", seconds


def _bertviz_child(capture_path: str, which: str, out_path: str) -> None:
    """Subprocess entry: build one bertviz page under a time cap."""
    from attnlens import Capture

    page, seconds = bertviz_pages(Capture.load(capture_path), which)
    Path(out_path).write_text(page, encoding="utf-8")
    print(json.dumps({"seconds": seconds}))


def build_bertviz(cap, which: str, workdir: Path) -> dict:
    capture_path = workdir / "cap.npz"
    if not capture_path.exists():
        cap.save(capture_path)
    out = workdir / f"bertviz_{which}_{cap.num_tokens}.html"
    try:
        done = subprocess.run([sys.executable, __file__, "--bertviz-child", str(capture_path), which, str(out)],
                              capture_output=True, text=True, timeout=BERTVIZ_BUILD_CAP_S)
    except subprocess.TimeoutExpired:
        return {"status": f"build not finished in {BERTVIZ_BUILD_CAP_S} s"}
    if done.returncode != 0:
        return {"status": "build failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return {"status": "ok", "build_s": json.loads(done.stdout.strip().splitlines()[-1])["seconds"],
            "bytes": out.stat().st_size, "path": out}


def draw_time(browser, path: Path, predicate: str, fragment: str = "", serve_cdn: bool = False) -> float | None:
    """Seconds from navigation start until `predicate` (a JS expression) holds; None past the cap.

    serve_cdn: answer bertviz's CDN URLs from the npm packages (request interception on);
    otherwise no interception, and any request that is not for a file fails the benchmark.
    """
    page = browser.new_page(viewport={"width": 1280, "height": 900})

    def answer(route):
        rel = CDN.get(route.request.url)
        if rel:
            route.fulfill(path=str(NPM / "node_modules" / rel), content_type="application/javascript")
        else:
            route.abort()

    requests: list[str] = []
    if serve_cdn:
        page.route(lambda url: not url.startswith(("file:", "data:", "blob:")), answer)
    else:
        page.on("request", lambda r: requests.append(r.url))
    # the page itself notes the moment the predicate first holds (after each DOM change), so
    # the figure does not include Playwright's polling delay
    page.add_init_script(f"""
        new MutationObserver((_, observer) => {{
            if (!window.__drawnAt && ({predicate})) {{ window.__drawnAt = performance.now(); observer.disconnect(); }}
        }}).observe(document, {{ childList: true, subtree: true, attributeFilter: ["data-head-drawn", "data-model-drawn"] }});
    """)
    try:
        page.goto(path.as_uri() + fragment, wait_until="commit", timeout=DRAW_CAP_S * 1000)
        handle = page.wait_for_function("() => window.__drawnAt || 0", timeout=DRAW_CAP_S * 1000, polling=100)
        seconds = float(handle.json_value()) / 1000
    except Exception:  # noqa: BLE001  (a page that never draws within the cap)
        seconds = None
    finally:
        page.close()
    if not serve_cdn and any(not url.startswith("file:") for url in requests):
        raise SystemExit(f"the page made a network request: {requests}")
    return seconds


def fmt(x, unit="s"):
    if x is None:
        return "-"
    if unit == "B":
        return f"{x / 1e6:.2f} MB" if x >= 1e5 else f"{x / 1e3:.1f} kB"
    return f"{x:.3f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 128, 512])
    parser.add_argument("--no-bertviz", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT.parent / "src"))
    from attnlens import capture, load_model
    from attnlens.views.browser import headless_chromium
    from attnlens.views.html import to_html

    if not args.no_bertviz and not (have_bertviz() and ensure_npm()):
        args.no_bertviz = True
    lm = load_model()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, headless_chromium() as browser:
        for n in args.lengths:
            work = Path(tmp) / str(n)
            work.mkdir()
            cap = capture(pair_of_length(lm.tokenizer, n), PAIR_B, model=lm)
            assert cap.num_tokens == n
            builds = []
            for _ in range(3):
                start = time.perf_counter()
                page = to_html(cap)
                builds.append(time.perf_counter() - start)
            ours_path = work / "attnlens.html"
            ours_path.write_text(page, encoding="utf-8")
            root = "document.querySelector('.attnlens')"
            heads = [draw_time(browser, ours_path, f"{root} && {root}.dataset.headDrawn") for _ in range(3)]
            models = [draw_time(browser, ours_path, f"{root} && {root}.dataset.modelDrawn", "#model") for _ in range(3)]
            ours = {"build_s": statistics.median(builds), "bytes": ours_path.stat().st_size,
                    "head_s": None if None in heads else statistics.median(heads),
                    "model_s": None if None in models else statistics.median(models)}
            row = {"tokens": n, "ours": ours}
            if not args.no_bertviz:
                lines = cap.num_heads * n * n
                for which, expected in (("head", lines), ("model", cap.num_layers * lines)):
                    result = build_bertviz(cap, which, work)
                    if result["status"] == "ok":
                        result["draw_s"] = draw_time(browser, result.pop("path"),
                                                     f"document.querySelectorAll('line').length >= {expected}",
                                                     serve_cdn=True)
                        if result["draw_s"] is None:
                            result["status"] = f"not drawn within {DRAW_CAP_S} s"
                    row[f"bertviz_{which}"] = result
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"{'tokens':>6}  {'ours build':>10} {'ours size':>10} {'head drawn':>10} {'model drawn':>11}   "
          f"{'bertviz head: build':>19} {'size':>10} {'drawn':>8}   {'bertviz model: build':>20} {'size':>10} {'drawn':>8}")
    for row in rows:
        o = row["ours"]
        line = f"{row['tokens']:>6}  {fmt(o['build_s']):>10} {fmt(o['bytes'], 'B'):>10} {fmt(o['head_s']):>10} {fmt(o['model_s']):>11}"
        for which in ("head", "model"):
            b = row.get(f"bertviz_{which}")
            if b:
                line += f"   {fmt(b.get('build_s')):>{19 if which == 'head' else 20}} {fmt(b.get('bytes'), 'B'):>10} {fmt(b.get('draw_s')):>8}"
        print(line)
        for which in ("head", "model"):
            b = row.get(f"bertviz_{which}", {})
            if b.get("status", "ok") != "ok":
                print(f"        bertviz {which} view: {b['status']}")
    print()
    for row in rows:
        o, b = row["ours"], row.get("bertviz_head", {})
        if b.get("bytes"):
            print(f"{row['tokens']:>4} tokens: bertviz head_view bytes / our whole page = {b['bytes'] / o['bytes']:.1f}x"
                  + (f"; build time ratio {b['build_s'] / o['build_s']:.1f}x" if b.get("build_s") else "")
                  + (f"; head drawn ratio {b['draw_s'] / o['head_s']:.1f}x" if b.get("draw_s") and o["head_s"] else ""))
    last = rows[-1]
    if last["tokens"] == 512:
        o = last["ours"]
        print(f"targets at 512 tokens: build {fmt(o['build_s'])} (< 1 s), head view {fmt(o['head_s'])} (< 1 s), "
              f"model view {fmt(o['model_s'])} (< 2 s)")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--bertviz-child":
        sys.path.insert(0, str(ROOT.parent / "src"))
        _bertviz_child(*sys.argv[2:])
    else:
        main()
