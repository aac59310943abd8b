"""Sufficient statistics of pattern scores over a corpus: sums, sums of squares and counts.

Scoring is a reduction, so corpora of any length (and shards computed on other machines)
add up exactly: `a.merge(b)` is the statistics of both corpora together.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import AttnlensError
from .layout import Layout, check_level, layout_of, word_level
from .scores import DEFAULT_DEFINITIONS, get_definitions


@dataclass
class PatternStats:
    """Per pattern and head: sum and sum of squares of the per-query scores, and the query count.

    total   float64 [P, L, H]
    squares float64 [P, L, H]
    count   int64   [P]       defined queries (the same for every head)
    chance  float64 [P]       sum of the scores a uniform attention over the input would get
    inputs  int               inputs (sentences or pairs) scored
    definitions str           the pattern definitions (scores.DEFINITIONS); with unit "input" (clark)
                              each sample is one input's mean over its rows and count counts inputs
    causal  bool              the inputs were a decoder's (causal layouts): chance uses row length i + 1
    """

    names: tuple[str, ...]
    total: np.ndarray
    squares: np.ndarray
    count: np.ndarray
    chance: np.ndarray
    inputs: int = 0
    skipped: dict = field(default_factory=dict)
    definitions: str = DEFAULT_DEFINITIONS
    causal: bool = False

    @classmethod
    def zeros(cls, num_layers: int, num_heads: int, names=None,
              definitions: str | None = None) -> "PatternStats":
        """Empty statistics of `names` (None: every pattern of `definitions`, None: attnlens's own, that needs
        nothing beyond the tokens: same_lemma, which needs a parser's lemmas, only when named)."""
        defs = get_definitions(definitions)
        names = defs.scored() if names is None else tuple(names)
        for name in names:
            defs.pattern(name)
        shape = (len(names), num_layers, num_heads)
        return cls(names, np.zeros(shape), np.zeros(shape), np.zeros(len(names), np.int64), np.zeros(len(names)),
                   definitions=defs.name)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.total.shape[1:])  # type: ignore[return-value]

    def add(self, attn: np.ndarray, layout, level: str = "token") -> None:
        """Add one input's attention [L, H, T, T], or a padded batch's [B, L, H, T, T] with a
        batched layout (see stack_layouts); level='word' aggregates each input to words first."""
        check_level(level)
        defs = get_definitions(self.definitions)
        defs.check_level(level)
        batch_axes = layout.batch_shape
        if attn.shape[len(batch_axes):len(batch_axes) + 2] != self.shape:
            raise AttnlensError(f"attention has {attn.shape[-4:-2]} layers x heads, these statistics {self.shape}")
        if level == "word":
            if batch_axes:
                for b in range(batch_axes[0]):
                    n = int(layout.lengths[b])
                    self.add(attn[b][..., :n, :n], _unbatch(layout, b, n), level)
                return
            attn, layout = word_level(attn, layout)  # [L, H, U, U]
        self.causal = self.causal or layout.causal
        rows = np.maximum(layout.row_lengths, 1)  # [..., U] keys each query can see (causal: i + 1)
        uniform = (layout.visible & layout.real[..., None, :]) / rows[..., :, None]  # [..., U, U]
        uniform = np.broadcast_to(uniform[..., None, None, :, :], (*batch_axes, 1, 1, layout.size, layout.size))
        sum_axes = tuple(range(len(batch_axes)))
        reduce = _REDUCERS[defs.unit]
        patterns = [defs.pattern(name) for name in self.names]
        mass_rows = [p for p, pattern in enumerate(patterns) if pattern.is_mass]
        if mass_rows:
            targets = np.stack([patterns[p].targets(layout) for p in mass_rows], axis=-3)  # [..., P, U, U]
            masses = _masses(attn, targets)  # [..., P, L, H, U]
        for p, pattern in enumerate(patterns):
            if pattern.is_mass:
                k = mass_rows.index(p)
                values, defined = (masses[..., k, :, :, :],  # [..., L, H, U]
                                   pattern.defined(layout, targets[..., k, :, :]))  # [..., U]
                base = targets[..., k, :, :].sum(axis=-1) / rows  # [..., U] uniform attention's mass
            else:
                values, defined = pattern.score(attn, layout)  # [..., L, H, U], [..., U]
                base = pattern.score(uniform, layout)[0][..., 0, 0, :]  # [..., U]
            chosen = np.where(defined[..., None, None, :], values, 0).astype(np.float64)  # [..., L, H, U]
            base = np.where(defined, base, 0).astype(np.float64)  # [..., U]
            samples, chance, count = reduce(chosen, base, defined)  # [..., L, H, S], [..., S], int
            self.total[p] += samples.sum(axis=sum_axes + (-1,))
            self.squares[p] += np.square(samples).sum(axis=sum_axes + (-1,))
            self.count[p] += count
            self.chance[p] += float(chance.sum())
        self.inputs += int(np.prod(batch_axes)) if batch_axes else 1

    def add_capture(self, cap, level: str = "token") -> None:
        """Add one Capture."""
        self.add(cap.attentions, layout_of(cap), level)

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def merge(self, other: "PatternStats") -> "PatternStats":
        """The statistics of both corpora together (exact: sums and counts add)."""
        if other.names != self.names or other.shape != self.shape or other.definitions != self.definitions:
            raise AttnlensError("cannot merge pattern statistics of different patterns, definitions or model shapes")
        skipped = dict(self.skipped)
        for reason, n in other.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        return PatternStats(self.names, self.total + other.total, self.squares + other.squares,
                            self.count + other.count, self.chance + other.chance, self.inputs + other.inputs, skipped,
                            self.definitions, self.causal or other.causal)

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


def _by_query(values: np.ndarray, base: np.ndarray, defined: np.ndarray):
    """Every defined query is one sample: (values [..., L, H, U], chance [..., U], count)."""
    return values, base, int(defined.sum())


def _by_input(values: np.ndarray, base: np.ndarray, defined: np.ndarray):
    """Every input with a defined row is one sample, its mean over those rows: ([..., L, H, 1], [..., 1], count)."""
    rows = defined.sum(axis=-1, keepdims=True)  # [..., 1]
    scale = np.where(rows > 0, 1.0 / np.maximum(rows, 1), 0.0)  # [..., 1]
    return values.sum(axis=-1, keepdims=True) * scale[..., None, None, :], base.sum(axis=-1, keepdims=True) * scale, \
        int((rows > 0).sum())


# How the per-row values of one input become samples of the corpus mean (Definitions.unit).
_REDUCERS = {"query": _by_query, "input": _by_input}


def _masses(attn: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Attention mass on the targets of several patterns in one matrix product.

    attn [..., L, H, U, U], targets bool [..., P, U, U] -> [..., P, L, H, U]
    (mass[p, l, h, i] = sum_j attn[l, h, i, j] * targets[p, i, j]).
    """
    *batch, n_layers, n_heads, n, _ = attn.shape
    by_query = np.moveaxis(attn.reshape(*batch, n_layers * n_heads, n, n), -2, -3)  # [..., U(query), L*H, U(key)]
    keys_by_pattern = np.moveaxis(targets.astype(attn.dtype), -3, -1)  # [..., U(query), U(key), P]
    product = by_query @ keys_by_pattern  # [..., U(query), L*H, P]
    product = np.moveaxis(product, -3, -1)  # [..., L*H, P, U]
    product = np.moveaxis(product, -2, -3)  # [..., P, L*H, U]
    return product.reshape(*batch, targets.shape[-3], n_layers, n_heads, n)  # [..., P, L, H, U]


def _unbatch(layout: Layout, b: int, n: int) -> Layout:
    """Input b of a batched layout, cut to its n real positions."""
    return Layout(layout.identity[b, :n], layout.segment[b, :n], layout.group[b, :n], layout.special[b, :n],
                  layout.is_cls[b, :n], punct=layout.is_punct[b, :n],
                  lemma=None if layout.lemma is None else layout.lemma[b, :n],
                  lemma_word=None if layout.lemma_word is None else layout.lemma_word[b, :n], causal=layout.causal)
