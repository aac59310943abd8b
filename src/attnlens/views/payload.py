"""The one serializer from a Capture to what every front-end host receives.

A payload is ``(meta, buffers)``:

* ``meta`` - a JSON-able dict: format tag, model name, the two sentences, the counts
  (layers, heads, tokens, d_head), the token metadata (tokens, segment ids, word ids,
  special mask) and, for each buffer, its dtype, shape and encoding.
* ``buffers`` - ``{name: bytes}``, one per layer and kind, so a host can load (or a
  server can send) one layer at a time:

  ``queries/<layer>``    float16 [head, token, d_head]  (absent when the capture has no q/k: ``has_qk`` false,
  ``keys/<layer>``       float16 [head, token, d_head]   a family without an entry; the neuron view is hidden)
  ``terms/<layer>``      float16 [term, head, query, key]  only for families whose scores add terms to q . k
                         (``score_terms`` names them in order, ``content_scale`` [layer][head] is the factor
                         of q . k): score = q . k * content_scale + sum of the terms, in logit units
  ``thumbs/<layer>``     uint8   [head, n, n]  model-view thumbnails: the maximum weight of
                         each block of queries x keys (block edges floor(k * T / n),
                         n = min(T, THUMB_SIZE)), coded like attention below
  ``attention/<layer>``  uint8   [head, query, key]  only when ``attention_code`` is
                         ``"sqrt-uint8"``: v = round(255 * sqrt(weight)), weight ~= (v / 255) ** 2
  ``value_norms/<layer>`` float16 [head, key]  ||f_h(x_j)|| (a capture made with values=True): the page
                         draws the value_norm lens as attention x norm, rows renormalised
  ``grad_weights/<layer>`` uint8 [head, query, key]  the grad_weights lens when the capture carries it
                         (``Capture.extras["grad_weights"]``), rows renormalised, sqrt-coded like attention

``lenses`` lists what the page's lens selector offers: weights, rollout (computed in the page from the
weights), value_norm and grad_weights when their buffers are there.

Attention weights are softmax(q . k / sqrt(d_head)) of the shipped q/k (for a decoder's capture,
``causal`` true, with the causal mask: a query's weights on later keys are 0; where the capture knows
each layer's mask, ``bands`` [layer] = [lo, hi] (null: unbounded) keeps only the keys j with j - i in
[lo, hi], e.g. ModernBERT's and Qwen2's sliding windows) whenever that
reproduces the capture's own weights (``attention_code: "qk"``, checked on sampled rows,
the largest difference found is ``attention_error``): the page then carries no T x T
arrays at all and computes each layer when it is drawn. Otherwise (attention that is not
a plain softmax of q.k) the weights are shipped as sqrt-coded uint8, which keeps small
weights distinguishable: a decoded weight ``w`` is off by at most
``sqrt(w) / 255 + 1 / 255**2 / 4``.
The uint8 buffers are gzip'd (``encoding: "gzip"``, undone in the browser by ``DecompressionStream``)
when that saves at least a tenth of their size; float16 vectors are not tried (their mantissas do not compress:
q/k came out at 1.00 of their size, and trying was 70% of the payload's build time); little-endian throughout.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np

from ..capturing import Capture, score_term_names
from ..errors import AttnlensError

FORMAT = "attnlens.view/1"
ATTENTION_LEVELS = 255


def quantize_attention(weights: np.ndarray) -> np.ndarray:
    """float weights in [0, 1] -> uint8 codes round(255 * sqrt(w))."""
    clipped = np.clip(np.asarray(weights, dtype=np.float32), 0.0, 1.0)
    return np.rint(np.sqrt(clipped) * ATTENTION_LEVELS).astype(np.uint8)


def dequantize_attention(codes: np.ndarray) -> np.ndarray:
    """uint8 codes -> float32 weights (v / 255) ** 2."""
    return np.square(codes.astype(np.float32) / ATTENTION_LEVELS)


def attention_error_bound(weights: np.ndarray) -> np.ndarray:
    """Largest possible |decoded - weight| for each weight (the quantization step)."""
    return np.sqrt(np.clip(weights, 0.0, 1.0)) / ATTENTION_LEVELS + 0.25 / ATTENTION_LEVELS ** 2


def _gzip(data: bytes, level: int) -> bytes:
    packer = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip container, no timestamp
    return packer.compress(data) + packer.flush()


def _to_float16(x: np.ndarray, what: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise AttnlensError(f"the capture's {what} contain NaN or infinite values")
    return np.clip(x, -65504.0, 65504.0).astype("<f2")


def _check(cap: Capture) -> None:
    n_layers, n_heads, t = cap.num_layers, cap.num_heads, cap.num_tokens
    if t == 0:
        raise AttnlensError("the capture has no tokens")
    if cap.attentions.shape != (n_layers, n_heads, t, t):
        raise AttnlensError(f"attentions have shape {cap.attentions.shape}, expected {(n_layers, n_heads, t, t)}")
    for name in ("queries", "keys") if cap.has_qk else ():
        shape = getattr(cap, name).shape
        if shape[:3] != (n_layers, n_heads, t) or len(shape) != 4:
            raise AttnlensError(f"{name} have shape {shape}, expected ({n_layers}, {n_heads}, {t}, d_head)")
    for name in ("segment_ids", "word_ids", "special_mask"):
        if len(getattr(cap, name)) != t:
            raise AttnlensError(f"{name} has {len(getattr(cap, name))} entries for {t} tokens")
    if cap.bands is not None and len(cap.bands) != n_layers:
        raise AttnlensError(f"the capture has {len(cap.bands)} attention bands for {n_layers} layers")


def band_mask(bands, rows: np.ndarray, n_keys: int) -> np.ndarray:
    """[L, Tq, Tk] bool: key j is allowed for the query at position rows[r] of layer l, j - rows[r] in
    [lo, hi] of bands[l] = (lo, hi) (None: unbounded on that side)."""
    offset = np.arange(n_keys)[None, :] - np.asarray(rows)[:, None]  # [Tq, Tk] = j - i
    out = np.ones((len(bands), *offset.shape), dtype=bool)  # [L, Tq, Tk]
    for layer, (lo, hi) in enumerate(bands):
        if lo is not None:
            out[layer] &= offset >= lo
        if hi is not None:
            out[layer] &= offset <= hi
    return out


def softmax_qk(q: np.ndarray, k: np.ndarray, causal: bool = False, rows=None, bands=None) -> np.ndarray:
    """softmax(q . k / sqrt(d)) over the last axis; q: [..., Tq, D], k: [..., Tk, D] -> [..., Tq, Tk].

    causal: query i gets weight 0 on every key j > i, where i is the row's position (`rows`: the positions
    of q's rows, default 0..Tq-1). bands: one (lo, hi) per index of q's first (layer) axis: query i gets
    weight 0 on every key j with j - i outside [lo, hi] (None: unbounded on that side)."""
    scores = np.matmul(q.astype(np.float64), np.swapaxes(k.astype(np.float64), -1, -2)) / np.sqrt(q.shape[-1])
    positions = np.arange(q.shape[-2]) if rows is None else np.asarray(rows)
    if causal:
        scores = np.where(np.arange(k.shape[-2])[None, :] > positions[:, None], -np.inf, scores)  # [..., Tq, Tk]
    if bands is not None:
        allowed = band_mask(bands, positions, k.shape[-2])  # [L, Tq, Tk]
        allowed = allowed.reshape(len(bands), *([1] * (scores.ndim - 3)), *allowed.shape[1:])  # [L, 1.., Tq, Tk]
        scores = np.where(allowed, scores, -np.inf)  # [L, ..., Tq, Tk]
    scores -= scores.max(axis=-1, keepdims=True)
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def qk_attention_error(cap: Capture, rows: int = 16) -> float:
    """Largest |softmax(q16 . k16 / sqrt(d)) - capture weight| over `rows` sampled query rows per head."""
    picks = np.unique(np.linspace(0, cap.num_tokens - 1, min(rows, cap.num_tokens)).astype(int))
    q16 = cap.queries[:, :, picks].astype(np.float16)  # [L, H, rows, D]
    k16 = cap.keys.astype(np.float16)  # [L, H, T, D]
    derived = softmax_qk(q16, k16, bool(cap.causal), picks, cap.bands)  # [L, H, rows, T]
    return float(np.abs(derived - cap.attentions[:, :, picks]).max())


QK_TOLERANCE = 0.01
SHIPPED_LENSES = ("grad_weights",)  # per-head lenses a capture may carry in extras, shipped as sqrt-uint8
THUMB_SIZE = 96


def score_terms(cap: Capture) -> dict[str, np.ndarray]:
    """The capture's score terms (extras added to the scaled q . k), name -> [L, H, T, T]; {} without q/k."""
    if not cap.has_qk:
        return {}
    shape = (cap.num_layers, cap.num_heads, cap.num_tokens, cap.num_tokens)
    return {name: cap.extras[name] for name in score_term_names() if name in cap.extras
            and cap.extras[name].shape == shape}


def content_scale(cap: Capture) -> list[list[float]]:
    """The factor of q . k per [layer][head] (1 / sqrt(d_head) unless the capture records its own)."""
    scale = cap.extras.get("content_scale")
    if scale is None:
        scale = np.full((cap.num_layers, cap.num_heads), 1.0 / np.sqrt(cap.d_head))
    return [[float(x) for x in row] for row in np.asarray(scale, dtype=np.float64)]


def block_max(weights: np.ndarray, n: int) -> np.ndarray:
    """Max-pool the last two axes [.., T, T] into n x n blocks with edges floor(k * T / n)."""
    t = weights.shape[-1]
    edges = (np.arange(n) * t) // n
    pooled = np.maximum.reduceat(weights, edges, axis=-1)  # [..., T, n]
    return np.maximum.reduceat(pooled, edges, axis=-2)  # [..., n, n]


def _row_shares(maps: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (0 where the sum is 0).  [..., T, T]"""
    maps = np.abs(np.asarray(maps, dtype=np.float32))
    total = maps.sum(-1, keepdims=True)
    return np.divide(maps, total, out=np.zeros_like(maps), where=total > 0)


def build_payload(cap: Capture, *, attention: str = "auto", compress: bool = True,
                  level: int = 1) -> tuple[dict, dict[str, bytes]]:
    """Serialize a Capture into ``(meta, buffers)`` (see the module docstring).

    attention: "auto" (derive from q/k when that reproduces the capture to within
    QK_TOLERANCE, else ship uint8), "qk" or "uint8".
    """
    _check(cap)
    if attention not in ("auto", "qk", "uint8"):
        raise AttnlensError(f"attention must be 'auto', 'qk' or 'uint8', not {attention!r}")
    if attention == "qk" and not cap.has_qk:
        raise AttnlensError("attention='qk' needs the capture's q/k; this capture has none (use 'auto' or 'uint8')")
    if cap.has_qk:
        queries = _to_float16(cap.queries, "queries")  # [L, H, T, D]
        keys = _to_float16(cap.keys, "keys")  # [L, H, T, D]
    terms = score_terms(cap)  # name -> [L, H, T, T]
    error = qk_attention_error(cap) if attention != "uint8" and cap.has_qk else None
    if attention == "qk" or (attention == "auto" and error is not None and error <= QK_TOLERANCE):
        code = "qk"
    else:
        code = "sqrt-uint8"
    buffers: dict[str, bytes] = {}
    entries: dict[str, dict] = {}
    n_layers, n_heads, t, d = cap.num_layers, cap.num_heads, cap.num_tokens, cap.d_head
    thumb = min(t, THUMB_SIZE)
    shipped = {name: _row_shares(cap.extras[name]) for name in SHIPPED_LENSES
               if np.shape(cap.extras.get(name)) == (n_layers, n_heads, t, t)}  # name -> [L, H, T, T]
    norms = getattr(cap, "value_norms", None)
    for layer in range(n_layers):
        arrays = {}
        if norms is not None:
            arrays[f"value_norms/{layer}"] = _to_float16(norms[layer], "value norms")  # [head, key]
        for name, maps in shipped.items():
            arrays[f"{name}/{layer}"] = quantize_attention(maps[layer])  # [head, query, key]
        if cap.has_qk:
            arrays[f"queries/{layer}"] = queries[layer]  # [head, token, d_head]
            arrays[f"keys/{layer}"] = keys[layer]  # [head, token, d_head]
        if terms:
            arrays[f"terms/{layer}"] = _to_float16(np.stack([x[layer] for x in terms.values()]), "score terms")
        arrays[f"thumbs/{layer}"] = quantize_attention(block_max(cap.attentions[layer], thumb))  # [head, n, n]
        if code == "sqrt-uint8":
            arrays[f"attention/{layer}"] = quantize_attention(cap.attentions[layer])  # [head, query, key]
        for name, array in arrays.items():
            raw = np.ascontiguousarray(array).tobytes()
            packed = _gzip(raw, level) if compress and array.dtype == np.uint8 else raw
            encoding = "gzip" if len(packed) <= 0.9 * len(raw) else "raw"
            buffers[name] = packed if encoding == "gzip" else raw
            entries[name] = {"dtype": "uint8" if array.dtype == np.uint8 else "float16",
                             "shape": list(array.shape), "encoding": encoding, "nbytes": len(raw)}
    meta = {
        "format": FORMAT,
        "model_name": str(cap.model_name),
        "text_a": str(cap.text_a),
        "text_b": None if cap.text_b is None else str(cap.text_b),
        "is_pair": bool(cap.is_pair),
        "num_layers": n_layers,
        "num_heads": n_heads,
        "num_tokens": t,
        "d_head": d,
        "tokens": [str(tok) for tok in cap.tokens],
        "segment_ids": [int(s) for s in cap.segment_ids],
        "word_ids": [int(w) for w in cap.word_ids],
        "special": [bool(s) for s in cap.special_mask],
        "has_qk": bool(cap.has_qk),
        "causal": bool(cap.causal),  # a decoder: no query attends to a later key (the page masks q . k so)
        "bands": None if cap.bands is None else [[None if x is None else int(x) for x in band]
                                                 for band in cap.bands],  # [layer] [lo, hi]: allowed j - i
        "score_terms": list(terms),
        "content_scale": content_scale(cap) if terms else None,
        "attention_code": code,
        "attention_error": error,
        "lenses": ["weights", "rollout"] + (["value_norm"] if norms is not None else []) + list(shipped),
        "thumb_size": thumb,
        "buffers": entries,
    }
    return meta, buffers


def decode_buffer(meta: dict, buffers: dict[str, bytes], name: str) -> np.ndarray:
    """One buffer back as a numpy array (attention decoded to float32 weights)."""
    entry = meta["buffers"][name]
    data = buffers[name]
    if entry["encoding"] == "gzip":
        data = gzip.decompress(data)
    array = np.frombuffer(data, dtype=np.uint8 if entry["dtype"] == "uint8" else "<f2").reshape(entry["shape"])
    return dequantize_attention(array) if entry["dtype"] == "uint8" else array.astype(np.float32)


def decode_payload(meta: dict, buffers: dict[str, bytes]) -> dict[str, np.ndarray]:
    """What a page sees, all layers stacked: attentions [L, H, T, T] (decoded, or derived
    from q/k as the page does), queries / keys [L, H, T, D] (float32, when the payload has them),
    terms [L, term, H, T, T] (when it has score terms), value_norms [L, H, T] and grad_weights [L, H, T, T]
    (row shares, when it has them)."""
    layers = range(meta["num_layers"])
    kinds = [k for k in ("queries", "keys", "terms", "value_norms", "grad_weights") if f"{k}/0" in meta["buffers"]]
    out = {kind: np.stack([decode_buffer(meta, buffers, f"{kind}/{layer}") for layer in layers]) for kind in kinds}
    if meta["attention_code"] == "qk":
        out["attentions"] = softmax_qk(out["queries"], out["keys"], bool(meta.get("causal")),
                                       bands=meta.get("bands")).astype(np.float32)
    else:
        out["attentions"] = np.stack([decode_buffer(meta, buffers, f"attention/{layer}") for layer in layers])
    return out
