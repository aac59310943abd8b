"""Capture (attention + per-head q/k as numpy) against a bare forward pass of the same model.

Two baselines, on the same token tensors, in the same process, runs interleaved:
- bare forward: the model's own forward with its default attention backend (sdpa), which
  returns no attention weights (the lower bound; target: capture within 1.2x of it);
- eager + output_attentions: the same weights loaded with attn_implementation="eager" and
  called with output_attentions=True, what users otherwise run to get attention weights
  (it returns attention tensors only: no q/k, no numpy conversion).
Timed on our side: "capture core" = forward with q/k hooks + attention recomputed + attention,
q and k as float32 numpy arrays; "capture_batch" = that plus tokenization, batching and the
per-input Capture objects. Prints, per shape, the median seconds and the ratios.

    python benchmarks/bench_capture.py [--repeats 5] [--threads N] [--quick]

On a busy machine, --threads 1 gives steadier ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

import attnlens
from attnlens.capturing import forward_attention

SHAPES = ((1, 128), (32, 128), (1, 512))


def text_of(lm, n_tokens: int, seed: int) -> str:
    """A text that tokenizes to exactly n_tokens (specials included): single-piece words."""
    vocab = [w for w in lm.tokenizer.get_vocab() if w.isalpha() and len(w) > 2 and not w.startswith("##")]
    g = torch.Generator().manual_seed(seed)
    words = [vocab[int(i)] for i in torch.randint(len(vocab), (n_tokens - 2,), generator=g)]
    text = " ".join(words)
    assert len(lm.tokenizer(text)["input_ids"]) == n_tokens
    return text


def median_times(fns, repeats: int) -> list[float]:
    """Median seconds of each function; runs are interleaved so machine load hits all alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, store in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def eager_model(lm):
    """The same weights with eager attention, which can return attention weights."""
    from transformers import AutoModel

    path = lm.model.config._name_or_path
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    assert model.config._attn_implementation == "eager"
    return model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="--repeats 3")
    args = parser.parse_args()
    if args.quick:
        args.repeats = 3
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = attnlens.load_model()  # sdpa, the default backend
    eager = eager_model(lm)
    print(f"model {lm.name} ({lm.config._attn_implementation}; baseline 2: eager + output_attentions=True), "
          f"torch threads {torch.get_num_threads()}, median of {args.repeats}")
    print(f"{'batch x tokens':>15} {'bare forward s':>15} {'capture core s':>15} {'ratio':>6} "
          f"{'capture_batch s':>16} {'ratio':>6}   {'eager+attn s':>13} {'core/eager':>10} {'batch/eager':>11}")
    for batch, tokens in SHAPES:
        texts = [text_of(lm, tokens, seed) for seed in range(batch)]
        enc = lm.tokenizer(texts, return_tensors="pt", padding=True)

        def bare(enc=enc):
            with torch.inference_mode():
                lm.model(**enc)

        def eager_attentions(enc=enc):  # what users run to get the weights without attnlens
            with torch.inference_mode():
                out = eager(**enc, output_attentions=True)
            assert len(out.attentions) == lm.num_layers

        def core(enc=enc):  # forward with hooks + attention recomputed + numpy arrays
            forward_attention(lm, enc)

        def end_to_end(texts=texts, batch=batch):  # tokenization, batching and per-input Capture objects included
            attnlens.capture_batch(lm, texts, batch_size=batch)

        t_bare, t_core, t_e2e, t_eager = median_times([bare, core, end_to_end, eager_attentions], args.repeats)
        print(f"{f'{batch} x {tokens}':>15} {t_bare:>15.4f} {t_core:>15.4f} {t_core / t_bare:>5.2f}x "
              f"{t_e2e:>16.4f} {t_e2e / t_bare:>5.2f}x   {t_eager:>13.4f} {t_core / t_eager:>9.2f}x "
              f"{t_e2e / t_eager:>10.2f}x")
    print("ratio = ours / bare sdpa forward (target <= 1.2x); core/eager and batch/eager = ours / eager forward "
          "with output_attentions=True (below 1 = faster than eager)")


if __name__ == "__main__":
    main()
