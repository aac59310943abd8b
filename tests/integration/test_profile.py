"""The one head profile (patterns/profile.py): its features are the atlas's pattern scores, its
per-query kinds follow the atlas's previous/next definitions, and the CLI summary and the
server's compare use it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attnlens import Capture
from attnlens.patterns.profile import FEATURES, KINDS, head_profile, summarize, target_kinds
from conftest import PAIR

# [CLS] the cat [SEP] a dog ran [SEP]
#   0    1   2    3   4   5   6   7
TOKENS = ["[CLS]", "the", "cat", "[SEP]", "a", "dog", "ran", "[SEP]"]
SEGMENTS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SPECIAL = np.array([t in ("[CLS]", "[SEP]") for t in TOKENS])
T = len(TOKENS)


def hand_made(attn: np.ndarray) -> Capture:
    """A Capture of the example pair with one head's attention [T, T]."""
    zeros = np.zeros((1, 1, T, 4), np.float32)
    return Capture(tokens=TOKENS, token_ids=np.array([101, 1, 2, 102, 3, 4, 5, 102]), segment_ids=SEGMENTS,
                   word_ids=np.array([-1, 0, 1, -1, 2, 3, 4, -1]), special_mask=SPECIAL,
                   attentions=attn[None, None].astype(np.float32), queries=zeros, keys=zeros,
                   text_a="the cat", text_b="a dog ran", model_name="hand-made")


def shifted(offset: int) -> np.ndarray:
    """Every query puts all its attention on position i + offset (clamped to the input)."""
    attn = np.zeros((T, T))
    attn[np.arange(T), np.clip(np.arange(T) + offset, 0, T - 1)] = 1.0
    return attn


def test_profile_previous_and_next_are_the_atlas_scores(default_model, default_capture):
    from attnlens import atlas

    profile = head_profile(default_capture)  # [L, H, K]
    scores = atlas([PAIR], model=default_model, progress=False).scores
    names = list(FEATURES)
    for feature, pattern in (("previous", "previous_token"), ("next", "next_token"), ("first special", "cls"),
                             ("other specials", "sep")):
        np.testing.assert_allclose(profile[..., names.index(feature)], scores[pattern], rtol=1e-5, atol=1e-6)
    assert profile.shape == (6, 12, len(FEATURES))
    assert profile[0, 2, names.index("previous")] > 0.95  # the model's previous-token head


def test_previous_and_next_do_not_cross_sentences_or_touch_specials():
    kinds = target_kinds(hand_made(shifted(-1)))
    prev, nxt = KINDS.index("previous"), KINDS.index("next")
    assert [(i, j) for i, j in zip(*np.nonzero(kinds == prev), strict=True)] == [(2, 1), (5, 4), (6, 5)]
    assert [(i, j) for i, j in zip(*np.nonzero(kinds == nxt), strict=True)] == [(1, 2), (4, 5), (5, 6)]
    assert (kinds[:, 0] == KINDS.index("first special")).all()  # for every query, also [CLS] itself
    assert (kinds[:, [3, 7]] == KINDS.index("later special")).all()
    assert kinds[3, 2] == KINDS.index("other")  # [SEP] looking at the last word: not "previous"

    profile = head_profile(hand_made(shifted(-1)))[0, 0]
    assert profile[list(FEATURES).index("previous")] == 1.0  # every query that has a previous token uses it
    assert profile[list(FEATURES).index("next")] == 0.0


def test_a_feature_no_query_defines_is_nan():
    one_word = Capture(tokens=["[CLS]", "hi", "[SEP]"], token_ids=np.array([101, 1, 102]),
                       segment_ids=np.zeros(3, np.int64), word_ids=np.array([-1, 0, -1]),
                       special_mask=np.array([True, False, True]), attentions=np.full((1, 1, 3, 3), 1 / 3, np.float32),
                       queries=np.zeros((1, 1, 3, 4), np.float32), keys=np.zeros((1, 1, 3, 4), np.float32),
                       text_a="hi", model_name="hand-made")
    profile = dict(zip(FEATURES, head_profile(one_word)[0, 0], strict=True))
    assert np.isnan(profile["previous"]) and np.isnan(profile["next"])
    assert profile["self"] == pytest.approx(1 / 3) and profile["same sentence"] == pytest.approx(1 / 3)


def test_summary_counts_only_atlas_previous_tokens():
    text = summarize(hand_made(shifted(-1)), top=1)
    # queries 2, 5, 6 look at their previous token; [SEP] (3, 7) and the first words (1, 4) do not count
    assert text.splitlines()[-1] == "layer 0: h0 previous 38% (focus 1.00)"


def test_head_difference_of_hand_made_profiles():
    """The server's compare of two different inputs, worked out by hand: one word attending evenly
    to [CLS] hi [SEP] (no previous or next token: those count as 0) against every query on its
    previous position."""
    from attnlens.server.service import head_difference

    one_word = Capture(tokens=["[CLS]", "hi", "[SEP]"], token_ids=np.array([101, 1, 102]),
                       segment_ids=np.zeros(3, np.int64), word_ids=np.array([-1, 0, -1]),
                       special_mask=np.array([True, False, True]), attentions=np.full((1, 1, 3, 3), 1 / 3, np.float32),
                       queries=np.zeros((1, 1, 3, 4), np.float32), keys=np.zeros((1, 1, 3, 4), np.float32),
                       text_a="hi", model_name="hand-made")
    # features: self, previous, next, first special, other specials, same sentence
    left = [1 / 3, 0, 0, 1 / 3, 1 / 3, 1 / 3]
    # text queries 1 2 4 5 6 look at 0 1 3 4 5: previous for 2 5 6 (all that have one), next for none of 1 4 5,
    # [CLS] for 1, [SEP] for 4, a text token of the own sentence for 2 5 6 (of 5 queries)
    right = [0, 1, 0, 1 / 5, 1 / 5, 3 / 5]
    expected = np.mean(np.abs(np.subtract(left, right)))
    assert expected == pytest.approx(28 / 90)
    for a, b in ((one_word, hand_made(shifted(-1))), (hand_made(shifted(-1)), one_word)):
        diff = head_difference(a, b)
        assert not diff["aligned"] and (diff["layers"], diff["heads"]) == (1, 1)
        assert diff["map"][0][0] == pytest.approx(expected, abs=1e-5)


def test_server_compare_uses_the_profile(default_capture):
    from attnlens.server.service import head_difference

    other = dataclasses.replace(default_capture, tokens=list(default_capture.tokens[:-1]) + ["[PAD]"])
    diff = head_difference(default_capture, other)
    assert not diff["aligned"] and diff["measure"].endswith("(" + ", ".join(FEATURES) + ")")
    assert np.max(diff["map"]) == 0.0  # same attention, same profile
    shifted_cap = dataclasses.replace(other, attentions=np.roll(default_capture.attentions, 1, axis=-1))
    expected = np.abs(head_profile(default_capture) - head_profile(shifted_cap)).mean(-1)  # [L, H]
    np.testing.assert_allclose(head_difference(default_capture, shifted_cap)["map"], expected, atol=1e-5)
