"""Capture (attention + per-head q/k as numpy) against a bare forward pass of the same model.

Two baselines, on the same token tensors, in the same process, runs interleaved:
- bare forward: the model's own forward with its default attention backend (sdpa), which
  returns no attention weights (the lower bound; target: capture within 1.2x of it);
- eager + output_attentions: the same weights loaded with attn_implementation="eager" and
  called with output_attentions=True, what users otherwise run to get attention weights
  (it returns attention tensors only: no q/k, no numpy conversion).
Timed on our side: "capture core" = forward with the recorder's hooks, q and k as float32 numpy
arrays (attention is recomputed from them only when asked for); "core+attn" = that plus the
whole batch's attention materialised as numpy [B, L, H, T, T]; "capture_batch" = tokenization,
batching, the forward and the per-input Capture objects (attention lazy); "batch+attn" = that
plus every capture's `.attentions` read. Baseline "bare+tok" = tokenization + bare forward.
Prints, per shape, the median seconds and the ratios.

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
    print(f"{'batch x tokens':>15} {'bare s':>8} {'core s':>8} {'ratio':>6} {'core+attn':>10} {'ratio':>6} "
          f"{'bare+tok s':>10} {'batch s':>8} {'ratio':>6} {'batch+attn':>10} {'ratio':>6}   "
          f"{'eager+attn s':>12} {'core+attn/eager':>15}")
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

        def bare_tokenized(texts=texts):  # the user's own tokenization + forward
            with torch.inference_mode():
                lm.model(**lm.tokenizer(texts, return_tensors="pt", padding=True))

        def core(enc=enc):  # forward with hooks, q/k as numpy (attention lazy)
            forward_attention(lm, enc)

        def core_attn(enc=enc):  # ... and the batch's attention materialised
            forward_attention(lm, enc).attentions()

        def end_to_end(texts=texts, batch=batch):  # tokenization, batching and per-input Capture objects
            attnlens.capture_batch(lm, texts, batch_size=batch)

        def end_to_end_attn(texts=texts, batch=batch):  # ... and every capture's attention read
            for cap in attnlens.capture_batch(lm, texts, batch_size=batch):
                assert cap.attentions.shape[-1] == len(cap.tokens)  # reading it computes it

        t_bare, t_core, t_core_attn, t_bare_tok, t_e2e, t_e2e_attn, t_eager = median_times(
            [bare, core, core_attn, bare_tokenized, end_to_end, end_to_end_attn, eager_attentions], args.repeats)
        print(f"{f'{batch} x {tokens}':>15} {t_bare:>8.4f} {t_core:>8.4f} {t_core / t_bare:>5.2f}x "
              f"{t_core_attn:>10.4f} {t_core_attn / t_bare:>5.2f}x {t_bare_tok:>10.4f} {t_e2e:>8.4f} "
              f"{t_e2e / t_bare_tok:>5.2f}x {t_e2e_attn:>10.4f} {t_e2e_attn / t_bare_tok:>5.2f}x   "
              f"{t_eager:>12.4f} {t_core_attn / t_eager:>14.2f}x")
    print("core ratios are over the bare sdpa forward (target <= 1.1x), batch ratios over tokenization + bare forward "
          "(target <= 1.2x); core+attn/eager = ours with attention materialised / eager forward with "
          "output_attentions=True (below 1 = faster than eager)")
    family_rows(args.repeats)


# ---- one row per family: a small random model of each, capture vs its own bare forward (same run) ----
FAMILY_SHAPE = (8, 128)  # batch x tokens
SMALL = dict(vocab_size=30522, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
             max_position_embeddings=514)


def family_configs() -> dict:
    """family -> a transformers config of a small random model (DeBERTa as v3 sets it; xlm: no entry, the fallback)."""
    from transformers import BertConfig, DebertaV2Config, MPNetConfig, XLMConfig

    return {
        "bert": BertConfig(**SMALL),
        "deberta-v2": DebertaV2Config(**SMALL, relative_attention=True, pos_att_type=["p2c", "c2p"],
                                      position_buckets=256, share_att_key=True, norm_rel_ebd="layer_norm",
                                      position_biased_input=False, type_vocab_size=0),
        "mpnet": MPNetConfig(**SMALL),
        "xlm (fallback)": XLMConfig(vocab_size=30522, emb_dim=256, n_layers=4, n_heads=4, max_position_embeddings=512),
    }


def family_rows(repeats: int) -> None:
    from transformers import AutoModel

    from attnlens.capturing import LoadedModel

    tokenizer = attnlens.load_model().tokenizer
    batch, tokens = FAMILY_SHAPE
    print(f"\nper family: small random models (hidden 256, 4 layers), {batch} x {tokens} tokens, median of {repeats}")
    print(f"{'family':>15} {'recorder':>18} {'bare s':>8} {'core s':>8} {'ratio':>6} {'core+attn':>10} {'ratio':>6}")
    for family, config in family_configs().items():
        torch.manual_seed(0)
        lm = LoadedModel(AutoModel.from_config(config), tokenizer, name=family)
        texts = [text_of(lm, tokens, seed) for seed in range(batch)]
        enc = lm.tokenizer(texts, return_tensors="pt", padding=True)

        def bare(lm=lm, enc=enc):
            with torch.inference_mode():
                lm.model(**{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask")})

        def core(lm=lm, enc=enc):
            forward_attention(lm, enc)

        def core_attn(lm=lm, enc=enc):
            forward_attention(lm, enc).attentions()

        t_bare, t_core, t_attn = median_times([bare, core, core_attn], repeats)
        print(f"{family:>15} {lm.spec.recorder:>18} {t_bare:>8.4f} {t_core:>8.4f} {t_core / t_bare:>5.2f}x "
              f"{t_attn:>10.4f} {t_attn / t_bare:>5.2f}x")
    print("ratio = ours / the same model's bare forward (default backend); the fallback's core includes the forward "
          "with eager attention and output_attentions")


if __name__ == "__main__":
    main()
