"""same_word_pieces beyond the neighbours, the self and punctuation patterns, and the "clark" definitions
(checked against plain loops written from Clark et al. 2019's General_Analysis notebook)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnlens import AttnlensError, Capture
from attnlens.patterns import PatternStats, get_pattern, label_heads, layout_of
from attnlens.patterns.layout import Layout, is_punctuation, stack_layouts, word_level
from attnlens.patterns.scores import CLARK_PATTERNS, DEFINITIONS, LABEL_PATTERNS, PATTERN_NAMES, get_definitions

# [CLS] un ##bel ##ie ##vable , the cat . [SEP] straw ##berries sub ##pro ##cess . [SEP]
#   0    1   2     3    4     5  6   7  8   9     10     11      12   13    14   15  16
TOKENS = ["[CLS]", "un", "##bel", "##ie", "##vable", ",", "the", "cat", ".", "[SEP]",
          "straw", "##berries", "sub", "##pro", "##cess", ".", "[SEP]"]
IDS = np.array([101, 10, 11, 12, 13, 1010, 1, 2, 1012, 102, 5, 6, 20, 21, 22, 1012, 102])
SEGMENTS = np.array([0] * 10 + [1] * 7)
WORDS = np.array([-1, 0, 0, 0, 0, 1, 2, 3, 4, -1, 5, 5, 6, 6, 6, 7, -1])
SPECIAL = np.array([t in ("[CLS]", "[SEP]") for t in TOKENS])
PUNCT = np.array([t in (".", ",") for t in TOKENS])
T = len(TOKENS)
TEXT = [i for i in range(T) if not SPECIAL[i]]


def make_layout(n: int = T) -> Layout:
    is_cls = np.zeros(n, bool)
    is_cls[0] = True
    return Layout(IDS[:n], SEGMENTS[:n], WORDS[:n], SPECIAL[:n], is_cls, punct=PUNCT[:n])


def stats_of(attn: np.ndarray, layout: Layout | None = None, definitions: str | None = None) -> PatternStats:
    stats = PatternStats.zeros(*attn.shape[-4:-2], definitions=definitions)
    stats.add(attn, make_layout() if layout is None else layout)
    return stats


def score(attn: np.ndarray, name: str, definitions: str | None = None) -> float:
    """Corpus mean of one pattern for one [T, T] attention matrix (one head)."""
    stats = stats_of(attn[None, None], definitions=definitions)
    return float(stats.mean()[stats.names.index(name), 0, 0])


def shifted(offset: int) -> np.ndarray:
    attn = np.zeros((T, T))
    for i in range(T):
        attn[i, min(max(i + offset, 0), T - 1)] = 1.0
    return attn


def random_attention(shape, seed: int) -> np.ndarray:
    attn = np.random.default_rng(seed).random(shape) ** 4  # peaked rows, some near-zero weights
    return attn / attn.sum(axis=-1, keepdims=True)


# ---- same_word_pieces: the word's pieces beyond the query's neighbours -----------------------------
def test_same_word_pieces_targets_skip_the_neighbours():
    targets = get_pattern("same_word_pieces").targets(make_layout())
    got = {i: np.flatnonzero(targets[i]).tolist() for i in range(T) if targets[i].any()}
    # un ##bel ##ie ##vable (1-4) and sub ##pro ##cess (12-14); straw ##berries are neighbours; ##pro has none
    assert got == {1: [3, 4], 2: [4], 3: [1], 4: [1, 2], 12: [14], 14: [12]}


def test_a_previous_token_head_does_not_earn_same_word_pieces():
    """Issue 10.13: a ## piece's previous token is its own word, so any previous-token head used to score
    ~0.6 on same_word_pieces and was labelled previous_token+same_word_pieces."""
    stats = stats_of(shifted(-1)[None, None])
    mean = stats.mean()[:, 0, 0]
    scores = {name: stats.mean()[p] for p, name in enumerate(stats.names)}
    chance = dict(zip(stats.names, stats.chance_mean(), strict=True))
    assert mean[stats.names.index("previous_token")] == 1.0
    assert mean[stats.names.index("same_word_pieces")] == 0.0
    assert label_heads(scores, chance=chance)[(0, 0)].name == "previous_token"


def test_a_head_on_the_first_piece_of_its_word_earns_same_word_pieces():
    attn = np.eye(T)
    for i in TEXT:
        attn[i] = 0.0
        attn[i, np.flatnonzero(WORDS == WORDS[i])[0]] = 1.0  # every piece -> the first piece of its word
    values, defined = get_pattern("same_word_pieces").score(attn[None, None], make_layout())
    assert np.flatnonzero(defined).tolist() == [1, 2, 3, 4, 12, 14]
    # ##ie, ##vable, ##cess reach back past their neighbour; un, ##bel and sub look at themselves / a neighbour
    assert values[0, 0, [1, 2, 3, 4, 12, 14]].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]


# ---- self and punctuation -----------------------------------------------------------------------
def test_self_pattern():
    assert score(np.eye(T), "self") == 1.0
    assert score(shifted(-1), "self") == 0.0
    _, defined = get_pattern("self").score(np.eye(T)[None, None], make_layout())
    assert np.flatnonzero(defined).tolist() == TEXT  # text tokens, not [CLS]/[SEP]


def test_punctuation_pattern():
    punct = np.flatnonzero(PUNCT).tolist()
    assert punct == [5, 8, 15]
    attn = np.zeros((T, T))
    for i in range(T):
        others = [j for j in punct if j != i]
        attn[i, others] = 1.0 / len(others)
    assert score(attn, "punctuation") == pytest.approx(1.0)
    assert score(np.eye(T), "punctuation") == 0.0  # a `.` attending to itself is self, not punctuation
    values, defined = get_pattern("punctuation").score(np.eye(T)[None, None], make_layout())
    assert np.flatnonzero(defined).tolist() == TEXT
    # an input with one punctuation token: defined for every text token but that one
    short = make_layout(10)  # [CLS] un ##bel ##ie ##vable , the cat . [SEP] -> two: , and .
    one = Layout(short.identity, short.segment, short.group, short.special, short.is_cls,
                 punct=np.isin(np.arange(10), [8]))
    _, defined = get_pattern("punctuation").score(np.eye(10)[None, None], one)
    assert np.flatnonzero(defined).tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_self_and_punctuation_chance_labels_and_word_level():
    stats = stats_of(np.full((1, 1, T, T), 1.0 / T))
    chance = dict(zip(stats.names, stats.chance_mean(), strict=True))
    assert chance["self"] == pytest.approx(1 / T)
    # defined for the 14 text tokens: 3 targets each, 2 for the three punctuation tokens themselves
    assert chance["punctuation"] == pytest.approx((11 * 3 + 3 * 2) / 14 / T)
    np.testing.assert_allclose(stats.chance_mean(), stats.mean()[:, 0, 0], rtol=1e-12, equal_nan=True)
    assert {"self", "punctuation"} <= set(LABEL_PATTERNS) and {"self", "punctuation"} <= set(PATTERN_NAMES)
    self_head = stats_of(np.eye(T)[None, None])
    scores = {name: self_head.mean()[p] for p, name in enumerate(self_head.names)}
    labels = label_heads(scores, chance=dict(zip(self_head.names, self_head.chance_mean(), strict=True)))
    assert labels[(0, 0)].patterns[0][0] == "self"
    _, units = word_level(np.full((1, 1, T, T), 1.0 / T), make_layout())
    assert units.is_punct.tolist() == [bool(PUNCT[np.flatnonzero(WORDS == w)[0]]) if w >= 0 else False
                                       for w in [-1, 0, 1, 2, 3, 4, -1, 5, 6, 7, -1]]


def test_punctuation_tokens_are_found_in_every_tokenizer_spelling():
    assert all(is_punctuation(t) for t in (".", ",", "Ġ.", "Ġ,", "▁.", "▁,"))
    assert not any(is_punctuation(t) for t in ("...", ";", "a.", "[SEP]", "</s>", "##a"))
    cap = Capture(tokens=TOKENS, token_ids=IDS, segment_ids=SEGMENTS, word_ids=WORDS, special_mask=SPECIAL,
                  attentions=np.zeros((1, 1, T, T), np.float32), queries=np.zeros((1, 1, T, 2), np.float32),
                  keys=np.zeros((1, 1, T, 2), np.float32), text_a="a", text_b="b", model_name="hand-made")
    assert layout_of(cap).is_punct.tolist() == PUNCT.tolist()


# ---- the clark definitions against a hand computation ----------------------------------------------
def clark_by_hand(inputs) -> dict[str, np.ndarray]:
    """Clark et al.'s Section 3 statistics with plain loops: per input, the attention summed over every
    row (specials too) on the key kind, divided by the input's length; entropy in nats of each row
    smoothed as 0.9999 a + 0.0001 / n, averaged over the rows; then the mean over the inputs."""
    n_layers, n_heads = inputs[0][1].shape[:2]
    names = ("next_token", "previous_token", "self", "cls", "sep", "punctuation", "entropy")
    out = {name: np.zeros((n_layers, n_heads)) for name in names}
    for tokens, attn in inputs:
        n = len(tokens)
        for layer in range(n_layers):
            for head in range(n_heads):
                sums = dict.fromkeys(names, 0.0)
                for i in range(n):
                    for j in range(n):
                        a = float(attn[layer, head, i, j])
                        sums["self"] += a if j == i else 0.0
                        sums["next_token"] += a if j == i + 1 else 0.0
                        sums["previous_token"] += a if j == i - 1 else 0.0
                        sums["cls"] += a if tokens[j] == "[CLS]" else 0.0
                        sums["sep"] += a if tokens[j] == "[SEP]" else 0.0
                        sums["punctuation"] += a if tokens[j] in (".", ",") else 0.0
                        smoothed = 0.9999 * a + 0.0001 / n
                        sums["entropy"] -= smoothed * math.log(smoothed)
                for name in names:
                    out[name][layer, head] += sums[name] / n / len(inputs)
    return out


def test_clark_definitions_reproduce_the_hand_computation():
    short_n = 10  # [CLS] un ##bel ##ie ##vable , the cat . [SEP]: one sentence
    full = random_attention((2, 3, T, T), seed=4)
    short = random_attention((2, 3, short_n, short_n), seed=5)
    expected = clark_by_hand([(TOKENS, full), (TOKENS[:short_n], short)])
    one_by_one = PatternStats.zeros(2, 3, definitions="clark")
    one_by_one.add(full, make_layout())
    one_by_one.add(short, make_layout(short_n))
    padded = np.zeros((2, 2, 3, T, T))
    padded[0], padded[1, :, :, :short_n, :short_n] = full, short
    batched = PatternStats.zeros(2, 3, definitions="clark")
    batched.add(padded, stack_layouts([make_layout(), make_layout(short_n)], T))
    assert one_by_one.names == batched.names == tuple(expected) == tuple(CLARK_PATTERNS)
    for stats in (one_by_one, batched):
        assert stats.definitions == "clark" and stats.count.tolist() == [2] * len(stats.names)  # inputs, not rows
        for p, name in enumerate(stats.names):
            np.testing.assert_allclose(stats.mean()[p], expected[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # the spread is over inputs: here the two inputs' own scores
    single = [clark_by_hand([(TOKENS, full)]), clark_by_hand([(TOKENS[:short_n], short)])]
    p = batched.names.index("sep")
    np.testing.assert_allclose(batched.std()[p], np.std([single[0]["sep"], single[1]["sep"]], axis=0), rtol=1e-9)


def test_clark_definitions_differ_from_attnlens_where_the_readme_says():
    attn = random_attention((1, 1, T, T), seed=6)
    ours, clark = stats_of(attn), stats_of(attn, definitions="clark")
    hand = clark_by_hand([(TOKENS, attn)])
    # attnlens: previous token within a sentence, text-token rows with one only, mean over those rows
    rows = [i for i in TEXT if i - 1 in TEXT and SEGMENTS[i - 1] == SEGMENTS[i]]
    assert ours.mean()[ours.names.index("previous_token"), 0, 0] == pytest.approx(
        attn[0, 0, rows, np.array(rows) - 1].mean())
    assert clark.mean()[clark.names.index("previous_token"), 0, 0] == pytest.approx(hand["previous_token"][0, 0])
    assert clark.mean()[clark.names.index("previous_token"), 0, 0] == pytest.approx(
        attn[0, 0, range(1, T), range(T - 1)].sum() / T)
    # entropy: attnlens normalized by log T over text rows; clark in nats over every row, smoothed
    logs = -(attn[0, 0] * np.log(attn[0, 0])).sum(axis=-1)
    assert ours.mean()[ours.names.index("entropy"), 0, 0] == pytest.approx(logs[TEXT].mean() / math.log(T))
    assert clark.mean()[clark.names.index("entropy"), 0, 0] == pytest.approx(logs.mean(), rel=1e-2)


def test_clark_chance_and_labels():
    uniform = np.full((1, 1, T, T), 1.0 / T)
    stats = stats_of(uniform, definitions="clark")
    np.testing.assert_allclose(stats.chance_mean(), stats.mean()[:, 0, 0], rtol=1e-12)
    assert stats.chance_mean()[stats.names.index("entropy")] == pytest.approx(math.log(T))
    heads = np.stack([uniform[0, 0], shifted(-1)])[None]  # [1, 2, T, T]: a uniform head, a previous-token head
    stats = stats_of(heads, definitions="clark")
    scores = {name: stats.mean()[p] for p, name in enumerate(stats.names)}
    labels = label_heads(scores, chance=dict(zip(stats.names, stats.chance_mean(), strict=True)))
    assert labels[(0, 0)].name == "broad"  # entropy in nats compared with uniform's log(n)
    assert labels[(0, 1)].name == "previous_token"


def test_definitions_registry_and_errors():
    assert set(DEFINITIONS) == {"attnlens", "clark"} and get_definitions(None).name == "attnlens"
    assert get_definitions("clark").unit == "input" and get_definitions("attnlens").unit == "query"
    with pytest.raises(AttnlensError, match="unknown definitions 'bert'"):
        PatternStats.zeros(1, 1, definitions="bert")
    with pytest.raises(AttnlensError, match="unknown pattern 'same_token' in the clark definitions"):
        get_pattern("same_token", "clark")
    with pytest.raises(AttnlensError, match="token level"):
        PatternStats.zeros(1, 1, definitions="clark").add(np.full((1, 1, T, T), 1.0 / T), make_layout(), level="word")
    with pytest.raises(AttnlensError, match="definitions"):
        PatternStats.zeros(1, 1, names=["cls"]).merge(PatternStats.zeros(1, 1, names=["cls"], definitions="clark"))
    merged = stats_of(np.eye(T)[None, None], definitions="clark").merge(
        stats_of(shifted(1)[None, None], definitions="clark"))
    assert merged.definitions == "clark" and merged.count.tolist() == [2] * 7
