"""capturing.scratch: a corpus pass computes every batch's attention into one reused buffer, and nothing that
outlives the batch (a capture) shares that memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lazy_attention import own_attention

from attnlens.capturing import batches, reused_scratch
from attnlens.capturing.scratch import fresh_arrays, scratch
from conftest import tiny_model

SAME_LENGTH = [("a cat sat", "it ran"), ("the dog ran", "we saw"), ("one big day", "so far"),
               ("red blue green", "or not")]


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", "eager", initializer_range=0.3)


def test_outside_a_pass_every_request_is_fresh_memory():
    a, b = scratch("attention", (2, 3)), scratch("attention", (2, 3))
    assert a.data_ptr() != b.data_ptr()


def test_inside_a_pass_a_name_reuses_its_buffer_until_it_must_grow():
    with reused_scratch():
        first = scratch("attention", (4, 5))
        smaller = scratch("attention", (3, 5))
        assert smaller.data_ptr() == first.data_ptr()
        assert scratch("other", (4, 5)).data_ptr() != first.data_ptr()  # another name: another buffer
        assert scratch("attention", (4, 5), torch.float64).data_ptr() != first.data_ptr()  # another dtype too
        grown = scratch("attention", (40, 50))
        assert grown.shape == (40, 50)
        with fresh_arrays():
            assert scratch("attention", (4, 5)).data_ptr() != grown.data_ptr()
    assert scratch("attention", (4, 5)).data_ptr() != grown.data_ptr()  # the pass is over


def test_batches_in_a_pass_share_one_buffer_yet_each_gets_its_own_attention(tiny_bert):
    """Each batch's attention is the model's own while it is current; captures taken from a batch (its attention
    sliced out, or recomputed later from q/k) keep theirs after later batches overwrite the buffer."""
    pointers, kept = set(), []
    with reused_scratch():
        for batch in batches(tiny_bert, SAME_LENGTH, batch_size=1):
            if len(kept) % 2 == 0:
                attn = batch.attentions  # [1, L, H, T, T], in the pass's buffer
                pointers.add(attn.__array_interface__["data"][0])
                np.testing.assert_allclose(attn[0], own_attention(tiny_bert, *batch.pairs[0]), atol=1e-5)
            kept.append((batch.pairs[0], batch.capture(0)))
        lazy = [cap.attentions for _, cap in kept]  # the odd ones recompute now, still inside the pass
    assert len({len(cap.tokens) for _, cap in kept}) == 1
    assert len(pointers) == 1  # every batch's attention went into the same memory (same size: no growth)
    for (pair, _), attentions in zip(kept, lazy, strict=True):
        np.testing.assert_allclose(attentions, own_attention(tiny_bert, *pair), atol=1e-5)
