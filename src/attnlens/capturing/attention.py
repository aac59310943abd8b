"""Attention recomputed from the hooked query/key projections: softmax(q k^T / sqrt(d_head) + mask).

This is the same whatever attention backend (sdpa, eager, ...) the model was loaded with.
"""

from __future__ import annotations

import functools
import inspect
import math
from contextlib import contextmanager

import torch

from ..errors import AttnlensError
from .hooks import hooks
from .loading import LoadedModel


@contextmanager
def record_qk(lm: LoadedModel):
    """Hook every query/key Linear of `lm`; yields two lists filled in layer order.

    Each entry is the detached projection output, [batch, tokens, heads * d_head].
    """
    queries: list = []
    keys: list = []

    def store_in(store: list):
        return lambda _module, _inputs, output: store.append(output.detach())

    with hooks(lm.model, [(lm.spec.query, store_in(queries)), (lm.spec.key, store_in(keys))]):
        yield queries, keys


def attention_from_qk(q, k, key_mask):
    """softmax(q k^T / sqrt(d) + mask) per head, in float32.

    q, k: [batch, heads, tokens, d_head]; key_mask: [batch, tokens] (1 = real token).
    Returns [batch, heads, tokens, tokens].
    """
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))  # [B, H, T, T]
    scores.masked_fill_(~key_mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)


def split_heads(x, num_heads: int):
    """[batch, tokens, heads * d] -> [batch, heads, tokens, d]."""
    b, t, hd = x.shape
    return x.view(b, t, num_heads, hd // num_heads).transpose(1, 2)


@functools.lru_cache(maxsize=None)
def _forward_input_names(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def model_inputs(module, batch: dict, device) -> dict:
    """The tensors of `batch` that `module.forward` accepts (DistilBERT takes no token_type_ids), on `device`."""
    accepted = _forward_input_names(type(module))
    return {k: v.to(device) for k, v in batch.items() if k in accepted}


def forward_attention(lm: LoadedModel, batch: dict):
    """Forward one right-padded batch; returns attention, q and k as float32 numpy arrays.

    Shapes: attention [B, L, H, T, T], queries / keys [B, L, H, T, D], mask [B, T].
    """
    inputs = model_inputs(lm.model.base_model, batch, lm.device)
    with torch.inference_mode(), record_qk(lm) as (queries, keys):
        lm.model.base_model(**inputs)
        if len(queries) != lm.num_layers or len(keys) != lm.num_layers:
            raise AttnlensError(f"expected {lm.num_layers} attention layers, hooks saw {len(queries)}")
        mask = batch["attention_mask"].to(lm.device)  # [B, T]
        q = torch.stack([split_heads(x, lm.num_heads) for x in queries], dim=1).float()  # [B, L, H, T, D]
        k = torch.stack([split_heads(x, lm.num_heads) for x in keys], dim=1).float()  # [B, L, H, T, D]
        b, n_layers, n_heads, t, _ = q.shape
        attn = torch.empty((b, n_layers, n_heads, t, t), dtype=torch.float32, device=q.device)  # [B, L, H, T, T]
        for layer in range(n_layers):  # one layer at a time keeps the temporaries small
            attn[:, layer] = attention_from_qk(q[:, layer], k[:, layer], mask)
    return attn.cpu().numpy(), q.cpu().numpy(), k.cpu().numpy(), mask.cpu().numpy()
