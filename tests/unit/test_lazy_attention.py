"""Capture.attentions is computed from the capture's own q/k on first access, or cut from a batch that
computed it already; either way it is the attention the model computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlens import Capture, capture, capture_batch
from attnlens.capturing import batches, model_inputs
from conftest import PAIR, tiny_model

ITEMS = [("A cat.", None), PAIR, ("a b c d e f g h i j k l", "m n o")]


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", "eager", initializer_range=0.3)  # peaked attention: a wrong cut shows


def own_attention(lm, a, b=None) -> np.ndarray:
    enc = lm.tokenizer(a, b, return_tensors="pt")
    with torch.no_grad():
        out = lm.model(**model_inputs(lm.model, enc, lm.device), output_attentions=True)
    return torch.stack(out.attentions, dim=1)[0].numpy()  # [L, H, T, T]


def test_a_capture_computes_its_attention_only_when_read(tiny_bert):
    cap = capture(*PAIR, model=tiny_bert)
    assert cap.attention_recipe is not None and "_attentions" in cap.__dict__ and cap.__dict__["_attentions"] is None
    first = cap.attentions
    assert cap.attention_recipe is None  # computed once, then kept
    assert cap.attentions is first
    np.testing.assert_allclose(first, own_attention(tiny_bert, *PAIR), atol=1e-5)


def test_rows_cut_from_a_batch_whose_attention_was_computed_are_the_models_own(tiny_bert):
    for batch in batches(tiny_bert, ITEMS, batch_size=len(ITEMS)):
        assert batch.attentions.shape[-1] == batch.mask.shape[1]  # the padded batch's attention, computed now
        for row, i in enumerate(batch.index):
            cap = batch.capture(row)
            assert cap.attention_recipe is None  # cut from the batch, not recomputed
            ref = own_attention(tiny_bert, *ITEMS[i])
            assert cap.attentions.shape == ref.shape
            np.testing.assert_allclose(cap.attentions, ref, atol=1e-5)


def test_saving_a_lazy_capture_writes_its_attention(tiny_bert, tmp_path):
    cap = capture_batch(tiny_bert, ITEMS, batch_size=3)[2]
    loaded = Capture.load(cap.save(tmp_path / "c.npz"))
    np.testing.assert_allclose(loaded.attentions, own_attention(tiny_bert, *ITEMS[2]), atol=1e-5)
    assert loaded.tokens == cap.tokens
    np.testing.assert_array_equal(loaded.attentions, cap.attentions)
    np.testing.assert_array_equal(loaded.queries, cap.queries)


def test_record_false_batches_hold_the_padded_inputs_and_run_no_forward(tiny_bert):
    from attnlens import AttnlensError

    calls = []
    handle = tiny_bert.model.base_model.register_forward_hook(lambda *_: calls.append(1))
    try:
        plain = list(batches(tiny_bert, ITEMS, batch_size=3))
        assert len(calls) == len(plain)
        bare = list(batches(tiny_bert, ITEMS, batch_size=3, record=False))
        assert len(calls) == len(plain)  # no forward for record=False
    finally:
        handle.remove()
    for a, b in zip(plain, bare):
        assert a.index == b.index
        np.testing.assert_array_equal(a.mask, b.mask)
        assert set(b.inputs) >= {"input_ids", "attention_mask"}
        with pytest.raises(AttnlensError, match="record=False"):
            assert b.attentions is None  # raises before
