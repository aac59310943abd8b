"""The one batcher: every corpus pass (capture_batch, the atlas, causal checks) gets the same attention."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens import atlas, capture, capture_batch, causal_checks
from attnlens.capturing import batcher, length_groups
from attnlens.patterns import PatternStats
from conftest import tiny_model

# mixed lengths and kinds: single sentences, pairs, a long one, very short ones
ITEMS = [
    ("A cat.", None),
    ("The quick brown fox jumps over the lazy dog near the river bank today.", "It was not amused at all."),
    ("Hi.", "Yo."),
    ("I went to the store.", "At the store, I bought fresh strawberries."),
    ("Python modules are files that contain definitions and statements, " * 3, None),
    ("Short one.", None),
    ("Hackers write code.", "Lusers do not."),
]


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert")


def _spy_on_batches(monkeypatch):
    """Record, per pass, the attention every input got from the batcher."""
    seen: list[dict] = []
    real = batcher.run_batch

    def spy(lm, index, pairs, encodings, **options):
        batch = real(lm, index, pairs, encodings, **options)
        for row, pair in enumerate(batch.pairs):
            seen[-1][pair] = batch.capture(row).attentions  # [L, H, T, T]
        return batch

    monkeypatch.setattr(batcher, "run_batch", spy)
    return seen


def test_capture_batch_atlas_and_causal_checks_see_identical_attention(tiny_bert, monkeypatch):
    seen = _spy_on_batches(monkeypatch)
    seen.append({})
    caps = capture_batch(tiny_bert, ITEMS, batch_size=3)
    seen.append({})
    at = atlas(ITEMS, model=tiny_bert, batch_size=3, progress=False)
    seen.append({})
    report = causal_checks(ITEMS, model=tiny_bert, batch_size=3, limit=None, interventions=())
    by_capture, by_atlas, by_causal = seen
    assert len(by_capture) == len(by_atlas) == len(by_causal) == len(ITEMS)
    for cap in caps:
        pair = (cap.text_a, cap.text_b)
        np.testing.assert_array_equal(by_atlas[pair], cap.attentions)
        np.testing.assert_array_equal(by_causal[pair], cap.attentions)
    # the atlas's statistics are the reduction of exactly those captures
    stats = PatternStats.zeros(tiny_bert.num_layers, tiny_bert.num_heads)
    for cap in caps:
        stats.add_capture(cap)
    np.testing.assert_allclose(at.stats.total, stats.total, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(report.baseline.stats.total, at.stats.total, rtol=0, atol=0)


def test_padding_in_a_mixed_batch_does_not_change_an_inputs_attention(tiny_bert):
    batched = capture_batch(tiny_bert, ITEMS, batch_size=len(ITEMS))  # one batch, padded to the longest
    for (a, b), cap in zip(ITEMS, batched):
        alone = capture(a, b, model=tiny_bert)
        assert cap.tokens == alone.tokens
        np.testing.assert_allclose(cap.attentions, alone.attentions, atol=2e-6)


def test_captures_come_back_in_the_order_given(tiny_bert):
    caps = capture_batch(tiny_bert, ITEMS, batch_size=2)
    assert [(c.text_a, c.text_b) for c in caps] == ITEMS


def test_length_groups_sort_and_bound_batches():
    lengths = [50, 3, 20, 3, 64, 10]
    groups = length_groups(lengths, batch_size=2, max_cells=2 * 20 * 20)
    flat = [i for g in groups for i in g]
    assert sorted(flat) == list(range(len(lengths)))  # every input exactly once
    assert [lengths[i] for i in flat] == sorted(lengths)  # shortest first
    for g in groups:
        longest = max(lengths[i] for i in g)
        assert len(g) <= 2 and (len(g) == 1 or len(g) * longest**2 <= 2 * 20 * 20)
