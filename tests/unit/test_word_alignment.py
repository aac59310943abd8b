"""Parser words <-> WordPieces by character offsets, word-level aggregation and relation accuracy (no parser)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens.analysis.syntax import (
    Parse,
    add_sentence,
    align_words,
    evaluate,
    split_halves,
    word_attention,
)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from attnlens.capturing import default_model_path

    return AutoTokenizer.from_pretrained(str(default_model_path()))


def _pieces(tokenizer, text, words):
    """{word: [its WordPieces]} for a handmade word split of `text`."""
    enc = tokenizer(text)
    offsets = enc.encodings[0].offsets
    special = [s is None for s in enc.sequence_ids()]
    parse = Parse.from_words(text, words, range(len(words)), ["dep"] * len(words))
    alignment = align_words(parse.spans, offsets, special)
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    return {w: [tokens[t] for t in np.flatnonzero(alignment.membership[i])] for i, w in enumerate(words)}, alignment


@pytest.mark.parametrize("text, words, expected", [
    # spaCy splits "don't" as do + n't, WordPiece as don + ' + t: each piece goes to the word it overlaps most
    ("I don't know.", ["I", "do", "n't", "know", "."],
     {"I": ["i"], "do": ["don"], "n't": ["'", "t"], "know": ["know"], ".": ["."]}),
    ("Install python3.11-doc now", ["Install", "python3.11", "-", "doc", "now"],
     {"Install": ["install"], "python3.11": ["python", "##3", ".", "11"], "-": ["-"], "doc": ["doc"], "now": ["now"]}),
    ("Version 3.11.2 is out", ["Version", "3.11.2", "is", "out"],
     {"Version": ["version"], "3.11.2": ["3", ".", "11", ".", "2"], "is": ["is"], "out": ["out"]}),
    ("A café naïve über", ["A", "café", "naïve", "über"],
     {"A": ["a"], "café": ["cafe"], "naïve": ["naive"], "über": ["uber"]}),
    ("well-known x", ["well-known", "x"], {"well-known": ["well", "-", "known"], "x": ["x"]}),
])
def test_alignment_by_character_offsets(tokenizer, text, words, expected):
    got, alignment = _pieces(tokenizer, text, words)
    assert got == expected
    assert alignment.valid.all() and not alignment.truncated and not alignment.unaligned


def test_word_sharing_a_piece_and_truncated_words():
    # one token spans two words ("ab" over "a" and "b"): "b" gets no piece of its own, so it shares it
    alignment = align_words([(0, 1), (1, 2), (3, 4), (10, 12)], [(0, 0), (0, 2), (3, 4), (0, 0)],
                            [True, False, False, True])
    assert alignment.membership[:, 1].tolist() == [1, 1, 0, 0]
    assert alignment.truncated == (3,)  # past the last token: cut by truncation, reported
    assert alignment.valid.tolist() == [True, True, True, False]


def test_word_attention_equals_the_atlas_word_level():
    from attnlens.patterns.layout import Layout, word_level

    rng = np.random.default_rng(0)
    # [CLS] w0 w1a w1b w2 [SEP]: tokenizer words = parser words
    group = np.array([-1, 0, 1, 1, 2, -1])
    special = group < 0
    attn = rng.random((2, 3, 6, 6))
    attn /= attn.sum(-1, keepdims=True)
    is_cls = np.zeros(6, bool)
    is_cls[0] = True
    layout = Layout(identity=np.arange(6), segment=np.zeros(6, np.int64), group=group, special=special, is_cls=is_cls)
    atlas_words, units = word_level(attn, layout)
    membership = np.array([[0, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 0]], float)
    words = np.flatnonzero(~units.special)
    np.testing.assert_allclose(word_attention(attn, membership), atlas_words[..., words[:, None], words[None, :]])


def test_relation_accuracy_on_a_handmade_parse_equals_a_hand_count():
    # "the cat saw a dog": the->cat (det), cat->saw (nsubj), saw root, a->dog (det), dog->saw (dobj)
    parse = Parse.from_words("the cat saw a dog", ["the", "cat", "saw", "a", "dog"], [1, 2, 2, 4, 2],
                             ["det", "nsubj", "ROOT", "det", "dobj"])
    attn = np.zeros((1, 2, 5, 5))
    # head 0 looks at the next word (last word: itself); head 1 looks at each word's syntactic head (root: itself)
    for i in range(5):
        attn[0, 0, i, min(i + 1, 4)] = 1.0
        attn[0, 1, i, parse.heads[i]] = 1.0
    store = {}
    assert add_sentence(store, 0, parse, attn, np.ones(5, bool)) == 0
    det = store[("det", "dep_to_head")]
    # det: the->cat and a->dog; head 0 (next word) gets both right, head 1 both right
    assert np.concatenate(det.correct).sum(axis=0).tolist() == [2, 2]
    nsubj = np.concatenate(store[("nsubj", "dep_to_head")].correct)
    assert nsubj.tolist() == [[True, True]]  # cat->saw is also the next word
    dobj = np.concatenate(store[("dobj", "dep_to_head")].correct)
    assert dobj.tolist() == [[False, True]]  # dog -> saw: only the syntactic head
    back = np.concatenate(store[("det", "head_to_dep")].correct)
    assert back.tolist() == [[False, False], [False, False]]  # cat -> the? no (cat looks at saw); dog -> a? no
    assert store[("det", "dep_to_head")].delta == [1, 1]
    assert len(store[("*", "dep_to_head")].sentence) == 4  # UAS over the 4 non-root words


def test_held_out_head_selection():
    # head 0 is perfect on the choosing half and wrong on the scoring half; head 1 is right 60% of the time on both
    half = split_halves(40, seed=3)
    assert half.sum() == 20
    sentence = np.repeat(np.arange(40), 5)  # 5 instances per sentence
    correct = np.zeros((200, 2), bool)
    correct[:, 0] = half[sentence] == 0
    correct[:, 1] = (np.arange(200) % 5) < 3
    delta = np.where(half[sentence] == 0, 1, -1)  # offset +1 looks perfect on the choosing half
    ev = evaluate(sentence, delta, correct, half, bootstrap=200)
    assert ev["head_index"] == 0 and ev["select_accuracy"] == 1.0
    assert ev["accuracy"] == 0.0  # reported on the other half, not the inflated 1.0
    assert ev["baseline_offset"] == 1 and ev["baseline_accuracy"] == 0.0
    assert ev["n"] == 100 and ev["n_select"] == 100
    assert ev["heldout_by_head"].tolist() == [0.0, 0.6]
    assert ev["ci_low"] <= ev["accuracy"] <= ev["ci_high"]
