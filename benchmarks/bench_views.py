"""Views at 16, 128 and 512 tokens on the default model, against bertviz 1.4.1 measured in the same run.

Both sides get the same treatment. For each length:
- build: in a fresh process (the library imported, the capture loaded from .npz), --repeats
  builds of the page, timed from the call to the returned HTML: the 1st (cold: bertviz's old
  figure was this one alone) and the median. Ours: attnlens.to_html (one page with all three
  views); bertviz: head_view(...) and model_view(...) with html_action="return" (one page each).
- drawn: --repeats fresh page loads in headless chromium (file://; ours with the network off,
  bertviz with its CDN URLs answered locally), seconds from navigation start until the view is
  drawn; median. What "drawn" means:
    ours head view   the root's data-head-drawn attribute is set: the head view has stroked every
                     line of the selected layer (all heads, weight >= 1/80 and the line threshold,
                     on by default past 64 tokens) on its canvas and written the tokens;
    ours model view  data-model-drawn is set: every layer x head thumbnail is painted on its canvas;
    bertviz          the page holds all its SVG <line> elements: heads x n x n for the head view
                     (every head of the layer), layers x heads x n x n for the model view.
  "painted": the first task after the next animation frame once "drawn" holds, so it includes
  the style, layout and paint of that frame (for SVG, the cost that comes after inserting lines).
bertviz (a benchmark-only dependency, `pip install -e '.[bench]'`) loads require.js 2.3.6,
d3 5.7.0 and jQuery from a CDN; here those URLs are answered from the npm packages
(requirejs 2.3.6, d3 5.7.0, jquery 2.1.0), installed into benchmarks/.npm/ on first run.
bertviz's work is capped (build BERTVIZ_BUILD_CAP_S for all its builds, drawing DRAW_CAP_S a
load; a capped load is not repeated); a capped step is reported as such.

Run:  .venv/bin/python benchmarks/bench_views.py  [--lengths 16 128 512] [--repeats 3] [--quick]
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


def bertviz_page(cap, which: str) -> tuple[str, float]:
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


def ours_page(cap) -> tuple[str, float]:
    """Our standalone page (all three views) and its build time."""
    from attnlens.views.html import to_html

    start = time.perf_counter()
    page = to_html(cap)
    return page, time.perf_counter() - start


def _build_child(side: str, capture_path: str, which: str, repeats: str, out_path: str) -> None:
    """Subprocess entry: `repeats` builds of one page in a fresh process; prints their seconds."""
    from attnlens import Capture

    cap = Capture.load(capture_path)
    if side == "bertviz":
        import bertviz  # noqa: F401  (imported before the first timed build, as attnlens is)
    else:
        import attnlens.views.html  # noqa: F401  (timed: the import itself)
    seconds = []
    for _ in range(int(repeats)):
        page, s = bertviz_page(cap, which) if side == "bertviz" else ours_page(cap)
        seconds.append(s)
    Path(out_path).write_text(page, encoding="utf-8")
    print(json.dumps({"seconds": seconds}))


def build(side: str, cap, which: str, workdir: Path, repeats: int, cap_s: float | None) -> dict:
    """`repeats` builds in a fresh process: 1st (cold) and median seconds, page size and path."""
    capture_path = workdir / "cap.npz"
    if not capture_path.exists():
        cap.save(capture_path)
    out = workdir / f"{side}_{which}_{cap.num_tokens}.html"
    try:
        done = subprocess.run([sys.executable, __file__, "--build-child", side, str(capture_path), which,
                               str(repeats), str(out)], capture_output=True, text=True, timeout=cap_s)
    except subprocess.TimeoutExpired:
        return {"status": f"{repeats} build(s) not finished in {cap_s} s"}
    if done.returncode != 0:
        return {"status": "build failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:120]}
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    return {"status": "ok", "build_first_s": seconds[0], "build_s": statistics.median(seconds),
            "builds": seconds, "bytes": out.stat().st_size, "path": out}


def draws(browser, path: Path, predicate: str, repeats: int, fragment: str = "", serve_cdn: bool = False) -> dict:
    """Median (drawn, painted) seconds over `repeats` fresh loads; stops at the first load past the cap."""
    drawn, painted = [], []
    for _ in range(repeats):
        result = draw_time(browser, path, predicate, fragment, serve_cdn)
        if result is None:
            return {"drawn_s": None, "painted_s": None, "loads": len(drawn) + 1, "capped": True}
        drawn.append(result[0])
        painted.append(result[1])
    return {"drawn_s": statistics.median(drawn), "painted_s": statistics.median(painted), "loads": repeats,
            "capped": False, "drawn_all": drawn}


def draw_time(browser, path: Path, predicate: str, fragment: str = "",
              serve_cdn: bool = False) -> tuple[float, float] | None:
    """Seconds from navigation start until `predicate` (a JS expression) holds, and until the first task
    after the next animation frame (painted); None past the cap.

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
    # the figure does not include Playwright's polling delay; then the first task after the next frame
    page.add_init_script(f"""
        new MutationObserver((_, observer) => {{
            if (!window.__drawnAt && ({predicate})) {{
                window.__drawnAt = performance.now();
                observer.disconnect();
                requestAnimationFrame(() => setTimeout(() => {{ window.__paintedAt = performance.now(); }}, 0));
            }}
        }}).observe(document, {{ childList: true, subtree: true,
                                 attributeFilter: ["data-head-drawn", "data-model-drawn"] }});
    """)
    try:
        page.goto(path.as_uri() + fragment, wait_until="commit", timeout=DRAW_CAP_S * 1000)
        handle = page.wait_for_function("() => window.__paintedAt ? [window.__drawnAt, window.__paintedAt] : 0",
                                        timeout=DRAW_CAP_S * 1000, polling=100)
        seconds = tuple(float(x) / 1000 for x in handle.json_value())
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
    parser.add_argument("--repeats", type=int, default=3, help="builds and page loads per side and view")
    parser.add_argument("--no-bertviz", action="store_true")
    parser.add_argument("--quick", action="store_true", help="--lengths 16 64 --repeats 2")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.repeats = [16, 64], 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(ROOT.parent / "src"))
    from attnlens import capture, load_model
    from attnlens.views.browser import headless_chromium

    if not args.no_bertviz and not (have_bertviz() and ensure_npm()):
        args.no_bertviz = True
    lm = load_model()
    reps = args.repeats
    rows = []
    with tempfile.TemporaryDirectory() as tmp, headless_chromium() as browser:
        for n in args.lengths:
            work = Path(tmp) / str(n)
            work.mkdir()
            cap = capture(pair_of_length(lm.tokenizer, n), PAIR_B, model=lm)
            assert cap.num_tokens == n
            ours = build("attnlens", cap, "all", work, reps, None)
            if ours["status"] != "ok":
                raise SystemExit(f"our page did not build: {ours['status']}")
            path = ours.pop("path")
            root = "document.querySelector('.attnlens')"
            ours["head"] = draws(browser, path, f"{root} && {root}.dataset.headDrawn", reps)
            ours["model"] = draws(browser, path, f"{root} && {root}.dataset.modelDrawn", reps, "#model")
            row = {"tokens": n, "ours": ours}
            if not args.no_bertviz:
                lines = cap.num_heads * n * n
                for which, expected in (("head", lines), ("model", cap.num_layers * lines)):
                    result = build("bertviz", cap, which, work, reps, BERTVIZ_BUILD_CAP_S)
                    if result["status"] == "ok":
                        result[which] = draws(browser, result.pop("path"),
                                              f"document.querySelectorAll('line').length >= {expected}", reps,
                                              serve_cdn=True)
                        if result[which]["capped"]:
                            result["status"] = f"not drawn within {DRAW_CAP_S} s"
                    row[f"bertviz_{which}"] = result
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"builds: 1st (cold, fresh process) and median of {reps}; drawn / painted: median of {reps} fresh page "
          "loads (see the docstring for what drawn means on each side)")
    head = (f"{'tokens':>6}  {'side':<15} {'build 1st':>9} {'build med':>9} {'size':>9}  {'head drawn':>10} "
            f"{'painted':>8}  {'model drawn':>11} {'painted':>8}")
    print(head)
    for row in rows:
        sides = [("attnlens page", row["ours"])]
        sides += [(f"bertviz {w}", row[f"bertviz_{w}"]) for w in ("head", "model") if f"bertviz_{w}" in row]
        for label, r in sides:
            h, m = r.get("head", {}), r.get("model", {})
            print(f"{row['tokens']:>6}  {label:<15} {fmt(r.get('build_first_s')):>9} {fmt(r.get('build_s')):>9} "
                  f"{fmt(r.get('bytes'), 'B'):>9}  {fmt(h.get('drawn_s')):>10} {fmt(h.get('painted_s')):>8}  "
                  f"{fmt(m.get('drawn_s')):>11} {fmt(m.get('painted_s')):>8}")
            if r.get("status", "ok") != "ok":
                print(f"        {label}: {r['status']}")
    print()
    for row in rows:
        o = row["ours"]
        for which in ("head", "model"):
            b = row.get(f"bertviz_{which}", {})
            if not b.get("bytes"):
                continue
            old = b["build_first_s"] / o["build_s"]
            parts = [f"bertviz {which}_view page / our whole page: size {b['bytes'] / o['bytes']:.1f}x",
                     f"build {b['build_s'] / o['build_s']:.1f}x (median vs median; old: bertviz 1st / our median "
                     f"{old:.1f}x; 1st vs 1st {b['build_first_s'] / o['build_first_s']:.1f}x)"]
            ob, bb = o[which], b.get(which, {})
            if bb.get("drawn_s") and ob.get("drawn_s"):
                parts.append(f"{which} drawn {bb['drawn_s'] / ob['drawn_s']:.1f}x, "
                             f"painted {bb['painted_s'] / ob['painted_s']:.1f}x")
            print(f"{row['tokens']:>4} tokens: " + "; ".join(parts))
    last = rows[-1]
    if last["tokens"] == 512:
        o = last["ours"]
        print(f"targets at 512 tokens: build {fmt(o['build_s'])} (< 1 s), head view {fmt(o['head']['drawn_s'])} "
              f"(< 1 s), model view {fmt(o['model']['drawn_s'])} (< 2 s)")


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--build-child":
        sys.path.insert(0, str(ROOT.parent / "src"))
        _build_child(*sys.argv[2:])
    else:
        main()
