"""Attention as a sum of score terms: softmax(q . k * content_scale + sum of recorded terms + mask).

Recorders whose scores add position terms to the content score (DeBERTa's disentangled
attention, MPNet's relative bias) record each term as an extra in logit units ([B, L, H, T, T]),
and the per-head scale of q . k as the extra CONTENT_SCALE ([B, L, H]), so the attention of a
saved capture can be recomputed (and its terms shown) without the model.
"""

from __future__ import annotations

import torch

from ..recorders import Recorder, layer_scores, softmax_scores
from ..scratch import scratch

CONTENT_SCALE = "content_scale"  # extra [B, L, H]: the factor q . k is multiplied by


def scale_extra(scale, batch: int, n_layers: int, n_heads: int, device) -> torch.Tensor:
    """A constant content scale as the [B, L, H] extra."""
    return torch.full((batch, n_layers, n_heads), float(scale), dtype=torch.float32, device=device)


class ScoreTerms(Recorder):
    """Base of recorders whose attention is softmax(q . k * content_scale + the `score_terms` extras)."""

    def attention(self, queries, keys, mask, extras):
        b, n_layers, n_heads, t, _ = queries.shape
        scale = extras[CONTENT_SCALE]  # [B, L, H]
        attn = scratch("attention", (b, n_layers, n_heads, t, t), device=queries.device)  # [B, L, H, T, T]
        for layer in range(n_layers):  # one layer at a time keeps the temporaries small
            scores = layer_scores(queries[:, layer], keys[:, layer])  # [B, H, T, T]
            scores.mul_(scale[:, layer, :, None, None])
            for name in self.score_terms:
                if name in extras:
                    scores.add_(extras[name][:, layer])  # [B, H, T, T]
            softmax_scores(scores, mask, out=attn[:, layer])
        return attn
