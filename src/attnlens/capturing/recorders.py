"""Recorders: how one family's attention is recorded during a forward pass and recomputed from it.

A recorder is named by its family's `ArchSpec.recorder`. It gives the hooks to install for one
forward (`hooks()`), turns what they saw into stacked tensors (`finish()`) and recomputes the
attention from those tensors (`attention()`), so attention can be materialised for a whole batch
or lazily for one input. A new way of computing attention (relative-position terms, rotary
positions, a fused projection, the model's own `output_attentions`) is one more registered
recorder, not a branch elsewhere.

Every recorder can also record the value side of each head when asked (`values=True`):
``value_norms[l, h, j] = || f_h(x_j) ||`` with ``f_h(x_j) = (x_j W_V^h + b_V^h) W_O^h``, the
norm of what head h passes on from token j (Kobayashi et al. 2020, "Attention is not only a
weight"). W_O^h is the head's slice of the attention output projection, read from the module
the output hook fires on, so shared-weight models (ALBERT) get the right matrix per layer.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..errors import AttnlensError
from .scratch import scratch


@dataclass
class Recorded:
    """What one forward recorded, as float32 tensors on the model's device.

    queries / keys [B, L, H, T, D] (None when the family gives no q/k); value_norms [B, L, H, T]
    (None unless values were asked for); extras: family-specific terms, each [B, L, H, T, ...]
    with every axis from the fourth on a token axis; attentions [B, L, H, T, T] only when the
    recorder took them from the model itself (else they are recomputed with `attention()`).
    """

    queries: torch.Tensor | None
    keys: torch.Tensor | None
    value_norms: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    attentions: torch.Tensor | None = None


class Recorder:
    """Base class: collects hook outputs in call order (= layer order) for one forward."""

    name = ""
    gives_qk = True  # records per-head queries/keys (False: the attention comes from the model alone)
    score_terms: tuple[str, ...] = ()  # extras added to the scaled q . k before the softmax (a score decomposition)

    def __init__(self, lm, *, values: bool = False):
        self.lm = lm
        self.spec = lm.spec
        self.values = values
        self.store: dict[str, list] = {}

    def collect(self, key: str, get: Callable = lambda module, output: output):
        """A forward hook appending `get(module, output)` (detached) to `self.store[key]`."""
        bucket = self.store.setdefault(key, [])

        def hook(module, _inputs, output):
            item = get(module, output)
            bucket.append(item.detach() if isinstance(item, torch.Tensor) else item)

        return hook

    def layers(self, key: str) -> list:
        """The records of `key`, one per attention layer (an error if the hooks saw another count)."""
        items = self.store.get(key, [])
        if len(items) != self.lm.num_layers:
            raise AttnlensError(f"expected {self.lm.num_layers} attention layers, hooks saw {len(items)} ({key})")
        return items

    def hooks(self) -> list[tuple[str, Callable]]:
        raise NotImplementedError

    def forward_kwargs(self) -> dict:
        """Extra keyword arguments for the model's forward (e.g. output_attentions)."""
        return {}

    def running(self):
        """A context manager around the forward (e.g. switching the model to eager attention); default none."""
        return contextlib.nullcontext()

    def finish(self, output, mask: torch.Tensor) -> Recorded:
        raise NotImplementedError

    def attention(self, queries, keys, mask, extras: dict) -> torch.Tensor:
        """Attention [B, L, H, T, T] from recorded tensors; mask [B, T] (1 = real token) or None."""
        raise NotImplementedError


_RECORDERS: dict[str, type[Recorder]] = {}


def register_recorder(cls: type[Recorder]) -> type[Recorder]:
    """Class decorator: make `cls` available to ArchSpecs as `recorder=cls.name`."""
    if not cls.name:
        raise AttnlensError(f"recorder {cls.__name__} has no name")
    _RECORDERS[cls.name] = cls
    return cls


def recorder_for(lm, *, values: bool = False) -> Recorder:
    """The recorder of `lm`'s family, ready for one forward."""
    try:
        cls = _RECORDERS[lm.spec.recorder]
    except KeyError:
        raise AttnlensError(f"family {lm.spec.family!r} names recorder {lm.spec.recorder!r}, which does not exist "
                            f"(known: {', '.join(sorted(_RECORDERS))})") from None
    return cls(lm, values=values)


def recorder_names() -> tuple[str, ...]:
    return tuple(sorted(_RECORDERS))


def split_heads(x, num_heads: int):
    """[batch, tokens, heads * d] -> [batch, heads, tokens, d]."""
    b, t, hd = x.shape
    return x.view(b, t, num_heads, hd // num_heads).transpose(1, 2)


def softmax_scores(scores: torch.Tensor, mask, out: torch.Tensor | None = None) -> torch.Tensor:
    """Row softmax of scores [..., T, T] (masked in place), keys outside `mask` [B, T] (1 = real) excluded;
    written into `out` when given."""
    if mask is not None:
        scores.masked_fill_(~mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1, out=out)


def layer_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """q k^T in float32 for one layer ([B, H, T, D] each), in the reused "scores" scratch buffer.  # [B, H, T, T]"""
    b, h, t, _ = q.shape
    out = scratch("scores", (b, h, t, k.shape[-2]), device=q.device)  # [B, H, T, T]
    return torch.matmul(q.float(), k.float().transpose(-1, -2), out=out)


def attention_from_qk(q, k, key_mask, scale: float | None = None, out: torch.Tensor | None = None):
    """softmax(q k^T * scale + mask) per head, in float32 (scale defaults to 1 / sqrt(d_head)).

    q, k: [batch, heads, tokens, d_head]; key_mask: [batch, tokens] (1 = real token) or None.
    Returns [batch, heads, tokens, tokens] (`out` when given). The scores are formed in one pass
    (baddbmm: mask + scale * q k^T, into the reused "scores" buffer), then the softmax.
    """
    b, h, t, d = q.shape
    t_k = k.shape[-2]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    bias = torch.zeros((b, 1, 1, t_k), device=q.device)  # [B, 1, 1, T]: 0 for a real key, -inf for padding
    if key_mask is not None:
        bias.masked_fill_(~key_mask.bool()[:, None, None, :], float("-inf"))
    scores = scratch("scores", (b * h, t, t_k), device=q.device)  # [B * H, T, T]
    torch.baddbmm(bias.expand(b, h, 1, t_k).reshape(b * h, 1, t_k), q.float().reshape(b * h, t, d),
                  k.float().reshape(b * h, t_k, d).transpose(1, 2), alpha=scale, out=scores)
    return torch.softmax(scores.view(b, h, t, t_k), dim=-1, out=out)


def head_output_norms(values: torch.Tensor, out_weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """|| (x W_V^h + b_V^h) W_O^h || per head and token.

    values: the value projection's output [B, T, H * D]; out_weight: the output Linear's weight
    [hidden, H * D]. Uses the head's Gram matrix G_h = W_O^h^T W_O^h ([D, D]) in float64, so no
    [B, H, T, hidden] tensor is formed. Returns [B, H, T] float32.
    """
    v = split_heads(values, num_heads).double()  # [B, H, T, D]
    d = v.shape[-1]
    w = out_weight.double().view(out_weight.shape[0], num_heads, d).transpose(0, 1)  # [H, hidden, D]
    gram = w.transpose(1, 2) @ w  # [H, D, D]
    squared = ((v @ gram[None]) * v).sum(-1)  # [B, H, T]
    return squared.clamp_min(0).sqrt().float()


@register_recorder
class LinearQK(Recorder):
    """softmax(q . k / sqrt(d_head) + padding mask) over the outputs of separate query/key Linears.

    BERT, RoBERTa, ELECTRA, DistilBERT, ALBERT (exact whatever attention backend runs the model).
    """

    name = "linear_qk"

    def hooks(self):
        entries = [(self.spec.query, self.collect("q")), (self.spec.key, self.collect("k"))]
        if self.values:
            if not (self.spec.value and self.spec.output):
                raise AttnlensError(f"family {self.spec.family!r} declares no value/output projections: "
                                    "values=True is not available for it")
            entries += [(self.spec.value, self.collect("v")),
                        (self.spec.output, self.collect("w_o", lambda module, _output: module.weight))]
        return entries

    def finish(self, output, mask):
        h = self.lm.num_heads
        q = torch.stack([split_heads(x, h) for x in self.layers("q")], dim=1).float()  # [B, L, H, T, D]
        k = torch.stack([split_heads(x, h) for x in self.layers("k")], dim=1).float()  # [B, L, H, T, D]
        norms = None
        if self.values:
            norms = torch.stack([head_output_norms(v, w, h) for v, w in
                                 zip(self.layers("v"), self.layers("w_o"))], dim=1)  # [B, L, H, T]
        return Recorded(q, k, norms)

    def attention(self, queries, keys, mask, extras):
        b, n_layers, n_heads, t, _ = queries.shape
        attn = scratch("attention", (b, n_layers, n_heads, t, t), device=queries.device)  # [B, L, H, T, T]
        for layer in range(n_layers):  # one layer at a time keeps the temporaries small
            attention_from_qk(queries[:, layer], keys[:, layer], mask, out=attn[:, layer])
        return attn
