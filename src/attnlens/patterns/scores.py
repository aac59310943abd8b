"""The patterns: one operational definition each, scored per query position.

Every pattern is a pure function `(attn [L, H, U, U], layout) -> (values [L, H, U], defined [U])`
(with leading batch axes on both for a padded batch): `values[..., i]` is the score of query
position i, in [0, 1]; `defined[i]` says whether the
pattern is defined for that query (the corpus score averages over defined queries only).
Unless said otherwise, queries are content positions (not [CLS]/[SEP]: their rows behave
differently) and the value is the attention *mass* the query puts on the pattern's target
keys, so a score of 0.8 means "80% of the attention goes to the targets".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import AttnlensError
from .layout import Layout


def _pairs(mask: np.ndarray) -> np.ndarray:
    """mask[i] & mask[j] for every (query i, key j).  # [..., U, U]"""
    return mask[..., :, None] & mask[..., None, :]


def _same(values: np.ndarray) -> np.ndarray:
    """values[i] == values[j] for every (query i, key j).  # [..., U, U]"""
    return values[..., :, None] == values[..., None, :]


def _per_head(mask: np.ndarray) -> np.ndarray:
    """[..., U, U] -> [..., 1, 1, U, U], to broadcast against attention [..., L, H, U, U]."""
    return mask[..., None, None, :, :]


def _mass(attn: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Attention mass of each query on its targets: attn [..., L, H, U, U], targets [..., U, U] -> [..., L, H, U]."""
    return np.where(_per_head(targets), attn, 0).sum(axis=-1)  # [..., L, H, U]


def _shift_targets(layout: Layout, offset: int) -> np.ndarray:
    """targets[i, i + offset] when both are text tokens of the same sentence.  # [..., U, U]"""
    shift = np.eye(layout.size, k=offset, dtype=bool)  # [U, U]
    return shift & _pairs(layout.content) & _same(layout.segment)


def next_token_targets(layout: Layout) -> np.ndarray:
    """Next token: query i -> key i+1, both text tokens of the same sentence.

    Defined for every text token that has a text token after it in its sentence (the last
    token of a sentence, [CLS] and [SEP] are left out).
    """
    return _shift_targets(layout, +1)


def previous_token_targets(layout: Layout) -> np.ndarray:
    """Previous token: query i -> key i-1, both text tokens of the same sentence.

    Defined for every text token that has a text token before it in its sentence.
    """
    return _shift_targets(layout, -1)


def _same_identity(layout: Layout) -> np.ndarray:
    return _same(layout.identity) & _pairs(layout.content)  # [..., U, U]


def same_token_targets(layout: Layout) -> np.ndarray:
    """Identical tokens, itself included: query i -> every occurrence of its token (any sentence).

    Defined only for tokens that occur at least twice in the input, so that the pattern is
    distinguishable from attending to oneself.
    """
    same = _same_identity(layout)
    return same & (same.sum(axis=-1) >= 2)[..., :, None]


def same_token_other_sentence_targets(layout: Layout) -> np.ndarray:
    """Identical tokens in the other sentence: query i -> occurrences of its token in the other sentence.

    Defined for tokens of a pair that also occur in the other sentence.
    """
    return _same_identity(layout) & ~_same(layout.segment)


def same_word_pieces_targets(layout: Layout) -> np.ndarray:
    """Tokens that predict the word, itself excluded: query i -> the other WordPieces of its word.

    (straw <-> ##berries.) Defined for pieces of words split into two or more pieces; never
    defined at word level, where a word is one position.
    """
    in_word = (layout.group >= 0) & layout.real
    return _same(layout.group) & _pairs(in_word) & ~np.eye(layout.size, dtype=bool)


def cls_targets(layout: Layout) -> np.ndarray:
    """[CLS]: query i -> the special token in first position. Defined for every text token."""
    return layout.content[..., :, None] & layout.is_cls[..., None, :]


def sep_targets(layout: Layout) -> np.ndarray:
    """[SEP]: query i -> every special token except the first (all separators). Defined for every text token."""
    return layout.content[..., :, None] & layout.is_sep[..., None, :]


def own_sentence_targets(layout: Layout) -> np.ndarray:
    """The text tokens of the query's own sentence (the bag-of-words support), for text-token queries."""
    return _pairs(layout.content) & _same(layout.segment)


def bag_of_words(attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Bag of words: attention spread evenly over the query's own sentence.

    Value = overlap sum_j min(a_ij, u_ij) between the query's attention row a_i and the
    uniform distribution u_i over the text tokens of its own sentence; it equals
    1 - total-variation distance(a_i, u_i): 1 for a perfectly even spread over the own
    sentence, 1/n when all attention sits on one of its n tokens, 0 when it all goes to
    the other sentence or to [CLS]/[SEP]. Defined for every text token.
    """
    own = own_sentence_targets(layout)  # [..., U, U]
    sizes = own.sum(axis=-1, keepdims=True)  # [..., U, 1]
    uniform = np.where(own, 1.0 / np.maximum(sizes, 1), 0.0).astype(attn.dtype)  # [..., U, U]
    values = np.minimum(attn, _per_head(uniform)).sum(axis=-1)  # [..., L, H, U]
    return values, layout.content


def entropy(attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Normalized entropy: H(a_i) / log(U) of the query's attention row over all U positions.

    0 = all attention on one key, 1 = perfectly uniform over the whole input. Defined for
    every text token of inputs with at least two positions. "broad" heads are labelled from it.
    """
    logs = np.log(attn, where=attn > 0, out=np.zeros_like(attn))  # [..., L, H, U, U]; 0 log 0 = 0
    lengths = layout.lengths  # [...]
    norm = np.log(np.maximum(lengths, 2)).astype(np.float64)[..., None, None, None]  # [..., 1, 1, 1]
    values = np.clip(-np.einsum("...k,...k->...", attn, logs) / norm, 0.0, 1.0)  # [..., L, H, U]
    return values, layout.content & (lengths >= 2)[..., None]


@dataclass(frozen=True)
class Pattern:
    """A named pattern: its scorer and, for mass patterns, its target-key definition."""

    name: str
    definition: str
    targets: Callable[[Layout], np.ndarray] | None = None  # bool [U, U] of target keys per query
    scorer: Callable[[np.ndarray, Layout], tuple[np.ndarray, np.ndarray]] | None = None

    def score(self, attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """(values [..., L, H, U] in [0, 1], defined bool [..., U]) for attention [..., L, H, U, U].

        `...` are the layout's batch axes (none for one input).
        """
        if self.scorer is not None:
            return self.scorer(attn, layout)
        targets = self.targets(layout)  # [..., U, U]
        return _mass(attn, targets), targets.any(axis=-1)

    @property
    def is_mass(self) -> bool:
        return self.targets is not None


def _definition(fn) -> str:
    return " ".join((fn.__doc__ or "").split())


def _make(name, fn, mass=True) -> Pattern:
    return Pattern(name, _definition(fn) + (
        " Score: mean attention mass on the targets over the defined queries." if mass else ""),
        **({"targets": fn} if mass else {"scorer": fn}))


PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    _make("next_token", next_token_targets),
    _make("previous_token", previous_token_targets),
    _make("same_token", same_token_targets),
    _make("same_token_other_sentence", same_token_other_sentence_targets),
    _make("same_word_pieces", same_word_pieces_targets),
    _make("cls", cls_targets),
    _make("sep", sep_targets),
    _make("bag_of_words", bag_of_words, mass=False),
    _make("entropy", entropy, mass=False),
)}
PATTERN_NAMES: tuple[str, ...] = tuple(PATTERNS)

# The patterns a head can be labelled with (entropy only decides "broad").
LABEL_PATTERNS: tuple[str, ...] = tuple(n for n in PATTERN_NAMES if n != "entropy")


def get_pattern(name: str) -> Pattern:
    """The pattern called `name`, or a clear error listing the known names."""
    try:
        return PATTERNS[name]
    except (KeyError, TypeError):
        raise AttnlensError(f"unknown pattern {name!r}: use one of {', '.join(PATTERN_NAMES)}") from None


def pattern_targets(name: str, layout: Layout) -> np.ndarray:
    """Target keys of pattern `name` per query, bool [..., U, U] (bag_of_words: the own sentence)."""
    if name == "bag_of_words":
        return own_sentence_targets(layout)
    pattern = get_pattern(name)
    if pattern.targets is None:
        raise AttnlensError(f"pattern {name!r} has no target positions (it measures spread, not where attention goes)")
    return np.asarray(pattern.targets(layout))
