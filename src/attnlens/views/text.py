"""Plain-text renderings of the three views (for the CLI, logs and exact comparisons in tests).

Numbers come straight from the Capture (float32), not from the quantized payload.
"""

from __future__ import annotations

import numpy as np

from ..capturing import Capture
from ..errors import AttnlensError
from ..patterns.profile import KINDS, target_kinds
from .payload import content_scale, score_terms

FILTERS = {"all": (None, None), "AA": (0, 0), "AB": (0, 1), "BA": (1, 0), "BB": (1, 1)}


def _label(cap: Capture, i: int, width: int = 14) -> str:
    text = f"{i} {cap.tokens[i]}"
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _filter_masks(cap: Capture, pair_filter: str) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks of the query rows and key columns a sentence-pair filter keeps."""
    if pair_filter not in FILTERS:
        raise AttnlensError(f"filter must be one of {', '.join(FILTERS)}, not {pair_filter!r}")
    src, dst = FILTERS[pair_filter]
    if src is not None and not cap.is_pair:
        raise AttnlensError(f"filter {pair_filter} needs a sentence pair")
    seg = np.asarray(cap.segment_ids)
    rows = np.ones(cap.num_tokens, bool) if src is None else seg == src  # [T]
    cols = np.ones(cap.num_tokens, bool) if dst is None else seg == dst  # [T]
    return rows, cols


def _check_heads(cap: Capture, layer: int, heads) -> list[int]:
    cap.check_layer_head(layer, 0)
    heads = list(range(cap.num_heads)) if heads is None else [int(h) for h in heads]
    if not heads:
        raise AttnlensError("no heads selected")
    for head in heads:
        cap.check_layer_head(layer, head)
    return heads


def head_view_text(cap: Capture, layer: int = 0, heads=None, *, pair_filter: str = "all", top: int = 3,
                   threshold: float = 0.05) -> str:
    """For each query token, the keys it attends to most (weight averaged over `heads`)."""
    heads = _check_heads(cap, layer, heads)
    rows, cols = _filter_masks(cap, pair_filter)
    weights = cap.attentions[layer, heads].mean(axis=0)  # [query, key]
    shown = "all" if len(heads) == cap.num_heads else ",".join(map(str, heads))
    lines = [f"head view: layer {layer}, heads {shown}, filter {pair_filter}, "
             f"top {top} keys with weight >= {threshold:g}" + _CAUSAL * bool(cap.causal)]
    for i in np.flatnonzero(rows):
        w = np.where(cols, weights[i], -1.0)  # [key]
        order = [j for j in np.argsort(-w, kind="stable")[:top] if w[j] >= threshold]
        targets = "  ".join(f"{_label(cap, j, 999)} {w[j]:.2f}" for j in order) or "-"
        lines.append(f"{_label(cap, i):<14} -> {targets}")
    return "\n".join(lines)


_KIND_LABELS = {"previous": "-1", "next": "+1", "self": "+0"}
_CAUSAL = " (causal: each token attends only to itself and earlier tokens)"


def _head_digest(att: np.ndarray, kinds: np.ndarray, tokens: list[str]) -> str:
    """Where one head's strongest weight usually goes (patterns.profile.target_kinds: -1 = the
    previous token, +1 = the next, +0 = itself, @tok = a special token or else the usual position)."""
    t = att.shape[0]
    best = att.argmax(axis=1)  # [query]
    best_kinds = kinds[np.arange(t), best]  # [query]
    counts = np.bincount(best_kinds, minlength=len(KINDS))
    kind = KINDS[int(counts.argmax())]
    if kind in _KIND_LABELS:
        where, share = _KIND_LABELS[kind], counts.max() / t
    else:  # a token: the special one, or the most common other position
        chosen = best[best_kinds == KINDS.index(kind)]
        positions, pos_counts = np.unique(chosen, return_counts=True)
        where = f"@{tokens[int(positions[pos_counts.argmax()])]}"
        share = (pos_counts.max() if kind == "other" else counts.max()) / t
    return f"{where[:8]} {share:.0%} {float(att.max(axis=1).mean()):.2f}"


def model_view_text(cap: Capture) -> str:
    """One cell per layer x head: where its strongest weight usually goes (an offset `-1`/`+1`/`+0`
    as the atlas defines previous/next, or a token `@tok`), for what share of the queries, and the
    mean strongest weight."""
    width = 18
    kinds = target_kinds(cap)  # [T, T]
    header = "     " + "".join(f"H{h:<{width - 1}}" for h in range(cap.num_heads))
    lines = ["model view: per head, the usual target of the strongest weight, share of queries, mean strongest weight"
             + _CAUSAL * bool(cap.causal), header.rstrip()]
    for layer in range(cap.num_layers):
        cells = [_head_digest(cap.attentions[layer, head], kinds, cap.tokens) for head in range(cap.num_heads)]
        lines.append((f"L{layer:<4}" + "".join(f"{c:<{width}}" for c in cells)).rstrip())
    return "\n".join(lines)


def _window(cap: Capture, layer: int, query: int) -> tuple[int, int]:
    """The first and last key `query` can see in `layer`: a decoder's sees none after itself, a local layer's
    (Capture.bands: allowed offsets j - i in [lo, hi]) none outside its band."""
    first, last = 0, query if cap.causal else cap.num_tokens - 1
    lo, hi = (None, None) if cap.bands is None else cap.bands[layer]
    if lo is not None:
        first = max(first, query + lo)
    if hi is not None:
        last = min(last, query + hi)
    return first, last


def neuron_view_text(cap: Capture, layer: int, head: int, query: int, *, dims: int = 3) -> str:
    """For one query token: q, then per key q.k, q.k/sqrt(d), the softmax weight and the
    dimensions of q x k that contribute most. A family whose scores add terms to q . k
    (DeBERTa's position terms, MPNet's relative bias) gets one column per term and their total."""
    cap.check_layer_head(layer, head)
    if not 0 <= query < cap.num_tokens:
        raise AttnlensError(f"token {query} is out of range: the input has tokens 0..{cap.num_tokens - 1}")
    cap.require_qk("the neuron view")
    q = cap.queries[layer, head, query].astype(np.float64)  # [D]
    k = cap.keys[layer, head].astype(np.float64)  # [key, D]
    products = k * q  # [key, D]
    dots = products.sum(axis=1)  # [key]
    terms = {name: x[layer, head, query].astype(np.float64) for name, x in score_terms(cap).items()}  # [key] each
    scale = content_scale(cap)[layer][head]
    scaled = dots * scale  # [key]
    total = scaled + sum(terms.values())  # [key]
    weights = cap.attentions[layer, head, query]  # [key]
    shown = "q.k/sqrt(d)" if not terms else f"q.k*{scale:.3g}"
    widths = {name: max(12, len(name)) for name in terms}
    head_line = f"{'key':<14} {'q.k':>9} {shown:>12}" + "".join(f" {name:>{widths[name]}}" for name in terms)
    head_line += f" {'score':>9}" * bool(terms) + f" {'softmax':>8}  top q x k dims"
    lo, hi = _window(cap, layer, query)  # the keys this query can see: lo..hi
    outside = (query + 1 if cap.causal else cap.num_tokens) - (hi - lo + 1)  # cut by the layer's band
    lines = [f"neuron view: layer {layer}, head {head}, query {_label(cap, query, 999)}, d_head {cap.d_head}"
             + (f"{_CAUSAL}; the {cap.num_tokens - 1 - query} later keys are masked" if cap.causal else "")
             + (f"; this layer attends within a window: keys {lo}..{hi}, the {outside} "
                f"{'earlier' if cap.causal else 'other'} key{'s' * (outside > 1)} masked" if outside else ""),
             "q = [" + " ".join(f"{v:.3f}" for v in q) + "]", head_line]
    for j in range(lo, hi + 1):  # a decoder's query sees no later key; a local layer's none outside its window
        top = np.argsort(-np.abs(products[j]), kind="stable")[:dims]
        contrib = " ".join(f"{d}:{products[j, d]:+.3f}" for d in top)
        cells = "".join(f" {x[j]:>{widths[n]}.3f}" for n, x in terms.items()) + (f" {total[j]:>9.3f}" if terms else "")
        lines.append(f"{_label(cap, j):<14} {dots[j]:>9.3f} {scaled[j]:>12.3f}{cells} {weights[j]:>8.3f}  {contrib}")
    return "\n".join(lines)
