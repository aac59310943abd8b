"""Atlas throughput against a bare sdpa forward over the same corpus, and peak memory vs corpus size.

Prints, from one run:
- tokens/s of a bare forward (tokenize, pad, sdpa forward of the unmodified model, same
  length-sorted batches), of the atlas's batches without scoring (q/k hooks, every head's attention
  recomputed: the floor of any exact per-head atlas) and of the atlas (the same plus every pattern
  scored), and the atlas's ratio to the bare forward (target >= 0.95x);
- peak RSS of the atlas at each corpus size, each measured in a fresh subprocess, and the
  growth over the RSS before scoring (target: flat in the corpus size).

Peak RSS would also count glibc heap fragmentation from the varying batch shapes; score_pairs bounds
it itself (analysis/heap.py: the heap's free pages are handed back once the resident memory passes a
ceiling set over the first batches; the batch-sized arrays live in reused buffers, capturing/scratch.py),
with nothing to set in the environment.

The ratio depends on the model's shape: the atlas adds work per attention weight (B x L x H x T x T: the
weights materialised, every pattern reduced over them) to a forward whose cost grows with the width squared per
token. `--model random-base` measures a randomly initialised BERT-base-sized encoder (hidden 768, 12 layers, 12
heads; the default model's tokenizer): the same attention work per layer as all-MiniLM-L6-v2 (12 heads) on a
4x costlier forward per layer. Random weights change no cost here (the atlas does the same work whatever the
attention looks like).

Usage: python benchmarks/bench_atlas.py [--pairs 500] [--sizes 1000,10000] [--batch-size 32]
                                        [--model default|random-base|PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def current_rss_mb() -> float:
    from attnlens.analysis.heap import resident_bytes

    resident = resident_bytes()
    return float("nan") if resident is None else resident / 2**20


def bare_forward(lm, pairs, batch_size: int) -> int:
    """Tokenize, sort by length, pad and run the plain model on its device; returns the real-token count."""
    import torch

    encodings = [lm.tokenizer(a, b) for a, b in pairs]
    encodings = [e for e in encodings if len(e["input_ids"]) <= lm.max_length]
    encodings.sort(key=lambda e: len(e["input_ids"]))
    names = [k for k in lm.tokenizer.model_input_names if k in encodings[0]]
    tokens = 0
    with torch.inference_mode():
        for start in range(0, len(encodings), batch_size):
            chunk = encodings[start:start + batch_size]
            batch = lm.tokenizer.pad([{k: e[k] for k in names} for e in chunk], return_tensors="pt")
            lm.model.base_model(**{k: v.to(lm.device) for k, v in batch.items()})
            tokens += int(batch["attention_mask"].sum())
    return tokens


def attention_only(lm, pairs, batch_size: int) -> None:
    """The atlas's batches (recorded forward, every head's attention materialised) without the pattern scoring:
    what any exact per-head atlas has to pay before it scores anything."""
    from attnlens.capturing import batches, reused_scratch

    with reused_scratch():
        for batch in batches(lm, pairs, batch_size=batch_size):
            batch.attentions  # noqa: B018  (computed on first read)


def bench_model(name: str):
    """The LoadedModel measured: the default model, a random BERT-base-sized encoder, or a model folder / name."""
    from attnlens import load_model

    if name == "default":
        return load_model()  # sdpa attention (the transformers default)
    if name == "random-base":
        import torch
        from transformers import BertConfig, BertModel

        from attnlens.capturing import LoadedModel

        torch.manual_seed(0)
        tokenizer = load_model().tokenizer
        return LoadedModel(BertModel(BertConfig(vocab_size=len(tokenizer)), add_pooling_layer=False), tokenizer,
                           "random BERT-base size")
    return load_model(name)


def throughput(n_pairs: int, batch_size: int, repeats: int, model: str = "default") -> dict:
    from attnlens.analysis.run import resolve_pairs, score_pairs

    lm = bench_model(model)
    pairs, _ = resolve_pairs("default", n_pairs)
    tokens = sum(len(lm.tokenizer(a, b)["input_ids"]) for a, b in pairs)
    bare_forward(lm, pairs[:64], batch_size)  # warm-up
    bare, attention, atlas = [], [], []
    for _ in range(repeats):  # interleaved, best of `repeats`: the machine is shared
        t0 = time.perf_counter()
        bare_forward(lm, pairs, batch_size)
        bare.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        attention_only(lm, pairs, batch_size)
        attention.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        stats = score_pairs(lm, pairs, batch_size=batch_size)
        atlas.append(time.perf_counter() - t0)
    assert stats.inputs == len(pairs)
    return {"pairs": len(pairs), "tokens": tokens, "attn_implementation": lm.model.config._attn_implementation,
            "model": lm.name, "shape": f"hidden {lm.config.hidden_size}, {lm.num_layers} layers, {lm.num_heads} heads",
            "bare_tokens_per_s": tokens / min(bare), "attention_tokens_per_s": tokens / min(attention),
            "atlas_tokens_per_s": tokens / min(atlas), "ratio": min(bare) / min(atlas),
            "attention_ratio": min(bare) / min(attention)}


def memory_child(n_pairs: int, batch_size: int) -> dict:
    from attnlens import load_model
    from attnlens.analysis.run import resolve_pairs, score_pairs

    lm = load_model()
    pairs, _ = resolve_pairs("default", n_pairs)
    score_pairs(lm, pairs[:batch_size], batch_size=batch_size)  # warm-up: allocator, kernels
    before = current_rss_mb()
    t0 = time.perf_counter()
    stats = score_pairs(lm, pairs, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    return {"pairs": len(pairs), "scored": stats.inputs, "rss_before_mb": before, "peak_rss_mb": peak_rss_mb(),
            "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=500, help="pairs for the throughput comparison")
    parser.add_argument("--sizes", default="1000,10000", help="corpus sizes for the memory measurement")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="default", help="default, random-base or a model folder / name "
                                                             "(throughput only; the memory runs use the default)")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch_size)))
        return
    import torch

    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}")
    tp = throughput(args.pairs, args.batch_size, args.repeats, args.model)
    print(f"throughput of {tp['model']} ({tp['shape']}) over {tp['pairs']} pairs ({tp['tokens']} tokens, "
          f"default corpus, {tp['attn_implementation']}):")
    print(f"  bare forward   {tp['bare_tokens_per_s']:9.0f} tokens/s")
    print(f"  attention only {tp['attention_tokens_per_s']:9.0f} tokens/s  (recorded forward + every head's "
          f"attention, no scoring: {tp['attention_ratio']:.2f}x the bare forward)")
    print(f"  atlas          {tp['atlas_tokens_per_s']:9.0f} tokens/s")
    print(f"  ratio atlas/bare: {tp['ratio']:.2f}x (target >= 0.95x)")
    rows = []
    for size in [int(s) for s in args.sizes.split(",") if s]:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(size),
                              "--batch-size", str(args.batch_size)],
                             capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("peak memory of the atlas (fresh process per size):")
    for r in rows:
        print(f"  {r['pairs']:6d} pairs: peak RSS {r['peak_rss_mb']:7.0f} MB, "
              f"before scoring {r['rss_before_mb']:7.0f} MB, "
              f"growth {r['peak_rss_mb'] - r['rss_before_mb']:6.0f} MB, {r['pairs'] / r['seconds']:.0f} pairs/s")
    if len(rows) >= 2:
        print(f"  peak ratio largest/smallest corpus: {rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}x "
              f"for {rows[-1]['pairs'] / rows[0]['pairs']:.0f}x the pairs")


if __name__ == "__main__":
    main()
