"""Where a head looks: the one head profile, the per-query kinds of keys, and a plain-text summary.

Both are built on the atlas's pattern definitions (scores.py), so "previous" and "next" mean
what the previous_token / next_token patterns mean everywhere: the text token just before /
after a text-token query, in the same sentence. [CLS] and [SEP] are never a previous or next
token, and a [CLS] / [SEP] query has none.
"""

from __future__ import annotations

import numpy as np

from ..capturing import Capture
from .layout import layout_of
from .scores import PATTERNS, Pattern, next_token_targets, own_sentence_targets, previous_token_targets

# The features of a head profile: each is an atlas pattern (or scored like one), i.e. the attention
# mass on its targets, averaged over the text-token queries it is defined for.
FEATURES: dict[str, Pattern] = {
    "self": PATTERNS["self"],
    "previous": PATTERNS["previous_token"],
    "next": PATTERNS["next_token"],
    "first special": PATTERNS["cls"],
    "other specials": PATTERNS["sep"],
    "same sentence": Pattern("same sentence", "The text tokens of the query's own sentence.",
                             targets=own_sentence_targets),
}


def head_profile(cap: Capture) -> np.ndarray:
    """Per head and feature (FEATURES, in order): the atlas score of that pattern on this one input,
    i.e. the mean over the queries it is defined for of the attention mass on its targets.

    Returns float64 [L, H, K] in [0, 1]; NaN where no query defines the feature (e.g. "previous"
    when every sentence is one token long), as the atlas leaves such a score undefined.
    """
    layout = layout_of(cap)
    attn = cap.attentions  # [L, H, T, T]
    profile = np.full((*attn.shape[:2], len(FEATURES)), np.nan)  # [L, H, K]
    for k, pattern in enumerate(FEATURES.values()):
        values, defined = pattern.score(attn, layout)  # [L, H, T], [T]
        if defined.any():
            profile[..., k] = values[..., defined].astype(np.float64).mean(axis=-1)  # [L, H]
    return profile


KINDS = ("previous", "next", "self", "first special", "later special", "other")


def target_kinds(cap: Capture) -> np.ndarray:
    """What every key j is to every query i, as an index into KINDS.  int [T, T]

    A special key is "first special" ([CLS]) or "later special" ([SEP]) for every query (also for
    special queries); else j is "self", "previous" / "next" (the atlas's previous_token /
    next_token targets), or "other".
    """
    layout = layout_of(cap)
    n = layout.size
    kinds = np.full((n, n), KINDS.index("other"), dtype=np.int64)  # [T, T]
    kinds[previous_token_targets(layout)] = KINDS.index("previous")
    kinds[next_token_targets(layout)] = KINDS.index("next")
    kinds[np.eye(n, dtype=bool)] = KINDS.index("self")
    kinds[:, layout.is_cls] = KINDS.index("first special")
    kinds[:, layout.is_sep] = KINDS.index("later special")
    return kinds


def summarize(cap: Capture, top: int = 3) -> str:
    """Per layer: the `top` heads with the most focused attention (highest mean max weight),
    and for each the kind of key (target_kinds) its queries' strongest weight usually goes to."""
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
