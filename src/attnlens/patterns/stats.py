"""Sufficient statistics of pattern scores over a corpus: sums, sums of squares and counts.

Scoring is a reduction, so corpora of any length (and shards computed on other machines)
add up exactly: `a.merge(b)` is the statistics of both corpora together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import AttnlensError
from .layout import check_level, layout_of, word_level
from .scores import PATTERN_NAMES, get_pattern


@dataclass
class PatternStats:
    """Per pattern and head: sum and sum of squares of the per-query scores, and the query count.

    total   float64 [P, L, H]
    squares float64 [P, L, H]
    count   int64   [P]       defined queries (the same for every head)
    chance  float64 [P]       sum of the scores a uniform attention over the input would get
    inputs  int               inputs (sentences or pairs) scored
    """

    names: tuple[str, ...]
    total: np.ndarray
    squares: np.ndarray
    count: np.ndarray
    chance: np.ndarray
    inputs: int = 0
    skipped: dict = field(default_factory=dict)

    @classmethod
    def zeros(cls, num_layers: int, num_heads: int, names=PATTERN_NAMES) -> "PatternStats":
        names = tuple(names)
        for name in names:
            get_pattern(name)
        shape = (len(names), num_layers, num_heads)
        return cls(names, np.zeros(shape), np.zeros(shape), np.zeros(len(names), np.int64), np.zeros(len(names)))

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.total.shape[1:])  # type: ignore[return-value]

    def add(self, attn: np.ndarray, layout, level: str = "token") -> None:
        """Add one input's attention [L, H, T, T] (token level; aggregated here when level='word')."""
        check_level(level)
        if attn.shape[:2] != self.shape:
            raise AttnlensError(f"attention has {attn.shape[:2]} layers x heads, these statistics {self.shape}")
        if level == "word":
            attn, layout = word_level(attn, layout)  # [L, H, U, U]
        n = layout.size
        uniform = np.full((1, 1, n, n), 1.0 / n)  # [1, 1, U, U]: the chance baseline
        for p, name in enumerate(self.names):
            pattern = get_pattern(name)
            values, defined = pattern.score(attn, layout)  # [L, H, U], [U]
            chosen = values[..., defined]  # [L, H, Q]
            self.total[p] += chosen.sum(axis=-1)
            self.squares[p] += np.square(chosen).sum(axis=-1)
            self.count[p] += int(defined.sum())
            base, base_defined = pattern.score(uniform, layout)
            self.chance[p] += float(base[..., base_defined].sum())
        self.inputs += 1

    def add_capture(self, cap, level: str = "token") -> None:
        """Add one Capture."""
        self.add(cap.attentions, layout_of(cap), level)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def merge(self, other: "PatternStats") -> "PatternStats":
        """The statistics of both corpora together (exact: sums and counts add)."""
        if other.names != self.names or other.shape != self.shape:
            raise AttnlensError("cannot merge pattern statistics of different patterns or model shapes")
        skipped = dict(self.skipped)
        for reason, n in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        return PatternStats(self.names, self.total + other.total, self.squares + other.squares,
                            self.count + other.count, self.chance + other.chance, self.inputs + other.inputs, skipped)

    def mean(self) -> np.ndarray:
        """Mean score per pattern and head, NaN where the pattern was never defined.  # [P, L, H]"""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.total / np.where(self.count > 0, self.count, np.nan)[:, None, None]

    def std(self) -> np.ndarray:
        """Standard deviation of the per-query scores (the spread).  # [P, L, H]"""
        mean = self.mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            var = self.squares / np.where(self.count > 0, self.count, np.nan)[:, None, None] - mean ** 2
        return np.sqrt(np.clip(var, 0.0, None))

    def chance_mean(self) -> np.ndarray:
        """What uniform attention over each input would score, per pattern.  # [P]"""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.chance / np.where(self.count > 0, self.count, np.nan)
