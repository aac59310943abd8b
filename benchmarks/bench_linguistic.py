"""Dependency heads and corpus search: throughput and index size.

Prints, from one run over the same sentences of the shipped corpus:
- sentences/s of the spaCy parse alone, of `dependency_heads` (parse + attention pass + evaluation)
  and of the atlas alone (`attnlens.atlas` on the same sentences, word level, no checks), and their ratio;
- the search index: build time, bytes per indexed token, total bytes, the projected size for the
  whole shipped corpus (all layers, and one layer), and the brute-force numpy search time per query
  at this size and projected to the whole corpus (one head: N x d_head float16).

Usage: python benchmarks/bench_linguistic.py [--sentences 300] [--model M] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

CORPUS_TOKENS = 1_586_482  # WordPiece tokens of the shipped default corpus (README, Corpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import numpy as np

    import attnlens
    from attnlens.analysis.search import build_index, estimate_bytes, search
    from attnlens.analysis.syntax import load_parser, parse_sentences, resolve_sentences
    from attnlens.capturing import resolve_model

    lm = resolve_model(args.model)
    sentences, _ = resolve_sentences("default", args.sentences, seed=0)
    nlp, info = load_parser(None)
    print(f"model {lm.name} ({lm.num_layers} x {lm.num_heads}), parser {info['name']} {info['version']}, "
          f"{len(sentences)} sentences, batch {args.batch_size}, torch threads {__import__('torch').get_num_threads()}")
    attnlens.atlas(sentences[:8], model=lm, progress=False)  # warm-up
    start = time.perf_counter()
    parse_sentences(nlp, sentences)
    parse_s = time.perf_counter() - start
    start = time.perf_counter()
    attnlens.dependency_heads(sentences, model=lm, limit=None, batch_size=args.batch_size, bootstrap=1000)
    syntax_s = time.perf_counter() - start
    start = time.perf_counter()
    attnlens.atlas(sentences, model=lm, level="word", batch_size=args.batch_size, progress=False)
    atlas_s = time.perf_counter() - start
    n = len(sentences)
    print(f"parse alone:                     {n / parse_s:8.1f} sentences/s ({parse_s:.1f} s)")
    print(f"dependency_heads (parse + pass): {n / syntax_s:8.1f} sentences/s ({syntax_s:.1f} s)")
    print(f"atlas alone (word level):        {n / atlas_s:8.1f} sentences/s ({atlas_s:.1f} s)")
    print(f"dependency_heads / atlas:        {atlas_s / syntax_s:8.2f}x")

    for layers in (None, [lm.num_layers // 2]):
        start = time.perf_counter()
        index = build_index(sentences, lm, layers=layers, batch_size=args.batch_size)
        build_s = time.perf_counter() - start
        per_token = index.bytes_per_token
        full = estimate_bytes(CORPUS_TOKENS, len(index.layers), lm.num_heads, lm.d_head)
        print(f"index, layers {list(index.layers)}: built in {build_s:.1f} s ({index.size / build_s:.0f} tokens/s), "
              f"{index.size} tokens, {index.nbytes / 1e6:.1f} MB = {per_token:.0f} bytes/token; "
              f"whole shipped corpus ({CORPUS_TOKENS:,} tokens): {full / 1e9:.2f} GB"
              + (" (over 2 GB: index one layer or a sample)" if full > 2 * 1024 ** 3 else ""))
    slot_layer = index.layers[0]
    start = time.perf_counter()
    for _ in range(20):
        search(index, slot_layer, 0, vector=index.vectors[0, 0, 0].astype(np.float32), k=20, model=lm)
    search_s = (time.perf_counter() - start) / 20
    big = np.random.default_rng(0).standard_normal((CORPUS_TOKENS, lm.d_head)).astype(np.float16)
    query = big[0].copy()
    start = time.perf_counter()
    for _ in range(5):
        sims = big @ query
        np.argpartition(-sims.astype(np.float32), 19)[:20]
    full_s = (time.perf_counter() - start) / 5
    print(f"search (k=20, incl. re-capturing the hits): {search_s * 1000:.0f} ms per query at {index.size} tokens;"
          f" numpy scan of one head over {CORPUS_TOKENS:,} tokens: {full_s * 1000:.0f} ms")


if __name__ == "__main__":
    main()
