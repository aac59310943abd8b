"""The label rule: which pattern(s) dominate a head, or "broad" / "mixed".

Rule (per head, on the corpus mean scores):
1. a scored pattern (any but scores.UNLABELLED: entropy) dominates when its chance-corrected score
   lift = (score - chance) / (1 - chance) is >= `threshold` (default 0.5), where chance is what
   uniform attention scores on the same corpus: the head covers at least half the way from
   chance to perfect. For mass patterns chance is small (~1/length), so this is about "at
   least half of the attention on the targets"; for bag_of_words it keeps an evenly spread
   head over the whole pair (which already overlaps ~0.5 with its own sentence) from counting.
   The label is the dominant patterns' names joined by "+", highest lift first;
2. otherwise the head is "broad" when its entropy is >= `broad_entropy` (default 0.75) times the
   entropy's chance level (uniform attention's entropy). For attnlens's normalized entropy that
   level is 1, so this is "normalized entropy >= 0.75"; for Clark's entropy in nats it is the
   mean log(length);
3. otherwise "mixed".
Without chance levels (chance=None) the raw score is compared with the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scores import UNLABELLED

THRESHOLD = 0.5
BROAD_ENTROPY = 0.75


@dataclass(frozen=True)
class HeadLabel:
    """The label of one head: `name` ("previous_token", "cls+sep", "broad", "mixed") and the scores behind it."""

    layer: int
    head: int
    name: str
    patterns: tuple[tuple[str, float], ...]  # the dominant patterns with their (raw) scores, best first
    best: tuple[str, float]  # the label pattern with the highest lift, even when below the threshold
    entropy: float

    @property
    def score(self) -> float:
        return self.patterns[0][1] if self.patterns else self.best[1]

    def __str__(self) -> str:
        if self.patterns:
            return " + ".join(f"{n} {s:.2f}" for n, s in self.patterns)
        return f"{self.name} (entropy {self.entropy:.2f}; best {self.best[0]} {self.best[1]:.2f})"


def lift(score, chance):
    """(score - chance) / (1 - chance): 0 at chance level, 1 for a perfect head."""
    if chance is None or not np.isfinite(chance) or chance >= 1:
        return score
    return (score - chance) / (1.0 - chance)


def label_heads(scores: dict[str, np.ndarray], *, chance: dict[str, float] | None = None, threshold: float = THRESHOLD,
                broad_entropy: float = BROAD_ENTROPY) -> dict[tuple[int, int], HeadLabel]:
    """Label every head from mean scores {pattern: [L, H]} and chance levels {pattern: float}
    (see the module docstring for the rule)."""
    names = [n for n in scores if n not in UNLABELLED]
    chance = chance or {}
    entropy_chance = chance.get("entropy")
    if entropy_chance is None or not np.isfinite(entropy_chance) or entropy_chance <= 0:
        entropy_chance = 1.0  # compare the raw entropy
    some = next(iter(scores.values()))
    n_layers, n_heads = some.shape
    labels: dict[tuple[int, int], HeadLabel] = {}
    for layer in range(n_layers):
        for head in range(n_heads):
            values = [(n, float(scores[n][layer, head]), float(lift(scores[n][layer, head], chance.get(n))))
                      for n in names if np.isfinite(scores[n][layer, head])]
            values.sort(key=lambda item: -item[2])
            dominant = tuple((n, s) for n, s, up in values if up >= threshold)
            ent = float(scores["entropy"][layer, head]) if "entropy" in scores else float("nan")
            if dominant:
                name = "+".join(n for n, _ in dominant)
            elif np.isfinite(ent) and ent >= broad_entropy * entropy_chance:
                name = "broad"
            else:
                name = "mixed"
            best = values[0][:2] if values else ("", float("nan"))
            labels[(layer, head)] = HeadLabel(layer, head, name, dominant, best, ent)
    return labels
