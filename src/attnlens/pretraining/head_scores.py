"""Previous-/next-token head scores logged during training, from captured attention.

Same definition as the atlas's previous_token / next_token scores: for every query token
whose neighbour (i-1, resp. i+1) is a non-special token of the same sentence, the attention
mass on that neighbour, averaged over all such queries of a corpus. A temporary stand-in
until training logs the atlas's own scorer.
"""

from __future__ import annotations

import numpy as np

from ..record import capture_batch


def positional_scores(captures) -> dict[str, np.ndarray]:
    """{"previous_token": [L, H], "next_token": [L, H]} over a list of Captures."""
    sums = {"previous_token": 0.0, "next_token": 0.0}
    counts = {"previous_token": 0, "next_token": 0}
    for cap in captures:
        attn = cap.attentions  # [L, H, T, T]
        real = ~cap.special_mask  # [T]
        seg = cap.segment_ids  # [T]
        valid = real[1:] & real[:-1] & (seg[1:] == seg[:-1])  # [T-1] pair (i, i+1) inside one sentence
        i = np.flatnonzero(valid)  # query i attends to i+1; query i+1 attends to i
        sums["next_token"] = sums["next_token"] + attn[:, :, i, i + 1].sum(-1)  # [L, H]
        sums["previous_token"] = sums["previous_token"] + attn[:, :, i + 1, i].sum(-1)  # [L, H]
        counts["next_token"] += len(i)
        counts["previous_token"] += len(i)
    return {k: np.asarray(sums[k], dtype=np.float64) / max(1, counts[k]) for k in sums}


def sentence_pairs(documents: list[list[str]], n: int) -> list[tuple[str, str]]:
    """Up to `n` consecutive-sentence pairs, taken round-robin across documents."""
    pairs, index = [], 0
    docs = [d for d in documents if len(d) >= 2]
    while docs and len(pairs) < n:
        progressed = False
        for d in docs:
            if index + 1 < len(d) and len(pairs) < n:
                pairs.append((d[index], d[index + 1]))
                progressed = True
        if not progressed:
            break
        index += 2
    return pairs


def model_head_scores(loaded_model, pairs) -> dict[str, np.ndarray]:
    """Capture `pairs` (truncated to the model's length) and score them."""
    return positional_scores(capture_batch(loaded_model, pairs, truncate=True, batch_size=32))
