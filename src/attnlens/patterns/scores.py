"""The patterns: one operational definition each, scored per query position.

Every pattern is a pure function `(attn [L, H, U, U], layout) -> (values [L, H, U], defined [U])`
(with leading batch axes on both for a padded batch): `values[..., i]` is the score of query
position i, in [0, 1]; `defined[i]` says whether the
pattern is defined for that query (the corpus score averages over defined queries only).
Unless said otherwise, queries are content positions (not [CLS]/[SEP]: their rows behave
differently) and the value is the attention *mass* the query puts on the pattern's target
keys, so a score of 0.8 means "80% of the attention goes to the targets".

`PATTERNS` are attnlens's own definitions; a pattern that needs more than the tokens declares it
(`Pattern.needs`: same_lemma needs the parser's lemmas, `Layout.lemma`) and is scored only when the
layouts carry it. `DEFINITIONS` names whole sets of them: "attnlens"
(the default) and "clark", Clark et al. 2019's surface statistics (every row counted, offsets
across sentence boundaries, per-input averages, entropy in nats), for comparison with the paper.

Causal (decoder) inputs (`Layout.causal`): a query's targets are only the keys it can see (j <= i),
so a query whose targets all lie in the future is not defined for the pattern, and a pattern that
only ever looks ahead (next_token) is defined for no query at all: its score is NaN, "not defined",
never 0 (`Pattern.undefined_reason` says why). Chance levels and the entropy's normalisation use the
causal row length (query i has i + 1 keys); the decoder's first token is scored like [CLS].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..capturing.scratch import scratch, scratch_like
from ..errors import AttnlensError
from .layout import Layout


def _pairs(mask: np.ndarray) -> np.ndarray:
    """mask[i] & mask[j] for every (query i, key j).  # [..., U, U]"""
    return mask[..., :, None] & mask[..., None, :]


def _same(values: np.ndarray) -> np.ndarray:
    """values[i] == values[j] for every (query i, key j).  # [..., U, U]"""
    return values[..., :, None] == values[..., None, :]


def _torch(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing `array`'s memory (a copy when it is read-only: torch would warn)."""
    return torch.from_numpy(array if array.flags.writeable else array.copy())


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
    distinguishable from attending to oneself (causal inputs: twice up to the query).
    """
    same = _same_identity(layout) & layout.visible
    return same & (same.sum(axis=-1) >= 2)[..., :, None]


def same_token_other_sentence_targets(layout: Layout) -> np.ndarray:
    """Identical tokens in the other sentence: query i -> occurrences of its token in the other sentence.

    Defined for tokens of a pair that also occur in the other sentence.
    """
    return _same_identity(layout) & ~_same(layout.segment)


def same_word_pieces_targets(layout: Layout) -> np.ndarray:
    """Pieces of its word beyond its neighbours: query i -> the WordPieces j of its word with |i - j| >= 2.

    (un ##bel ##ie ##vable: un <-> ##ie, ##vable.) Itself and the pieces next to it are left out:
    every previous-/next-token head puts its attention there (the previous token of ##berries
    is straw), so only attention that skips past the neighbours shows that a head looks at the
    word. Defined for pieces with such a piece: pieces of words of three or more pieces, except
    the middle piece of a three-piece word; never defined at word level, where a word is one position.
    """
    in_word = (layout.group >= 0) & layout.real
    index = np.arange(layout.size)
    apart = np.abs(index[:, None] - index[None, :]) >= 2  # [U, U]
    return _same(layout.group) & _pairs(in_word) & apart


def same_lemma_targets(layout: Layout) -> np.ndarray:
    """Same lemma (the parser's: "store"/"stores", "bought"/"buy"): query i -> the other text tokens j, in either
    sentence, whose word has the lemma of i's word; the pieces of i's own word (i itself among them) are excluded.

    Defined for text tokens whose lemma another word of the input shares. Needs lemma ids from a parser
    (`attnlens.atlas(..., parser=...)`, `--parser`); an atlas without one does not score it.
    """
    if layout.lemma is None or layout.lemma_word is None:
        raise AttnlensError("the same_lemma pattern needs the parser's lemmas, which only the atlas maps onto "
                            "tokens (attnlens.atlas(..., parser=), attnlens atlas --parser NAME); a single "
                            "capture has none")
    has = (layout.lemma >= 0) & layout.content  # [..., U]
    own_word = _same(layout.group) | _same(layout.lemma_word)  # the tokenizer's word and the parser's
    return _same(layout.lemma) & _pairs(has) & ~own_word


def self_targets(layout: Layout) -> np.ndarray:
    """Itself: query i -> key i. Defined for every text token."""
    return np.eye(layout.size, dtype=bool) & layout.content[..., :, None]


def punctuation_targets(layout: Layout) -> np.ndarray:
    """Punctuation: query i -> every `.` and `,` token of the input (either sentence), itself excluded.

    Defined for the text tokens of inputs with a `.` or `,` other than themselves.
    """
    others = ~np.eye(layout.size, dtype=bool)
    return layout.content[..., :, None] & layout.is_punct[..., None, :] & others


def cls_targets(layout: Layout) -> np.ndarray:
    """[CLS]: query i -> the special token in first position. Defined for every text token."""
    return layout.content[..., :, None] & layout.is_cls[..., None, :]


def sep_targets(layout: Layout) -> np.ndarray:
    """[SEP]: query i -> every special token except the first (all separators). Defined for every text token."""
    return layout.content[..., :, None] & layout.is_sep[..., None, :]


def own_sentence_targets(layout: Layout) -> np.ndarray:
    """The text tokens of the query's own sentence (the bag-of-words support), for text-token queries
    (causal inputs: those up to the query)."""
    return _pairs(layout.content) & _same(layout.segment) & layout.visible


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
    weights = _torch(attn)  # torch's minimum runs on every core; numpy's on one
    overlap = torch.minimum(weights, _torch(_per_head(uniform)),
                            out=scratch("overlap", weights.shape, weights.dtype))  # [..., L, H, U, U]
    return overlap.sum(dim=-1).numpy(), layout.content  # [..., L, H, U]


def entropy(attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Normalized entropy: H(a_i) / log(U) of the query's attention row over all U positions.

    0 = all attention on one key, 1 = perfectly uniform over the whole input. Defined for
    every text token of inputs with at least two positions. "broad" heads are labelled from it.
    (Causal inputs: U is the query's row length i + 1, and rows of one key are not defined.)
    """
    logs = scratch_like("logs", attn)  # [..., L, H, U, U]
    with np.errstate(divide="ignore"):
        np.log(attn, out=logs)  # log 0 = -inf ...
    np.maximum(logs, np.finfo(logs.dtype).min, out=logs)  # ... made finite, so that 0 log 0 = 0
    rows = layout.row_lengths  # [..., U] the input's length, or i + 1 when causal
    norm = np.log(np.maximum(rows, 2)).astype(np.float64)[..., None, None, :]  # [..., 1, 1, U]
    values = np.clip(-np.einsum("...k,...k->...", attn, logs) / norm, 0.0, 1.0)  # [..., L, H, U]
    return values, layout.content & (rows >= 2)


# ---- Clark et al. 2019's surface statistics (the "clark" definitions) ---------------------------
# As in their General_Analysis notebook: every row of the input counts ([CLS] and [SEP] included),
# offsets cross sentence boundaries and special tokens, and each input's score is its mass summed
# over all rows divided by its length (a row without a target adds 0); see CLARK below.

def clark_next_token_targets(layout: Layout) -> np.ndarray:
    """Clark's "right": query i -> key i+1, whatever both are (specials, the other sentence). Every row counts."""
    return np.eye(layout.size, k=1, dtype=bool) & _pairs(layout.real)


def clark_previous_token_targets(layout: Layout) -> np.ndarray:
    """Clark's "left": query i -> key i-1, whatever both are (specials, the other sentence). Every row counts."""
    return np.eye(layout.size, k=-1, dtype=bool) & _pairs(layout.real)


def clark_self_targets(layout: Layout) -> np.ndarray:
    """Clark's "self": query i -> key i, for every row ([CLS] and [SEP] included)."""
    return np.eye(layout.size, dtype=bool) & _pairs(layout.real)


def clark_cls_targets(layout: Layout) -> np.ndarray:
    """Clark's "cls": query i -> the special token in first position, for every row."""
    return layout.real[..., :, None] & layout.is_cls[..., None, :]


def clark_sep_targets(layout: Layout) -> np.ndarray:
    """Clark's "sep": query i -> every [SEP] (each special token but the first), for every row."""
    return layout.real[..., :, None] & layout.is_sep[..., None, :]


def clark_punctuation_targets(layout: Layout) -> np.ndarray:
    """Clark's "punct": query i -> every `.` and `,` token, itself included, for every row."""
    return layout.real[..., :, None] & layout.is_punct[..., None, :]


CLARK_SMOOTHING = 1e-4  # their notebook: attns = 0.9999 * attns + 0.0001 / n "to avoid NaNs"


def clark_entropy(attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Clark's entropy: -sum_j a_ij log a_ij in nats (0 to log n, not normalized), every row counted.

    The row is first smoothed as (1 - 1e-4) a_ij + 1e-4 / n over the input's n positions, as in
    their notebook (causal inputs: over the i + 1 positions the query can see).
    """
    real = layout.real  # [..., U]
    lengths = np.maximum(layout.row_lengths, 1)[..., None, None, :, None]  # [..., 1, 1, U, 1]
    floor = (CLARK_SMOOTHING / lengths).astype(attn.dtype)  # keep float32 attention float32
    smooth = attn * attn.dtype.type(1.0 - CLARK_SMOOTHING) + floor  # [..., L, H, U, U]
    smooth = np.where(_per_head(_pairs(real) & layout.visible), smooth, 0.0)
    logs = np.log(smooth, where=smooth > 0, out=np.zeros_like(smooth))
    return -np.einsum("...k,...k->...", smooth, logs), real


def _every_row(layout: Layout) -> np.ndarray:
    return layout.real


# ---- the registry ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pattern:
    """A named pattern: its scorer and, for mass patterns, its target-key definition."""

    name: str
    definition: str
    targets: Callable[[Layout], np.ndarray] | None = None  # bool [U, U] of target keys per query
    scorer: Callable[[np.ndarray, Layout], tuple[np.ndarray, np.ndarray]] | None = None
    queries: Callable[[Layout], np.ndarray] | None = None  # bool [U]: rows scored; None = rows with a target
    needs: str | None = None  # a Layout field beyond the tokens ("lemma": a parser ran); None: always scored
    future: bool = False  # every target is later than its query: never defined on a causal (decoder) input

    def undefined_reason(self, causal: bool) -> str:
        """Why the pattern was defined for no query of a corpus (its score is NaN, not 0)."""
        if causal and self.future:
            return ("needs attention to later tokens, which a causal (decoder) model cannot give: "
                    "a query sees only itself and the tokens before it")
        if causal:
            return "no query of the corpus had a target it could see (a causal query sees itself and earlier tokens)"
        return "no query of the corpus had a target"

    def defined(self, layout: Layout, targets: np.ndarray) -> np.ndarray:
        """The queries a mass pattern is scored on, bool [..., U], given its targets [..., U, U]."""
        if self.future and layout.causal:
            return np.zeros(targets.shape[:-1], dtype=bool)
        return targets.any(axis=-1) if self.queries is None else self.queries(layout)

    def score(self, attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
        """(values [..., L, H, U], defined bool [..., U]) for attention [..., L, H, U, U].

        Values are in [0, 1] except Clark's entropy (nats). `...` are the layout's batch axes
        (none for one input).
        """
        if self.scorer is not None:
            return self.scorer(attn, layout)
        targets = self.targets(layout)  # [..., U, U]
        return _mass(attn, targets), self.defined(layout, targets)

    @property
    def is_mass(self) -> bool:
        return self.targets is not None


def _definition(fn) -> str:
    return " ".join((fn.__doc__ or "").split())


def _visible_targets(fn):
    """A targets function cut to the keys each query can see (only later ones are cut, on causal inputs)."""
    def targets(layout: Layout) -> np.ndarray:
        return fn(layout) & layout.visible if layout.causal else fn(layout)  # [..., U, U]
    targets.__name__, targets.__doc__ = fn.__name__, fn.__doc__
    return targets


def _make(name, fn, mass=True, queries=None, needs=None, future=False) -> Pattern:
    return Pattern(name, _definition(fn) + (
        " Score: mean attention mass on the targets over the defined queries." if mass else ""),
        **({"targets": _visible_targets(fn), "queries": queries} if mass else {"scorer": fn}), needs=needs,
        future=future)


PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    _make("next_token", next_token_targets, future=True),
    _make("previous_token", previous_token_targets),
    _make("self", self_targets),
    _make("same_token", same_token_targets),
    _make("same_token_other_sentence", same_token_other_sentence_targets),
    _make("same_word_pieces", same_word_pieces_targets),
    _make("cls", cls_targets),
    _make("sep", sep_targets),
    _make("punctuation", punctuation_targets),
    _make("same_lemma", same_lemma_targets, needs="lemma"),
    _make("bag_of_words", bag_of_words, mass=False),
    _make("entropy", entropy, mass=False),
)}
# The patterns every atlas scores; those with `needs` (same_lemma) only when the layouts carry what they need.
PATTERN_NAMES: tuple[str, ...] = tuple(n for n, p in PATTERNS.items() if p.needs is None)

# Patterns that measure spread, not where attention goes: never a label (entropy only decides "broad").
UNLABELLED: tuple[str, ...] = ("entropy",)

# The patterns a head can be labelled with (same_lemma too, when it is scored).
LABEL_PATTERNS: tuple[str, ...] = tuple(n for n in PATTERN_NAMES if n not in UNLABELLED)

# Clark et al. 2019's surface statistics under the names of the attnlens patterns they correspond to.
CLARK_PATTERNS: dict[str, Pattern] = {p.name: p for p in (
    _make("next_token", clark_next_token_targets, queries=_every_row, future=True),
    _make("previous_token", clark_previous_token_targets, queries=_every_row),
    _make("self", clark_self_targets, queries=_every_row),
    _make("cls", clark_cls_targets, queries=_every_row),
    _make("sep", clark_sep_targets, queries=_every_row),
    _make("punctuation", clark_punctuation_targets, queries=_every_row),
    _make("entropy", clark_entropy, mass=False),
)}


@dataclass(frozen=True)
class Definitions:
    """A set of pattern definitions and how a head's corpus score averages their per-row values.

    unit "query": the mean over every defined query of the corpus, whatever input it is in;
    unit "input": the mean over inputs of each input's mean over its defined rows (each input
    weighs the same, as in Clark et al. 2019). The spread and counts are over that unit.
    """

    name: str
    description: str
    patterns: dict[str, Pattern]
    unit: str = "query"
    levels: tuple[str, ...] = ("token", "word")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.patterns)

    def scored(self, provided=()) -> tuple[str, ...]:
        """The patterns scored when the layouts carry the fields `provided` (e.g. ("lemma",) when a parser ran):
        those whose `needs` is None or among them."""
        return tuple(n for n, p in self.patterns.items() if p.needs is None or p.needs in provided)

    def pattern(self, name: str) -> Pattern:
        """The pattern called `name` in these definitions, or a clear error listing the known names."""
        try:
            return self.patterns[name]
        except (KeyError, TypeError):
            raise AttnlensError(f"unknown pattern {name!r}" + ("" if self.name == DEFAULT_DEFINITIONS else
                                f" in the {self.name} definitions") + f": use one of {', '.join(self.names)}") from None

    def check_level(self, level: str) -> None:
        if level not in self.levels:
            raise AttnlensError(f"the {self.name} definitions score at {' or '.join(self.levels)} level, "
                                f"not {level!r}")


DEFAULT_DEFINITIONS = "attnlens"
DEFINITIONS: dict[str, Definitions] = {d.name: d for d in (
    Definitions("attnlens", "attnlens's own: text-token queries only (not [CLS]/[SEP] rows), each pattern averaged "
                "over the queries it is defined for, previous/next token within a sentence, normalized entropy "
                "(0 to 1).", PATTERNS),
    Definitions("clark", "Clark et al. 2019, 'What Does BERT Look At?', Section 3, as in their General_Analysis "
                "notebook: every row counts ([CLS]/[SEP] included), offsets cross sentence boundaries, each "
                "input's attention mass summed over its rows is divided by its length and the inputs are "
                "averaged; entropy in nats of the row smoothed as 0.9999 a + 0.0001 / n.", CLARK_PATTERNS,
                unit="input", levels=("token",)),
)}


def get_definitions(definitions: "str | Definitions | None" = None) -> Definitions:
    """The definitions called `definitions` (None: attnlens's own), or a clear error listing the known ones."""
    if isinstance(definitions, Definitions):
        return definitions
    try:
        return DEFINITIONS[DEFAULT_DEFINITIONS if definitions is None else definitions]
    except (KeyError, TypeError):
        raise AttnlensError(f"unknown definitions {definitions!r}: use one of {', '.join(DEFINITIONS)}") from None


def get_pattern(name: str, definitions: "str | Definitions | None" = None) -> Pattern:
    """The pattern called `name` (of attnlens's own definitions by default), or a clear error listing known names."""
    return get_definitions(definitions).pattern(name)


def pattern_targets(name: str, layout: Layout) -> np.ndarray:
    """Target keys of pattern `name` per query, bool [..., U, U] (bag_of_words: the own sentence)."""
    if name == "bag_of_words":
        return own_sentence_targets(layout)
    pattern = get_pattern(name)
    if pattern.targets is None:
        raise AttnlensError(f"pattern {name!r} has no target positions (it measures spread, not where attention goes)")
    return np.asarray(pattern.targets(layout))
