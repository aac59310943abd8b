"""Small Captures built by hand for the view tests (no model needed)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

from attnlens.capturing import Capture
from attnlens.views.bundle import part_text
from attnlens.views.payload import build_payload, softmax_qk

# Text that is HTML, for the injection tests: whole tokens (a hand-built capture keeps them whole,
# where a real WordPiece tokenizer would split them into harmless pieces), sentences and model names.
HTML_TOKEN = "<img src=x onerror=alert(1)>"
HTML_TOKENS = ["[CLS]", HTML_TOKEN, "<b>bold</b>", "a&amp;b", "</script><script>alert(2)</script>", 'q"s',
               "[SEP]", "<svg onload=alert(3)>", "<i>x</i>", "[SEP]"]
HTML_SEGMENTS = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
HTML_TEXT_A = "</title></script><img src=x onerror=alert(4)> & <b>A</b>"
HTML_TEXT_B = '<svg onload=alert(5)> "B" <!-- c -->'
HTML_MODEL = "</title><img src=x onerror=alert(6)>"


def html_capture(*, layers=2, heads=3, d_head=8, seed=0, model_name=HTML_MODEL):
    """A hand-built pair Capture whose tokens, sentences and model name are all HTML."""
    special = [t in ("[CLS]", "[SEP]") for t in HTML_TOKENS]
    return synthetic_capture(HTML_TOKENS, HTML_SEGMENTS, layers=layers, heads=heads, d_head=d_head, seed=seed,
                             text_a=HTML_TEXT_A, text_b=HTML_TEXT_B, model_name=model_name, special=special)


def synthetic_capture(tokens, segment_ids=None, *, layers=2, heads=3, d_head=8, seed=0, text_a="a", text_b=None,
                      model_name="synthetic", special=None):
    """A Capture whose attention is softmax(q.k/sqrt(d)) of random q/k (`special`: its special-token mask)."""
    rng = np.random.default_rng(seed)
    t = len(tokens)
    q = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    k = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    seg = np.zeros(t, np.int64) if segment_ids is None else np.asarray(segment_ids, np.int64)
    return Capture(
        tokens=list(tokens), token_ids=np.arange(t), segment_ids=seg, word_ids=np.arange(t),
        special_mask=np.zeros(t, bool) if special is None else np.asarray(special, bool),
        attentions=softmax_qk(q, k).astype(np.float32), queries=q, keys=k,
        text_a=text_a, text_b=text_b, model_name=model_name,
    )


def run_page_data(cap: Capture, folder: Path, body: str, timeout: float = 120):
    """Run the page's own data.js in node on `cap`'s payload: `body` (JavaScript) sees `data`, a CaptureData,
    and prints one JSON value with console.log; returns (that value, the payload's buffers)."""
    meta, buffers = build_payload(cap, compress=False)
    (folder / "data.mjs").write_text(part_text("data.js"), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    for name, data in buffers.items():
        (folder / name.replace("/", "_")).write_bytes(data)
    script = folder / "run.mjs"
    script.write_text("""
import fs from "node:fs";
import { CaptureData } from "./data.mjs";
const dir = process.argv[2], meta = JSON.parse(fs.readFileSync(`${dir}/meta.json`, "utf8"));
const data = new CaptureData({ meta, load: async (name) => fs.readFileSync(`${dir}/${name.replace("/", "_")}`) });
""" + body, encoding="utf-8")
    done = subprocess.run(["node", str(script), str(folder)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), buffers


def hover_neuron_cell(page, kind: str, row: int, dim: int = 0, *, match_dim: bool = False) -> float:
    """Move the mouse over the neuron view's cell (kind, row, dim) and return the value its tooltip shows
    (match_dim: also wait until the tooltip names that dimension, for cells of several columns per row)."""
    at = page.evaluate("([k, r, d]) => document.querySelector('.attnlens').attnlens.neuronCellCenter(k, r, d)",
                       [kind, row, dim])
    box = page.locator(".al-neuron-canvas").bounding_box()
    page.mouse.move(box["x"] + at["x"], box["y"] + at["y"])
    page.wait_for_function(
        "([k, r, d, m]) => { const t = document.querySelector('.al-tooltip'); "
        "return !t.hidden && t.dataset.kind === k && +t.dataset.row === r && (!m || +t.dataset.dim === d); }",
        arg=[kind, row, dim, match_dim])
    return float(page.eval_on_selector(".al-tooltip", "t => t.dataset.value"))
