"""The same_lemma pattern on hand-built layouts with lemma ids: targets, chance, label, the atlas's sums."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attnlens import AttnlensError
from attnlens.patterns import PATTERN_NAMES, Layout, PatternStats, get_pattern, label_heads, word_level
from attnlens.patterns.layout import stack_layouts
from attnlens.patterns.scores import get_definitions
from attnlens.patterns.stats import _unbatch

# [CLS] she buys books [SEP] he bought a book and doesn ' t [SEP]
#   0    1    2     3     4   5    6    7   8    9    10  11 12  13
# lemmas: she buy book | he buy a book and do not not; "'" and "t" are one parser word ("n't") of two
# tokenizer words, so they are not each other's targets.
TOKENS = ["[CLS]", "she", "buys", "books", "[SEP]", "he", "bought", "a", "book", "and", "doesn", "'", "t", "[SEP]"]
IDS = np.array([101, 1, 2, 3, 102, 4, 5, 6, 7, 8, 9, 10, 11, 102])
SEGMENTS = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1])
WORDS = np.array([-1, 0, 1, 2, -1, 3, 4, 5, 6, 7, 8, 9, 10, -1])
SPECIAL = np.array([t in ("[CLS]", "[SEP]") for t in TOKENS])
LEMMA_OF = {"she": 0, "buy": 1, "book": 2, "he": 3, "a": 4, "and": 5, "do": 6, "not": 7}
LEMMAS = ["", "she", "buy", "book", "", "he", "buy", "a", "book", "and", "do", "not", "not", ""]
LEMMA = np.array([LEMMA_OF.get(x, -1) for x in LEMMAS])
PARSER_WORDS = np.array([-1, 0, 1, 2, -1, 3, 4, 5, 6, 7, 8, 9, 9, -1])  # "'" + "t" = one parser word
T = len(TOKENS)
EXPECTED = {2: [6], 3: [8], 6: [2], 8: [3]}  # query -> its targets


def make_layout(lemmas: bool = True) -> Layout:
    is_cls = np.zeros(T, bool)
    is_cls[0] = True
    return Layout(IDS, SEGMENTS, WORDS, SPECIAL, is_cls, lemma=LEMMA if lemmas else None,
                  lemma_word=PARSER_WORDS if lemmas else None)


def random_attention(seed: int = 0, heads: int = 3) -> np.ndarray:
    """Rows summing to 1: [2, heads, T, T]."""
    attn = np.random.default_rng(seed).random((2, heads, T, T))
    return attn / attn.sum(axis=-1, keepdims=True)


def test_targets_are_the_other_words_of_the_lemma():
    targets = get_pattern("same_lemma").targets(make_layout())
    assert {i: list(np.flatnonzero(row)) for i, row in enumerate(targets) if row.any()} == EXPECTED
    assert not targets[11, 12] and not targets[12, 11]  # pieces of one parser word ("n't") are not targets


def test_pieces_of_the_own_word_are_excluded_but_other_words_pieces_are_targets():
    # [CLS] straw ##berries strawberry [SEP]: straw/##berries are one word with the lemma of "strawberry"
    layout = Layout(np.array([101, 1, 2, 3, 102]), np.zeros(5, np.int64), np.array([-1, 0, 0, 1, -1]),
                    np.array([True, False, False, False, True]), np.array([True, False, False, False, False]),
                    lemma=np.array([-1, 0, 0, 0, -1]), lemma_word=np.array([-1, 0, 0, 1, -1]))
    targets = get_pattern("same_lemma").targets(layout)
    assert targets[1].tolist() == [False, False, False, True, False]
    assert targets[3].tolist() == [False, True, True, False, False]


def test_a_layout_without_lemmas_is_a_clear_error_and_not_scored_by_default():
    with pytest.raises(AttnlensError, match="parser"):
        get_pattern("same_lemma").targets(make_layout(lemmas=False))
    assert "same_lemma" not in PATTERN_NAMES
    assert "same_lemma" not in PatternStats.zeros(1, 1).names
    assert "same_lemma" in get_definitions().scored(("lemma",))
    assert get_pattern("same_lemma").needs == "lemma"
    stats = PatternStats.zeros(1, 1)
    stats.add(random_attention()[:1, :1], make_layout(lemmas=False))  # the default set needs no lemmas
    with pytest.raises(AttnlensError, match="parser"):
        PatternStats.zeros(1, 1, names=["same_lemma"]).add(random_attention()[:1, :1], make_layout(lemmas=False))


def test_atlas_sums_equal_a_hand_count():
    attn = random_attention()
    stats = PatternStats.zeros(2, 3, names=get_definitions().scored(("lemma",)))
    stats.add(attn, make_layout())
    p = stats.names.index("same_lemma")
    masses = np.array([[[attn[l, h, i, EXPECTED[i]].sum() for i in EXPECTED] for h in range(3)] for l in range(2)])
    assert stats.count[p] == len(EXPECTED)
    np.testing.assert_allclose(stats.mean()[p], masses.mean(axis=-1))
    np.testing.assert_allclose(stats.std()[p], masses.std(axis=-1), atol=1e-9)
    # chance: uniform attention over the T positions puts 1/T on each target (one target per query here)
    assert stats.chance_mean()[p] == pytest.approx(1.0 / T)


def test_batched_and_word_level_carry_the_lemmas():
    attn = random_attention(1)
    names = get_definitions().scored(("lemma",))
    one, batched = PatternStats.zeros(2, 3, names=names), PatternStats.zeros(2, 3, names=names)
    short = dataclasses.replace(make_layout(), identity=IDS[:5], segment=SEGMENTS[:5], group=WORDS[:5],
                                special=SPECIAL[:5], is_cls=make_layout().is_cls[:5], lemma=LEMMA[:5],
                                lemma_word=PARSER_WORDS[:5])
    short_attn = attn[..., :5, :5] / attn[..., :5, :5].sum(axis=-1, keepdims=True)
    one.add(attn, make_layout())
    one.add(short_attn, short)
    stacked = stack_layouts([make_layout(), short], T)
    assert stacked.lemma.shape == (2, T) and (stacked.lemma[1, 5:] == -1).all()
    assert (_unbatch(stacked, 1, 5).lemma == LEMMA[:5]).all()
    padded = np.zeros((2, 2, 3, T, T))
    padded[0], padded[1, ..., :5, :5] = attn, short_attn
    batched.add(padded, stacked)
    p = one.names.index("same_lemma")
    np.testing.assert_allclose(batched.total[p], one.total[p])
    assert batched.count[p] == one.count[p] == len(EXPECTED)
    # word level: "'" and "t" are two tokenizer words of one parser word; each word keeps its first piece's lemma
    words, units = word_level(attn, make_layout())
    assert units.lemma.tolist() == LEMMA.tolist() and units.lemma_word.tolist() == PARSER_WORDS.tolist()
    at_words = PatternStats.zeros(2, 3, names=names)
    at_words.add(attn, make_layout(), level="word")
    np.testing.assert_allclose(at_words.mean()[p], one.total[p] / one.count[p])  # every word is one piece here
    assert stack_layouts([make_layout(lemmas=False), short], T).lemma is None  # all or none


def test_chance_and_label():
    attn = np.zeros((1, 2, T, T))
    attn[0, 1] = 1.0 / T  # head 1: uniform
    for i in range(T):
        attn[0, 0, i, EXPECTED.get(i, [0])[0]] = 1.0  # head 0: all on the same-lemma word (others: [CLS])
    names = get_definitions().scored(("lemma",))
    stats = PatternStats.zeros(1, 2, names=names)
    stats.add(attn, make_layout())
    mean, chance = stats.mean(), stats.chance_mean()
    p = names.index("same_lemma")
    assert mean[p, 0, 0] == pytest.approx(1.0) and mean[p, 0, 1] == pytest.approx(chance[p])
    labels = label_heads({n: mean[k] for k, n in enumerate(names)}, chance=dict(zip(names, chance, strict=True)))
    assert "same_lemma" in labels[(0, 0)].name and "same_lemma" not in labels[(0, 1)].name


def test_token_lemmas_align_parser_words_with_the_tokenizers_pieces():
    from attnlens.analysis.syntax import Parse, token_lemmas  # noqa: PLC0415  (analysis layer; spaCy not needed)
    from conftest import default_tokenizer  # noqa: PLC0415  (loads the default tokenizer's files)

    a, b = "She buys strawberries.", "He doesn't buy a strawberry."
    tok = default_tokenizer()
    enc = tok(a, b)
    special = np.array([s is None for s in enc.sequence_ids()])
    parses = [Parse.from_words(a, ["She", "buys", "strawberries", "."], [1, 1, 1, 1], ["nsubj", "ROOT", "dobj", "p"],
                               ["she", "buy", "strawberry", "."]),
              Parse.from_words(b, ["He", "does", "n't", "buy", "a", "strawberry", "."], [3] * 7, ["x"] * 7,
                               ["he", "do", "not", "buy", "a", "strawberry", "."])]
    ids: dict[str, int] = {}
    lemma, word = token_lemmas(parses, enc, special, ids)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    names = {v: k for k, v in ids.items()}
    by_token = [(t, names.get(int(x)), int(w)) for t, x, w in zip(tokens, lemma, word, strict=True)]
    assert by_token[0] == ("[CLS]", None, -1) and by_token[-1] == ("[SEP]", None, -1)
    pieces = [(t, x) for t, x, _ in by_token if x == "strawberry"]
    assert len(pieces) >= 3 and {t for t, _ in pieces} >= {"strawberry"}  # A's pieces and B's word
    assert {w for _, x, w in by_token if x == "strawberry"} == {2, 4 + 5}  # B's words numbered after A's
    assert [x for t, x, _ in by_token if t in ("'", "t")] == ["not", "not"]
    assert [w for t, _, w in by_token if t in ("'", "t")] == [4 + 2, 4 + 2]  # one parser word
