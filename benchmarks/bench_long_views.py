"""ModernBERT views at long context (1,024 and 2,048 tokens): capture, page build, page bytes, draw times.

The model has ModernBERT-base's shape (22 layers x 12 heads, d_head 64, local attention of 128
tokens on two layers of three, global on every third) with random weights built in-process (no
checkpoint is available offline; sizes and times depend on the shapes, and on how peaked the
weights are only through the gzip of the shipped buffers). The text is the default model's
WordPiece tokenizer cut to exactly N tokens. Timed in one process, in order:
- capture: `attnlens.capture` (the recorded forward), then the first access of `cap.attentions`
  (recomputed from q/k with each layer's mask), beside a bare forward of the same model (baseline);
- build: `to_html(cap)` (one page with all views), and the page's size in bytes;
- drawn / painted: fresh loads in headless chromium, as benchmarks/bench_views.py measures them
  (the head view's data-head-drawn / the model view's data-model-drawn attribute set; painted =
  the first task after the next frame), median of --repeats; a load past bench_views.DRAW_CAP_S
  is reported as capped.

Run:  nice .venv/bin/python benchmarks/bench_long_views.py [--lengths 1024 2048] [--repeats 2] [--quick]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent / "src"))


def modernbert_base(tokenizer, layers: int):
    """A random model of ModernBERT-base's shape (fewer layers with --quick)."""
    import torch
    from transformers import AutoModel, ModernBertConfig

    from attnlens.capturing import LoadedModel

    torch.manual_seed(0)
    config = ModernBertConfig(vocab_size=len(tokenizer), hidden_size=768, intermediate_size=1152,
                              num_hidden_layers=layers, num_attention_heads=12, local_attention=128,
                              global_attn_every_n_layers=3, max_position_embeddings=8192,
                              pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
                              sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
                              eos_token_id=tokenizer.sep_token_id)
    model = AutoModel.from_config(config, attn_implementation="sdpa")
    return LoadedModel(model, tokenizer, name=f"modernbert-base-shape-random-{layers}L")


def text_of_length(tokenizer, n: int) -> str:
    """A text that the tokenizer encodes as exactly n tokens ([CLS] ... [SEP])."""
    from bench_views import WORDS

    words = [WORDS[i % len(WORDS)] for i in range(n - 2)]  # each of these words is one WordPiece token
    text = " ".join(words)
    if len(tokenizer(text)["input_ids"]) != n:
        raise SystemExit(f"cannot build an input of exactly {n} tokens")
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--no-draw", action="store_true", help="skip chromium (capture, build and bytes only)")
    parser.add_argument("--quick", action="store_true", help="--lengths 256 --layers 3 --repeats 1")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.layers, args.repeats = [256], 3, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from bench_views import draws, fmt
    from transformers import AutoTokenizer

    import attnlens
    from attnlens.capturing import default_model_path
    from attnlens.views.html import to_html

    tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
    lm = modernbert_base(tokenizer, args.layers)
    attnlens.capture(text_of_length(tokenizer, 64), model=lm)  # warm-up: first-call costs out of the timings
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lengths:
            text = text_of_length(tokenizer, n)
            enc = tokenizer(text, return_tensors="pt")
            with torch.inference_mode():
                start = time.perf_counter()
                lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                bare = time.perf_counter() - start
            start = time.perf_counter()
            cap = attnlens.capture(text, model=lm)
            recorded = time.perf_counter() - start
            start = time.perf_counter()
            _ = cap.attentions  # [L, H, T, T], recomputed on first access
            recomputed = time.perf_counter() - start
            start = time.perf_counter()
            page = to_html(cap)
            built = time.perf_counter() - start
            path = Path(tmp) / f"page_{n}.html"
            path.write_text(page, encoding="utf-8")
            row = {"tokens": n, "layers": cap.num_layers, "heads": cap.num_heads, "bare_forward_s": bare,
                   "capture_s": recorded, "attention_recompute_s": recomputed, "build_s": built,
                   "page_bytes": path.stat().st_size, "attention_MB_float32": cap.attentions.nbytes / 1e6}
            del page, cap
            gc.collect()
            if not args.no_draw:
                from attnlens.views.browser import headless_chromium

                root = "document.querySelector('.attnlens')"
                with headless_chromium() as browser:
                    row["head"] = draws(browser, path, f"{root} && {root}.dataset.headDrawn", args.repeats)
                    row["model"] = draws(browser, path, f"{root} && {root}.dataset.modelDrawn", args.repeats,
                                         "#model")
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"{'tokens':>6} {'bare fwd':>9} {'capture':>9} {'recompute':>9} {'build':>9} {'page':>10} "
          f"{'head drawn':>10} {'painted':>8} {'model drawn':>11} {'painted':>8}")
    for r in rows:
        h, m = r.get("head", {}), r.get("model", {})
        print(f"{r['tokens']:>6} {fmt(r['bare_forward_s']):>9} {fmt(r['capture_s']):>9} "
              f"{fmt(r['attention_recompute_s']):>9} {fmt(r['build_s']):>9} {fmt(r['page_bytes'], 'B'):>10} "
              f"{fmt(h.get('drawn_s')):>10} {fmt(h.get('painted_s')):>8} {fmt(m.get('drawn_s')):>11} "
              f"{fmt(m.get('painted_s')):>8}" + ("  (a load capped)" if h.get("capped") or m.get("capped") else ""))
        print(f"        capture / bare forward: {r['capture_s'] / r['bare_forward_s']:.2f}x "
              f"(+ attention recompute {r['attention_recompute_s'] / r['bare_forward_s']:.2f}x)")


if __name__ == "__main__":
    main()
