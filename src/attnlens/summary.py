"""A short plain-text summary of a Capture: per layer, its most focused heads and where they look."""

from __future__ import annotations

import numpy as np

from .capture import Capture


def target_kinds(cap: Capture) -> np.ndarray:
    """For every key position j relative to every query i, a label index into KINDS.

    Returns int [T, T]: special tokens first (by their own text), then self/prev/next, else other.
    """
    n = cap.num_tokens
    kinds = np.full((n, n), KINDS.index("other"), dtype=np.int64)  # [T, T]
    i, j = np.indices((n, n))
    kinds[j == i - 1] = KINDS.index("previous")
    kinds[j == i + 1] = KINDS.index("next")
    kinds[j == i] = KINDS.index("self")
    for pos in np.flatnonzero(cap.special_mask):
        kinds[:, pos] = KINDS.index("first special" if pos == 0 else "later special")
    return kinds


KINDS = ("previous", "next", "self", "first special", "later special", "other")


def summarize(cap: Capture, top: int = 3) -> str:
    """Per layer: the `top` heads with the most focused attention (highest mean max weight),
    and for each the kind of position its queries' strongest key usually is."""
    n = cap.num_tokens
    kinds = target_kinds(cap)  # [T, T]
    argmax = cap.attentions.argmax(-1)  # [L, H, T]
    focus = cap.attentions.max(-1).mean(-1)  # [L, H]
    first = cap.tokens[0]
    later = sorted({cap.tokens[p] for p in np.flatnonzero(cap.special_mask) if p > 0}) or ["-"]
    names = {"first special": first, "later special": "/".join(later)}
    pair = f" + B ({len(cap.text_b)} chars)" if cap.is_pair else ""
    lines = [f"{cap.model_name}: {cap.num_layers} layers x {cap.num_heads} heads, {n} tokens, d_head {cap.d_head}; "
             f"sentence A{pair}",
             "tokens: " + " ".join(cap.tokens)]
    for layer in range(cap.num_layers):
        parts = []
        for head in np.argsort(-focus[layer], kind="stable")[:top]:
            counts = np.bincount(kinds[np.arange(n), argmax[layer, head]], minlength=len(KINDS))
            kind = KINDS[int(counts.argmax())]
            share = counts.max() / n
            parts.append(f"h{head} {names.get(kind, kind)} {share:.0%} (focus {focus[layer, head]:.2f})")
        lines.append(f"layer {layer}: " + "; ".join(parts))
    return "\n".join(lines)
