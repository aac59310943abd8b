"""Patterns on causal (decoder) captures: hand-made lower-triangular attention with known answers.

What needs the future is not defined (NaN, not 0), chance levels use the causal row length (query i
has i + 1 keys), and the decoder's first token is scored like [CLS].
"""

from __future__ import annotations

import numpy as np
import pytest
from test_patterns import IDS, SEGMENTS, SPECIAL, TOKENS, WORDS, T  # [CLS] the cat saw the dog [SEP] straw ...

from attnlens import Capture
from attnlens.patterns import PatternStats, get_pattern, label_heads, layout_of
from attnlens.patterns.layout import stack_layouts, word_level


def capture(attn: np.ndarray, causal: bool = True, tokens=TOKENS, special=SPECIAL) -> Capture:
    """A Capture of the example input with attention [T, T] (one layer, one head)."""
    zeros = np.zeros((1, 1, T, 4), np.float32)
    return Capture(tokens=list(tokens), token_ids=IDS, segment_ids=SEGMENTS, word_ids=WORDS, special_mask=special,
                   attentions=attn[None, None].astype(np.float32), queries=zeros, keys=zeros, causal=causal)


def stats_of(*caps, names=None, definitions=None, level="token") -> PatternStats:
    stats = PatternStats.zeros(1, 1, names, definitions)
    for cap in caps:
        stats.add_capture(cap, level)
    return stats


def score(stats: PatternStats, name: str) -> float:
    return float(stats.mean()[stats.names.index(name), 0, 0])


def previous_token_head() -> np.ndarray:
    attn = np.zeros((T, T))
    attn[0, 0] = 1.0
    for i in range(1, T):
        attn[i, i - 1] = 1.0
    return attn


def causal_uniform() -> np.ndarray:
    """Row i spread evenly over keys 0..i: what a decoder's uniform attention is."""
    return np.tril(np.ones((T, T))) / np.arange(1, T + 1)[:, None]


def test_next_token_is_not_defined_for_a_decoder_not_zero():
    stats = stats_of(capture(previous_token_head()))
    assert stats.causal
    assert score(stats, "previous_token") == 1.0
    next_row = stats.names.index("next_token")
    assert stats.count[next_row] == 0 and np.isnan(score(stats, "next_token"))
    assert np.isnan(stats.chance_mean()[next_row])
    reason = get_pattern("next_token").undefined_reason(causal=True)
    assert "later tokens" in reason and "causal" in reason
    # the same attention on a bidirectional capture: next_token is defined and scores 0
    both = stats_of(capture(previous_token_head(), causal=False))
    assert score(both, "next_token") == 0.0 and both.count[next_row] == 7
    # Clark's "right" (every row counts) is not defined either
    clark = stats_of(capture(previous_token_head()), definitions="clark")
    assert np.isnan(score(clark, "next_token")) and score(clark, "previous_token") > 0.5


def test_chance_levels_use_the_causal_row_length():
    stats = stats_of(capture(causal_uniform()))
    chance = dict(zip(stats.names, stats.chance_mean(), strict=True))
    # previous token: queries with an earlier text token of their sentence, each with 1/(i+1) on it
    assert chance["previous_token"] == pytest.approx(np.mean([1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 9, 1 / 10, 1 / 11]))
    # cls: every text token's row (1..5, 7..10) has 1/(i+1) on position 0
    assert chance["cls"] == pytest.approx(np.mean([1 / (i + 1) for i in (1, 2, 3, 4, 5, 7, 8, 9, 10)]))
    # causal uniform attention scores exactly chance on every pattern, and its entropy is 1 (log(i+1) norm)
    for name in stats.names:
        if name == "entropy":
            assert score(stats, name) == pytest.approx(1.0) and chance[name] == pytest.approx(1.0)
        elif name not in ("next_token", "same_word_pieces", "punctuation"):  # no 3-piece word, no `.` here
            assert score(stats, name) == pytest.approx(chance[name]), name
    # the bidirectional chance (1/T on every key) would be different
    assert chance["previous_token"] != pytest.approx(1 / T)


def test_targets_in_the_future_are_cut_and_queries_without_one_are_not_defined():
    layout = layout_of(capture(causal_uniform()))
    other = get_pattern("same_token_other_sentence")
    targets = other.targets(layout)
    # only B's "the" (9) and "cat" (10) have an earlier occurrence in the other sentence
    assert np.flatnonzero(other.defined(layout, targets)).tolist() == [9, 10]
    assert np.flatnonzero(targets[9]).tolist() == [1, 4] and np.flatnonzero(targets[10]).tolist() == [2]
    # same_token: the first "the" (1) has only later copies, so it is not a query; the second (4) sees the first
    same = get_pattern("same_token")
    defined = same.defined(layout, same.targets(layout))
    assert not defined[1] and defined[4] and not defined[2] and defined[10]
    # sep: sentence A's tokens see no [SEP] yet; B's see A's
    sep = get_pattern("sep")
    assert np.flatnonzero(sep.defined(layout, sep.targets(layout))).tolist() == [7, 8, 9, 10]


def test_a_decoders_first_token_is_its_sink_and_scored_like_cls():
    """GPT-2 style input: no special tokens at all; the first token still counts as the [CLS]-like sink."""
    tokens = ["the"] + TOKENS[1:]
    no_specials = np.zeros(T, bool)
    to_first = np.zeros((T, T))
    to_first[:, 0] = 1.0
    cap = capture(to_first, tokens=tokens, special=no_specials)
    layout = layout_of(cap)
    assert layout.is_cls[0] and layout.special[0] and not layout.content[0]  # its forced row is not a query
    stats = stats_of(cap)
    assert score(stats, "cls") == 1.0
    assert stats.count[stats.names.index("cls")] == T - 1
    labels = label_heads({n: stats.mean()[p] for p, n in enumerate(stats.names)},
                         chance=dict(zip(stats.names, stats.chance_mean(), strict=True)))
    assert labels[(0, 0)].name == "cls"
    # a bidirectional capture of the same tokens has no [CLS]-like position
    assert not layout_of(capture(to_first, causal=False, tokens=tokens, special=no_specials)).is_cls.any()


def test_padded_causal_batch_scores_like_its_inputs_one_by_one():
    short = 7
    a, b = capture(causal_uniform()), capture(previous_token_head())
    attn_b = previous_token_head()[:short, :short]
    cap_b = Capture(tokens=TOKENS[:short], token_ids=IDS[:short], segment_ids=SEGMENTS[:short],
                    word_ids=WORDS[:short], special_mask=SPECIAL[:short], attentions=attn_b[None, None],
                    queries=b.queries[:, :, :short], keys=b.keys[:, :, :short], causal=True)
    one_by_one = stats_of(a, cap_b)
    padded = np.zeros((2, 1, 1, T, T))
    padded[0], padded[1, ..., :short, :short] = a.attentions, attn_b
    batched = PatternStats.zeros(1, 1)
    batched.add(padded, stack_layouts([layout_of(a), layout_of(cap_b)], T))
    np.testing.assert_allclose(batched.mean(), one_by_one.mean(), rtol=1e-6)  # float32 attention
    np.testing.assert_allclose(batched.chance_mean(), one_by_one.chance_mean(), rtol=1e-12)
    assert batched.causal


def test_word_level_keeps_the_causal_mask():
    attn, units = word_level(causal_uniform()[None, None], layout_of(capture(causal_uniform())))
    assert units.causal
    assert np.abs(np.triu(attn[0, 0], 1)).max() == 0  # "strawberries" is one word: no unit sees a later one
    stats = stats_of(capture(causal_uniform()), level="word")
    assert np.isnan(score(stats, "next_token")) and score(stats, "previous_token") > 0
