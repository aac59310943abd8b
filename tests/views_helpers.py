"""Small Captures built by hand for the view tests (no model needed)."""

from __future__ import annotations

import numpy as np

from attnlens.capturing import Capture
from attnlens.views.payload import softmax_qk


def synthetic_capture(tokens, segment_ids=None, *, layers=2, heads=3, d_head=8, seed=0, text_a="a", text_b=None):
    """A Capture whose attention is softmax(q.k/sqrt(d)) of random q/k."""
    rng = np.random.default_rng(seed)
    t = len(tokens)
    q = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    k = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    seg = np.zeros(t, np.int64) if segment_ids is None else np.asarray(segment_ids, np.int64)
    return Capture(
        tokens=list(tokens), token_ids=np.arange(t), segment_ids=seg, word_ids=np.arange(t),
        special_mask=np.zeros(t, bool), attentions=softmax_qk(q, k).astype(np.float32), queries=q, keys=k,
        text_a=text_a, text_b=text_b, model_name="synthetic",
    )
