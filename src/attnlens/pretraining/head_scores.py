"""Previous-/next-token head scores logged during training: the atlas's own scorer on held-out pairs."""

from __future__ import annotations

import numpy as np

from .. import corpus as corpora
from ..analysis.run import atlas

LOGGED = ("previous_token", "next_token")


def sentence_pairs(documents: list[list[str]], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Up to `n` consecutive-sentence pairs of the held-out documents (a seeded sample)."""
    if n <= 0 or not any(len(d) >= 2 for d in documents):
        return []
    return corpora.sentence_pairs(documents, seed=seed, limit=n)


def model_head_scores(loaded_model, pairs) -> dict[str, np.ndarray]:
    """{"previous_token": [L, H], "next_token": [L, H]}: the atlas's scores of `pairs` on the model."""
    result = atlas(pairs, model=loaded_model, progress=False)
    return {name: result.scores[name] for name in LOGGED}
