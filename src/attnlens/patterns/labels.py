"""The label rule: which pattern(s) dominate a head, or "broad" / "mixed".

Rule (per head, on the corpus mean scores):
1. every pattern of LABEL_PATTERNS whose score is >= `threshold` (default 0.5: at least half of
   the attention, or for bag_of_words at least half the overlap with an even spread) is a
   dominant pattern; the label is their names joined by "+", highest score first;
2. otherwise the head is "broad" when its normalized entropy is >= `broad_entropy` (default 0.75),
3. otherwise "mixed".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scores import LABEL_PATTERNS

THRESHOLD = 0.5
BROAD_ENTROPY = 0.75


@dataclass(frozen=True)
class HeadLabel:
    """The label of one head: `name` ("previous_token", "cls+sep", "broad", "mixed") and the scores behind it."""

    layer: int
    head: int
    name: str
    patterns: tuple[tuple[str, float], ...]  # the dominant patterns with their scores, best first
    best: tuple[str, float]  # the best-scoring label pattern, even when below the threshold
    entropy: float

    @property
    def score(self) -> float:
        return self.patterns[0][1] if self.patterns else self.best[1]

    def __str__(self) -> str:
        if self.patterns:
            return " + ".join(f"{n} {s:.2f}" for n, s in self.patterns)
        return f"{self.name} (entropy {self.entropy:.2f}; best {self.best[0]} {self.best[1]:.2f})"


def label_heads(scores: dict[str, np.ndarray], *, threshold: float = THRESHOLD,
                broad_entropy: float = BROAD_ENTROPY) -> dict[tuple[int, int], HeadLabel]:
    """Label every head from mean scores {pattern: [L, H]} (see the module docstring for the rule)."""
    names = [n for n in LABEL_PATTERNS if n in scores]
    some = next(iter(scores.values()))
    n_layers, n_heads = some.shape
    labels: dict[tuple[int, int], HeadLabel] = {}
    for layer in range(n_layers):
        for head in range(n_heads):
            values = [(n, float(scores[n][layer, head])) for n in names if np.isfinite(scores[n][layer, head])]
            values.sort(key=lambda item: -item[1])
            dominant = tuple((n, s) for n, s in values if s >= threshold)
            ent = float(scores["entropy"][layer, head]) if "entropy" in scores else float("nan")
            if dominant:
                name = "+".join(n for n, _ in dominant)
            elif np.isfinite(ent) and ent >= broad_entropy:
                name = "broad"
            else:
                name = "mixed"
            best = values[0] if values else ("", float("nan"))
            labels[(layer, head)] = HeadLabel(layer, head, name, dominant, best, ent)
    return labels
