"""What the pattern scorers need to know about the positions of one input, at token or word level.

A :class:`Layout` is the token metadata of a Capture reduced to the five facts every
pattern is defined by: which positions hold the same token, which sentence each is in,
which word each belongs to, which are special, and which is the [CLS]-like first token
(plus, when a parser ran, each position's lemma: see `lemma`).
:func:`word_level` turns a token-level attention array into a word-level one.

A decoder's layout is `causal`: query i can only see keys j <= i (`visible`), so every pattern's
targets are cut to those keys (a query left with none is not defined for that pattern) and chance
levels use the causal row length i + 1 (`row_lengths`). Its first position is its attention sink,
whatever token it holds: it is marked special and [CLS]-like (`is_cls`), so the `cls` pattern scores
attention to it, and its own row (forced onto itself) is never a query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import AttnlensError

LEVELS = ("token", "word")


@dataclass(frozen=True)
class Layout:
    """Per-position facts of one input (U positions: tokens, or words at word level).

    identity  int64 [U]  equal values = identical token (or identical word)
    segment   int64 [U]  0 = sentence A, 1 = sentence B (specials: the sentence before them)
    group     int64 [U]  word index of a WordPiece, -1 for specials
    special   bool  [U]  [CLS], [SEP] and other special tokens
    is_cls    bool  [U]  the special token in first position ([CLS], <s>)
    valid     bool  [U]  False for padding (None: every position is real)
    punct     bool  [U]  `.` and `,` tokens (see PUNCTUATION; None: no punctuation known)
    lemma     int64 [U]  the parser's lemma of each position's word (equal values = same lemma,
                         -1: none, e.g. specials); None unless a parser ran (see Pattern.needs)
    lemma_word int64 [U] the parser word each position belongs to (-1: none), so that a word's
                         own pieces are told apart from other words of its lemma; set with `lemma`
    causal    bool       a decoder's input: query i sees only keys j <= i (see the module docstring)

    A batch of inputs padded to one length is a Layout whose arrays are [batch, U]
    (see :func:`stack_layouts`); every scorer broadcasts over those leading axes.
    """

    identity: np.ndarray
    segment: np.ndarray
    group: np.ndarray
    special: np.ndarray
    is_cls: np.ndarray
    valid: np.ndarray | None = None
    punct: np.ndarray | None = None
    lemma: np.ndarray | None = None
    lemma_word: np.ndarray | None = None
    causal: bool = False

    @property
    def size(self) -> int:
        return int(self.identity.shape[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.identity.shape[:-1])

    @property
    def real(self) -> np.ndarray:
        """Positions that are not padding.  # [..., U]"""
        return np.ones(self.identity.shape, dtype=bool) if self.valid is None else self.valid

    @property
    def lengths(self) -> np.ndarray:
        """Number of real positions of each input.  # [...]"""
        return self.real.sum(axis=-1)

    @property
    def visible(self) -> np.ndarray:
        """Keys each query can attend to: j <= i when causal, all otherwise.  # [U, U] (broadcasts)"""
        if self.causal:
            return np.tri(self.size, dtype=bool)
        return np.ones((self.size, self.size), dtype=bool)

    @property
    def row_lengths(self) -> np.ndarray:
        """Real keys each query can attend to (causal: i + 1; else the input's length).  # [..., U]"""
        if not self.causal:
            return np.broadcast_to(self.lengths[..., None], self.identity.shape)
        return (self.visible & self.real[..., None, :]).sum(axis=-1)

    @property
    def content(self) -> np.ndarray:
        """Positions that are real text (not special tokens, not padding).  # [..., U]"""
        return ~self.special & self.real

    @property
    def is_sep(self) -> np.ndarray:
        """Special tokens other than the first one ([SEP], </s>).  # [..., U]"""
        return self.special & ~self.is_cls & self.real

    @property
    def is_punct(self) -> np.ndarray:
        """Real `.` / `,` tokens (all False when the layout knows no punctuation).  # [..., U]"""
        if self.punct is None:
            return np.zeros(self.identity.shape, dtype=bool)
        return self.punct & ~self.special & self.real


# The punctuation tokens of the `punctuation` pattern: Clark et al. 2019's `.` and `,`.
PUNCTUATION = (".", ",")


def is_punctuation(token: str) -> bool:
    """Whether a token is `.` or `,` (also with a word-boundary mark: RoBERTa's `Ġ.`, ALBERT's `▁,`)."""
    return token.removeprefix("Ġ").removeprefix("▁").removeprefix("##") in PUNCTUATION


def stack_layouts(layouts: list[Layout], size: int) -> Layout:
    """One batched Layout [batch, size] of single-input layouts, padded at the end."""
    batch = len(layouts)
    identity = np.full((batch, size), -1, np.int64)
    segment = np.full((batch, size), -1, np.int64)
    group = np.full((batch, size), -1, np.int64)
    special = np.ones((batch, size), bool)
    is_cls = np.zeros((batch, size), bool)
    valid = np.zeros((batch, size), bool)
    punct = np.zeros((batch, size), bool)
    with_lemmas = bool(layouts) and all(one.lemma is not None for one in layouts)  # else None: no parser ran
    lemma = np.full((batch, size), -1, np.int64) if with_lemmas else None
    lemma_word = np.full((batch, size), -1, np.int64) if with_lemmas else None
    for b, one in enumerate(layouts):
        n = one.size
        identity[b, :n], segment[b, :n], group[b, :n] = one.identity, one.segment, one.group
        special[b, :n], is_cls[b, :n], valid[b, :n] = one.special, one.is_cls, True
        punct[b, :n] = one.is_punct
        if with_lemmas:
            lemma[b, :n], lemma_word[b, :n] = one.lemma, one.lemma_word
    causal = bool(layouts) and layouts[0].causal
    if any(one.causal != causal for one in layouts):
        raise AttnlensError("cannot stack the layouts of causal and bidirectional inputs into one batch")
    return Layout(identity, segment, group, special, is_cls, valid, punct, lemma, lemma_word, causal)


def layout_of(cap, causal: bool | None = None) -> Layout:
    """The token-level layout of a Capture (or of a batch's TokenInfo, with the model's `causal`; None: the
    capture's own `causal`)."""
    causal = bool(getattr(cap, "causal", False) if causal is None else causal)
    special = np.array(cap.special_mask, dtype=bool)  # [T]
    is_cls = np.zeros_like(special)
    if special.size and (special[0] or causal):
        is_cls[0] = special[0] = True  # a decoder's first token is its sink, whatever it is
    return Layout(
        identity=np.asarray(cap.token_ids, dtype=np.int64),
        segment=np.asarray(cap.segment_ids, dtype=np.int64),
        group=np.asarray(cap.word_ids, dtype=np.int64),
        special=special,
        is_cls=is_cls,
        punct=np.array([is_punctuation(t) for t in cap.tokens], dtype=bool),
        causal=causal,
    )


def word_units(layout: Layout) -> tuple[np.ndarray, Layout]:
    """Membership matrix [U, T] of words (and single special tokens) and their layout (one unpadded input).

    Units are ordered by their first token. A word's identity is its sequence of token
    identities, so two occurrences of the same word get the same identity. A word's lemma (and
    parser word) is its first piece's.
    """
    keys: list[tuple] = []
    first: dict[tuple, int] = {}
    for i in range(layout.size):
        key = ("special", i) if layout.special[i] else ("word", int(layout.group[i]))
        if key not in first:
            first[key] = len(keys)
            keys.append(key)
    membership = np.zeros((len(keys), layout.size), dtype=np.float64)  # [U, T]
    for i in range(layout.size):
        key = ("special", i) if layout.special[i] else ("word", int(layout.group[i]))
        membership[first[key], i] = 1.0
    spellings: dict[tuple, int] = {}
    identity, segment, special, is_cls, punct = [], [], [], [], []
    for u in range(len(keys)):
        members = np.flatnonzero(membership[u])
        spelling = tuple(int(x) for x in layout.identity[members])
        identity.append(spellings.setdefault(spelling, len(spellings)))
        segment.append(int(layout.segment[members[0]]))
        special.append(bool(layout.special[members[0]]))
        is_cls.append(bool(layout.is_cls[members[0]]))
        punct.append(bool(layout.is_punct[members].all()))  # a word of punctuation pieces only
    firsts = [int(np.flatnonzero(membership[u])[0]) for u in range(len(keys))]
    special_arr = np.array(special, dtype=bool)
    units = Layout(
        identity=np.array(identity, dtype=np.int64),
        segment=np.array(segment, dtype=np.int64),
        group=np.where(special_arr, -1, np.arange(len(keys))),  # each word is one unit: no pieces
        special=special_arr,
        is_cls=np.array(is_cls, dtype=bool),
        punct=np.array(punct, dtype=bool),
        lemma=None if layout.lemma is None else np.asarray(layout.lemma, np.int64)[firsts],
        lemma_word=None if layout.lemma_word is None else np.asarray(layout.lemma_word, np.int64)[firsts],
        causal=layout.causal,  # units are ordered by their first token: a word sees the words before it
    )
    return membership, units


def word_level(attn: np.ndarray, layout: Layout) -> tuple[np.ndarray, Layout]:
    """Word-level attention: to a word = sum over its pieces; from a word = mean over its pieces.

    attn: [..., T, T] -> [..., U, U] for one unpadded input; rows still sum to 1.
    """
    if layout.batch_shape or (layout.valid is not None and not layout.valid.all()):
        raise AttnlensError("word-level aggregation takes one unpadded input at a time")
    membership, units = word_units(layout)  # [U, T]
    from_mean = membership / membership.sum(axis=1, keepdims=True)  # [U, T]
    to_words = attn.astype(np.float64) @ membership.T  # [..., T, U]
    return from_mean @ to_words, units  # [..., U, U]


def check_level(level: str) -> str:
    if level not in LEVELS:
        raise AttnlensError(f"unknown level {level!r}: use one of {', '.join(LEVELS)}")
    return level
