"""Run a model with hooks on its query/key projections and turn the result into Captures.

Attention is recomputed as softmax(q k^T / sqrt(d_head) + mask) from the hooked q/k, so
it is the same whatever attention backend (sdpa, eager, ...) the model was loaded with.
"""

from __future__ import annotations

import functools
import inspect
import math
from contextlib import contextmanager
from typing import Iterable, Sequence

import numpy as np
import torch

from .capture import Capture
from .errors import AttnlensError
from .models import LoadedModel, find_modules, load_model

Pair = tuple[str, str | None]


@contextmanager
def record_qk(lm: LoadedModel):
    """Hook every query/key Linear of `lm`; yields two lists filled in layer order.

    Each entry is the detached projection output, [batch, tokens, heads * d_head].
    """
    queries: list = []
    keys: list = []
    handles = []
    try:
        for pattern, store in ((lm.spec.query, queries), (lm.spec.key, keys)):
            modules = find_modules(lm.model, pattern)
            if not modules:
                raise AttnlensError(f"no module matching {pattern!r} in this {lm.spec.family} model")
            for _, module in modules:
                handles.append(module.register_forward_hook(
                    lambda _mod, _inp, out, store=store: store.append(out.detach())))
        yield queries, keys
    finally:
        for handle in handles:
            handle.remove()


def attention_from_qk(q, k, key_mask):
    """softmax(q k^T / sqrt(d) + mask) per head, in float32.

    q, k: [batch, heads, tokens, d_head]; key_mask: [batch, tokens] (1 = real token).
    Returns [batch, heads, tokens, tokens].
    """
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))  # [B, H, T, T]
    scores.masked_fill_(~key_mask.bool()[:, None, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1)


def _split_heads(x, num_heads: int):
    """[batch, tokens, heads * d] -> [batch, heads, tokens, d]."""
    b, t, hd = x.shape
    return x.view(b, t, num_heads, hd // num_heads).transpose(1, 2)


def _check_text(text, which: str) -> str:
    if not isinstance(text, str):
        raise AttnlensError(f"sentence {which} must be text, got {type(text).__name__}")
    if not text.strip():
        raise AttnlensError(f"sentence {which} is empty")
    return text


def _encode(lm: LoadedModel, text_a: str, text_b: str | None, truncate: bool):
    """Tokenize one input with the tokenizer's own (pair) encoding; checks the length."""
    _check_text(text_a, "A")
    if text_b is not None:
        _check_text(text_b, "B")
    limit = lm.max_length
    enc = lm.tokenizer(text_a, text_b, truncation=bool(truncate), max_length=limit if truncate else None)
    n = len(enc["input_ids"])
    if n > limit:
        raise AttnlensError(f"input is {n} tokens but the model takes at most {limit}; pass truncate=True (--truncate) to cut it")
    return enc


def _token_metadata(lm: LoadedModel, enc):
    """tokens, segment ids, global word ids and the special-token mask of one encoding."""
    ids = list(enc["input_ids"])
    sequence_ids = enc.sequence_ids()
    word_ids = enc.word_ids()
    special = np.array([s is None for s in sequence_ids], dtype=bool)  # [T]
    segments = np.zeros(len(ids), dtype=np.int64)  # [T]
    current = 0
    for i, s in enumerate(sequence_ids):
        current = s if s is not None else current
        segments[i] = current
    first_b_word = 1 + max((w for w, s in zip(word_ids, sequence_ids) if s == 0 and w is not None), default=-1)
    words = np.array([
        -1 if w is None else w + (first_b_word if s == 1 else 0) for w, s in zip(word_ids, sequence_ids)
    ], dtype=np.int64)  # [T]
    tokens = lm.tokenizer.convert_ids_to_tokens(ids)
    return tokens, np.array(ids, dtype=np.int64), segments, words, special


@functools.lru_cache(maxsize=None)
def _forward_input_names(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls.forward).parameters)


def _forward_inputs(module) -> frozenset[str]:
    """Names the module's forward accepts (DistilBERT takes no token_type_ids)."""
    return _forward_input_names(type(module))


def _run_batch(lm: LoadedModel, batch):
    """Forward one right-padded batch; returns attention, q and k as float32 numpy arrays.

    Shapes: attention [B, L, H, T, T], queries / keys [B, L, H, T, D], mask [B, T].
    """
    accepted = _forward_inputs(lm.model.base_model)
    inputs = {k: v.to(lm.device) for k, v in batch.items() if k in accepted}
    with torch.inference_mode(), record_qk(lm) as (queries, keys):
        lm.model.base_model(**inputs)
        if len(queries) != lm.num_layers or len(keys) != lm.num_layers:
            raise AttnlensError(f"expected {lm.num_layers} attention layers, hooks saw {len(queries)}")
        mask = batch["attention_mask"].to(lm.device)  # [B, T]
        q = torch.stack([_split_heads(x, lm.num_heads) for x in queries], dim=1).float()  # [B, L, H, T, D]
        k = torch.stack([_split_heads(x, lm.num_heads) for x in keys], dim=1).float()  # [B, L, H, T, D]
        b, n_layers, n_heads, t, _ = q.shape
        attn = torch.empty((b, n_layers, n_heads, t, t), dtype=torch.float32, device=q.device)  # [B, L, H, T, T]
        for layer in range(n_layers):  # one layer at a time keeps the temporaries small
            attn[:, layer] = attention_from_qk(q[:, layer], k[:, layer], mask)
    return attn.cpu().numpy(), q.cpu().numpy(), k.cpu().numpy(), mask.cpu().numpy()


def capture_batch(model: LoadedModel | str | None, pairs: Iterable[Pair | str], *, truncate: bool = False,
                  batch_size: int = 16) -> list[Capture]:
    """Capture many inputs; items are `(sentence_a, sentence_b or None)` or a plain string.

    Inputs are grouped by length to limit padding; each returned Capture holds only its
    real tokens, in the order given.
    """
    lm = resolve_model(model)
    items = [(p, None) if isinstance(p, str) else tuple(p) for p in pairs]
    if not items:
        raise AttnlensError("nothing to capture: the list of inputs is empty")
    for item in items:
        if len(item) != 2:
            raise AttnlensError("each input must be a sentence or a (sentence_a, sentence_b) pair")
    encodings = [_encode(lm, a, b, truncate) for a, b in items]
    order = sorted(range(len(items)), key=lambda i: len(encodings[i]["input_ids"]))
    results: list[Capture | None] = [None] * len(items)
    names = [k for k in lm.tokenizer.model_input_names if k in encodings[0]]
    for start in range(0, len(order), max(1, batch_size)):
        chunk = order[start:start + batch_size]
        # right padding: BERT-style absolute positions count from the first token, so left padding would shift them
        batch = lm.tokenizer.pad([{k: encodings[i][k] for k in names} for i in chunk], return_tensors="pt",
                                 padding_side="right")
        attn, q, k, mask = _run_batch(lm, batch)
        own = np.ascontiguousarray if len(chunk) == 1 else np.array  # copy out of a shared batch buffer
        for row, i in enumerate(chunk):
            n = int(mask[row].sum())  # real tokens come first (right padding)
            tokens, ids, segments, words, special = _token_metadata(lm, encodings[i])
            results[i] = Capture(
                tokens=tokens, token_ids=ids, segment_ids=segments, word_ids=words, special_mask=special,
                attentions=own(attn[row, :, :, :n, :n]),  # [L, H, T, T]
                queries=own(q[row, :, :, :n]),  # [L, H, T, D]
                keys=own(k[row, :, :, :n]),  # [L, H, T, D]
                text_a=items[i][0], text_b=items[i][1], model_name=lm.name,
            )
    return results  # type: ignore[return-value]


@functools.lru_cache(maxsize=4)
def _cached_model(name: str | None) -> LoadedModel:
    return load_model(name)


def resolve_model(model: LoadedModel | str | None) -> LoadedModel:
    """A LoadedModel as given, or loaded once per name (None = the default model)."""
    if isinstance(model, LoadedModel):
        return model
    if model is None or isinstance(model, str):
        return _cached_model(model)
    raise AttnlensError(f"model must be a LoadedModel, a name or a path, not {type(model).__name__}")


def capture(text_a: str, text_b: str | None = None, *, model: LoadedModel | str | None = None,
            truncate: bool = False) -> Capture:
    """Capture attention and per-head q/k for one sentence or sentence pair."""
    return capture_batch(model, [(text_a, text_b)], truncate=truncate)[0]

