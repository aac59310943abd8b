"""Capture (attention + per-head q/k as numpy) against a bare forward pass of the same model.

The baseline is the model's own forward with its default attention backend (sdpa), on the
same token tensors, in the same process. Prints, per shape, the median seconds and the ratio.
Target: capture within 1.2x of the bare forward.

    python benchmarks/bench_capture.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

import attnlens  # noqa: E402
from attnlens.record import _run_batch  # noqa: E402

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
        for fn, store in zip(fns, times):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    lm = attnlens.load_model()  # sdpa, the default backend
    print(f"model {lm.name} ({lm.config._attn_implementation}), torch threads {torch.get_num_threads()}")
    print(f"{'batch x tokens':>15} {'bare forward s':>15} {'capture core s':>15} {'ratio':>6} "
          f"{'capture_batch s':>16} {'ratio':>6}")
    for batch, tokens in SHAPES:
        texts = [text_of(lm, tokens, seed) for seed in range(batch)]
        enc = lm.tokenizer(texts, return_tensors="pt", padding=True)

        def bare():
            with torch.inference_mode():
                lm.model(**enc)

        def core():  # forward with hooks + attention recomputed + numpy arrays
            _run_batch(lm, enc)

        def end_to_end():  # tokenization, batching and per-input Capture objects included
            attnlens.capture_batch(lm, texts, batch_size=batch)

        t_bare, t_core, t_e2e = median_times([bare, core, end_to_end], args.repeats)
        print(f"{f'{batch} x {tokens}':>15} {t_bare:>15.4f} {t_core:>15.4f} {t_core / t_bare:>5.2f}x "
              f"{t_e2e:>16.4f} {t_e2e / t_bare:>5.2f}x")


if __name__ == "__main__":
    main()
