"""MPNet: q . k / sqrt(d) plus a learned relative-position bias per head.

transformers' `MPNetEncoder` computes the bias [B, H, T, T] once per forward (bucketed relative
positions, `relative_attention_bias`) and passes it to every layer's `MPNetSelfAttention`, which
adds it to the scaled scores. The recorder hooks the q/k Linears and reads the bias each layer
receives, recorded as the extra POSITION_BIAS [B, L, H, T, T] (logit units).
"""

from __future__ import annotations

import math

import torch

from ...errors import AttnlensError
from ..recorders import Recorded, head_output_norms, register_recorder, split_heads
from .terms import CONTENT_SCALE, ScoreTerms, scale_extra

POSITION_BIAS = "position_bias"


@register_recorder
class RelativeBias(ScoreTerms):
    """softmax(q . k / sqrt(d) + relative position bias + mask): MPNet."""

    name = "relative_bias"
    score_terms = (POSITION_BIAS,)

    def hooks(self):
        if not self.spec.attention:
            raise AttnlensError(f"family {self.spec.family!r} declares no attention module for the relative_bias "
                                "recorder")
        entries = [(self.spec.query, self.collect("q")), (self.spec.key, self.collect("k")),
                   (self.spec.attention, self._record_bias)]
        if self.values:
            entries += [(self.spec.value, self.collect("v")),
                        (self.spec.output, self.collect("w_o", lambda module, _output: module.weight))]
        return entries

    def _record_bias(self, _module, inputs, _output):
        bias = inputs[2] if len(inputs) > 2 else None  # MPNetAttention passes (hidden, mask, position_bias)
        self.store.setdefault("bias", []).append(None if bias is None else bias.detach())

    def finish(self, output, mask):
        h = self.lm.num_heads
        q = torch.stack([split_heads(x, h) for x in self.layers("q")], dim=1).float()  # [B, L, H, T, D]
        k = torch.stack([split_heads(x, h) for x in self.layers("k")], dim=1).float()  # [B, L, H, T, D]
        b, n_layers, _, t, d = q.shape
        extras = {CONTENT_SCALE: scale_extra(1.0 / math.sqrt(d), b, n_layers, h, q.device)}  # [B, L, H]
        biases = self.layers("bias")
        if all(x is not None for x in biases):
            extras[POSITION_BIAS] = torch.stack([x.float().expand(b, h, t, t) for x in biases],
                                                dim=1)  # [B, L, H, T, T]
        norms = None
        if self.values:
            norms = torch.stack([head_output_norms(v, w, h) for v, w in
                                 zip(self.layers("v"), self.layers("w_o"))], dim=1)  # [B, L, H, T]
        return Recorded(q, k, norms, extras)
