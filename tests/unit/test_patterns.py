"""Pattern scores, statistics, labels and explanations on hand-made attention with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens import AttnlensError, Capture
from attnlens.patterns import (
    PATTERN_NAMES,
    Layout,
    PatternStats,
    explain_captures,
    get_pattern,
    label_heads,
    layout_of,
    word_level,
)

# [CLS] the cat saw the dog [SEP] straw ##berries the cat [SEP]
#   0    1   2   3   4   5    6     7       8      9   10   11
TOKENS = ["[CLS]", "the", "cat", "saw", "the", "dog", "[SEP]", "straw", "##berries", "the", "cat", "[SEP]"]
IDS = np.array([101, 1, 2, 3, 1, 4, 102, 5, 6, 1, 2, 102])
SEGMENTS = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
WORDS = np.array([-1, 0, 1, 2, 3, 4, -1, 5, 5, 6, 7, -1])
SPECIAL = np.array([t in ("[CLS]", "[SEP]") for t in TOKENS])
T = len(TOKENS)


def make_layout() -> Layout:
    is_cls = np.zeros(T, bool)
    is_cls[0] = True
    return Layout(IDS, SEGMENTS, WORDS, SPECIAL, is_cls)


def make_capture(attn: np.ndarray, queries=None, keys=None) -> Capture:
    """A Capture of the example input with attention [L, H, T, T] (and optional q/k)."""
    n_layers, n_heads = attn.shape[:2]
    zeros = np.zeros((n_layers, n_heads, T, 4), np.float32)
    return Capture(tokens=TOKENS, token_ids=IDS, segment_ids=SEGMENTS, word_ids=WORDS, special_mask=SPECIAL,
                   attentions=attn.astype(np.float32), queries=zeros if queries is None else queries,
                   keys=zeros if keys is None else keys, text_a="the cat saw the dog", text_b="strawberries the cat",
                   model_name="hand-made")


def corpus_score(attn: np.ndarray, name: str) -> float:
    """Corpus mean of one pattern for a single [T, T] attention matrix."""
    stats = PatternStats.zeros(1, 1)
    stats.add(attn[None, None], make_layout())
    return float(stats.mean()[stats.names.index(name), 0, 0])


def shifted(offset: int) -> np.ndarray:
    """Each row puts all attention on position i + offset (clamped)."""
    attn = np.zeros((T, T))
    for i in range(T):
        attn[i, min(max(i + offset, 0), T - 1)] = 1.0
    return attn


def test_shifted_identity_is_a_perfect_next_token_head():
    assert corpus_score(shifted(+1), "next_token") == 1.0
    assert corpus_score(shifted(+1), "previous_token") == 0.0
    assert corpus_score(shifted(-1), "previous_token") == 1.0
    assert corpus_score(shifted(-1), "next_token") == 0.0


def test_next_token_is_defined_within_sentences_only():
    _, defined = get_pattern("next_token").score(shifted(+1)[None, None], make_layout())
    # text tokens followed by a text token of the same sentence: the, cat, saw, the | straw, ##berries, the
    assert np.flatnonzero(defined).tolist() == [1, 2, 3, 4, 7, 8, 9]


def test_cls_and_sep_sinks():
    to_cls = np.zeros((T, T))
    to_cls[:, 0] = 1.0
    to_seps = np.zeros((T, T))
    to_seps[:, [6, 11]] = 0.5
    assert corpus_score(to_cls, "cls") == 1.0 and corpus_score(to_cls, "sep") == 0.0
    assert corpus_score(to_seps, "sep") == 1.0 and corpus_score(to_seps, "cls") == 0.0


def test_bag_of_words_is_the_overlap_with_an_even_spread_over_the_own_sentence():
    own = np.zeros((T, T))
    for i in range(T):
        members = [j for j in range(T) if not SPECIAL[j] and SEGMENTS[j] == SEGMENTS[i]]
        own[i, members] = 1.0 / len(members)
    assert corpus_score(own, "bag_of_words") == pytest.approx(1.0)
    # all attention on one token of the own sentence: 1/n for a sentence of n text tokens
    values, defined = get_pattern("bag_of_words").score(np.eye(T)[None, None], make_layout())
    assert values[0, 0, 1] == pytest.approx(1 / 5) and values[0, 0, 7] == pytest.approx(1 / 4)
    assert not defined[0] and not defined[6]
    # all attention on the other sentence: 0
    other = np.zeros((T, T))
    other[:, 5] = 1.0  # 'dog' is in sentence A; queries of sentence B score 0, those of A 1/5
    values, _ = get_pattern("bag_of_words").score(other[None, None], make_layout())
    assert values[0, 0, 9] == 0.0 and values[0, 0, 1] == pytest.approx(1 / 5)


def test_same_token_includes_itself_and_other_sentence_excludes_own():
    same = np.zeros((T, T))
    for i in range(T):
        same[i, IDS == IDS[i]] = 1.0
    same /= same.sum(axis=1, keepdims=True)
    assert corpus_score(same, "same_token") == pytest.approx(1.0)
    values, defined = get_pattern("same_token").score(same[None, None], make_layout())
    # defined for tokens occurring twice or more: the x3, cat x2
    assert np.flatnonzero(defined).tolist() == [1, 2, 4, 9, 10]
    values, defined = get_pattern("same_token_other_sentence").score(same[None, None], make_layout())
    assert np.flatnonzero(defined).tolist() == [1, 2, 4, 9, 10]
    assert values[0, 0, 1] == pytest.approx(1 / 3)  # 'the' in A: one of its three occurrences is in B
    assert values[0, 0, 9] == pytest.approx(2 / 3)  # 'the' in B: two of three are in A


def test_same_word_pieces_excludes_itself_and_its_neighbours():
    pieces = np.eye(T)
    pieces[7] = 0.0
    pieces[7, 8] = 1.0  # straw -> ##berries, its next token; ##berries attends to itself
    _, defined = get_pattern("same_word_pieces").score(pieces[None, None], make_layout())
    assert not defined.any()  # the pieces of a two-piece word are neighbours (3+ pieces: test_pattern_definitions.py)
    assert np.isnan(corpus_score(pieces, "same_word_pieces"))


def test_entropy_is_normalized():
    assert corpus_score(np.full((T, T), 1.0 / T), "entropy") == pytest.approx(1.0)
    assert corpus_score(np.eye(T), "entropy") == 0.0


def test_statistics_are_exact_reductions_and_merge_exactly():
    rng = np.random.default_rng(0)
    attn = rng.random((2, 3, T, T))
    attn /= attn.sum(axis=-1, keepdims=True)  # [L, H, T, T]
    attn2 = rng.random((2, 3, T, T))
    attn2 /= attn2.sum(axis=-1, keepdims=True)
    both = PatternStats.zeros(2, 3)
    first, second = PatternStats.zeros(2, 3), PatternStats.zeros(2, 3)
    for stats, a in ((both, attn), (both, attn2), (first, attn), (second, attn2)):
        stats.add(a, make_layout())
    merged = first.merge(second)
    np.testing.assert_allclose(merged.mean(), both.mean(), rtol=1e-12)
    np.testing.assert_allclose(merged.std(), both.std(), rtol=1e-9)
    assert merged.inputs == 2 and (merged.count == both.count).all()
    # by hand: previous-token mass over the defined queries of both inputs
    p = both.names.index("previous_token")
    rows = [i for i in range(T) if i > 0 and not SPECIAL[i] and not SPECIAL[i - 1] and SEGMENTS[i] == SEGMENTS[i - 1]]
    values = np.concatenate([a[1, 2, rows, np.array(rows) - 1] for a in (attn, attn2)])
    assert both.mean()[p, 1, 2] == pytest.approx(values.mean(), rel=1e-12)
    assert both.std()[p, 1, 2] == pytest.approx(values.std(), rel=1e-9)


def test_chance_level_is_what_uniform_attention_scores():
    stats = PatternStats.zeros(1, 1)
    stats.add(np.full((1, 1, T, T), 1.0 / T), make_layout())
    np.testing.assert_allclose(stats.chance_mean(), stats.mean()[:, 0, 0], rtol=1e-12)


def test_word_level_aggregation():
    rng = np.random.default_rng(1)
    attn = rng.random((1, 1, T, T))
    attn /= attn.sum(axis=-1, keepdims=True)
    words, units = word_level(attn, make_layout())
    assert words.shape == (1, 1, T - 1, T - 1)  # straw ##berries -> one word
    np.testing.assert_allclose(words.sum(axis=-1), 1.0)
    # from strawberries (unit 7) to strawberries = mean over its pieces of the sum over its pieces
    assert words[0, 0, 7, 7] == pytest.approx(attn[0, 0, 7:9, 7:9].sum() / 2)
    assert units.identity[1] == units.identity[4] == units.identity[8]  # 'the' x3
    stats = PatternStats.zeros(1, 1)
    stats.add(attn, make_layout(), level="word")
    assert stats.count[stats.names.index("same_word_pieces")] == 0
    assert np.isnan(stats.mean()[stats.names.index("same_word_pieces"), 0, 0])


def test_labels_follow_the_rule():
    scores = {name: np.zeros((1, 3)) for name in PATTERN_NAMES}
    scores["previous_token"][0, 0] = 0.9
    scores["cls"][0, 0] = 0.55
    scores["entropy"][0] = [0.1, 0.9, 0.2]
    labels = label_heads(scores)
    assert labels[(0, 0)].name == "previous_token+cls" and labels[(0, 0)].score == 0.9
    assert labels[(0, 1)].name == "broad"
    assert labels[(0, 2)].name == "mixed"
    scores["bag_of_words"][0, 1] = 0.6  # above 0.5, but chance (an even spread over the pair) is 0.55
    scores["cls"][0, 0] = 0.7
    labels = label_heads(scores, chance={"bag_of_words": 0.55, "cls": 0.2, "previous_token": 0.1})
    assert labels[(0, 1)].name == "broad" and labels[(0, 1)].best == ("bag_of_words", 0.6)
    assert labels[(0, 0)].name == "previous_token+cls"  # lifts 0.89 and 0.62


def test_unknown_pattern_is_a_clear_error():
    with pytest.raises(AttnlensError, match="unknown pattern 'nxt'"):
        get_pattern("nxt")
    with pytest.raises(AttnlensError, match="unknown pattern"):
        PatternStats.zeros(1, 1, names=["next_token", "bogus"])


def test_explanation_finds_the_dimensions_that_carry_the_gap():
    """Keys of [SEP] carry +/-large values in dims 1 and 3; queries match them: 2 dims, stable."""
    rng = np.random.default_rng(2)
    d = 8
    keys = rng.normal(0, 0.1, (1, 1, T, d))
    queries = rng.normal(0, 0.1, (1, 1, T, d))
    keys[0, 0, [6, 11], 1] = 4.0
    keys[0, 0, [6, 11], 3] = -3.0
    queries[0, 0, :, 1] = 2.0
    queries[0, 0, :, 3] = -2.0
    attn = np.full((1, 1, T, T), 1.0 / T)
    cap = make_capture(attn, queries.astype(np.float32), keys.astype(np.float32))
    ex = explain_captures([cap], 0, 0, "sep")
    assert ex.dims_for_80 == 2 and {dim for dim, _ in ex.top_dims} == {1, 3}
    assert ex.kind == "few dims" and ex.stability == 1.0
    assert ex.contributions.sum() == pytest.approx(ex.gap)
    # the gap is exactly mean target score - mean other score of q.k / sqrt(d)
    q, k = queries[0, 0].astype(np.float32).astype(np.float64), keys[0, 0].astype(np.float32).astype(np.float64)
    logits = q @ k.T / np.sqrt(d)
    content = [i for i in range(T) if not SPECIAL[i]]
    gaps = [logits[i, [6, 11]].mean() - np.delete(logits[i], [6, 11]).mean() for i in content]
    assert ex.gap == pytest.approx(np.mean(gaps), rel=1e-9)
    with pytest.raises(AttnlensError, match="layer 3 is out of range"):
        explain_captures([cap], 3, 0, "sep")
    with pytest.raises(AttnlensError, match="no target positions"):
        explain_captures([cap], 0, 0, "entropy")


def test_layout_of_a_capture():
    layout = layout_of(make_capture(np.zeros((1, 1, T, T))))
    assert layout.is_cls.tolist() == [True] + [False] * (T - 1)
    assert np.flatnonzero(layout.is_sep).tolist() == [6, 11]


def test_a_padded_batch_scores_like_its_inputs_one_by_one():
    from attnlens.patterns.layout import stack_layouts

    full = make_layout()
    n = 7  # the first sentence only: [CLS] the cat saw the dog [SEP]
    short = Layout(full.identity[:n], full.segment[:n], full.group[:n], full.special[:n], full.is_cls[:n])
    rng = np.random.default_rng(3)
    a_full = rng.random((2, 3, T, T))
    a_full /= a_full.sum(axis=-1, keepdims=True)
    a_short = rng.random((2, 3, n, n))
    a_short /= a_short.sum(axis=-1, keepdims=True)
    padded = np.zeros((2, 2, 3, T, T))
    padded[0] = a_full
    padded[1, :, :, :n, :n] = a_short
    one_by_one, batched = PatternStats.zeros(2, 3), PatternStats.zeros(2, 3)
    one_by_one.add(a_full, full)
    one_by_one.add(a_short, short)
    batched.add(padded, stack_layouts([full, short], T))
    np.testing.assert_allclose(batched.total, one_by_one.total, rtol=1e-12)
    np.testing.assert_allclose(batched.squares, one_by_one.squares, rtol=1e-12)
    np.testing.assert_allclose(batched.chance, one_by_one.chance, rtol=1e-12)
    assert (batched.count == one_by_one.count).all() and batched.inputs == 2
    words_one, words_batched = PatternStats.zeros(2, 3), PatternStats.zeros(2, 3)
    words_one.add(a_full, full, level="word")
    words_one.add(a_short, short, level="word")
    words_batched.add(padded, stack_layouts([full, short], T), level="word")
    np.testing.assert_allclose(words_batched.total, words_one.total, rtol=1e-12)
