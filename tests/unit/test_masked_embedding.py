"""The masked_embedding objective (the one `attnlens diff` compares a model and its fine-tuned copy on):
its masks, its loss against a computation by hand, a non-zero gradient on every head, and a clear refusal."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import attnlens
from attnlens import AttnlensError
from attnlens.analysis.objectives import OBJECTIVES, padded_inputs, run
from attnlens.capturing import LoadedModel, batches
from conftest import PAIR, tiny_model

PEAKED = dict(initializer_range=0.3)
PAIRS = [PAIR, ("The dog barked at night.", "Nobody slept."), ("Rain fell on the old town square.", None)]


def _pooled(model, ids, types):
    """Mean of the last hidden state of one unpadded input.  # [d]"""
    return model(input_ids=ids[None], token_type_ids=types[None]).last_hidden_state[0].mean(0)


def test_loss_is_one_minus_cosine_of_the_masked_and_the_clean_embedding():
    lm = tiny_model("bert", **PEAKED)
    obj = OBJECTIVES["masked_embedding"]
    batch = next(batches(lm, PAIRS, batch_size=3, record=False))
    inputs = padded_inputs(lm, batch)
    targets = obj.prepare(lm, inputs, batch, 0, None)
    with torch.no_grad():
        loss, _ = run(obj, lm, inputs, targets)  # [B]
    masked = targets["inputs"]["input_ids"]  # [B, T]
    for row in range(3):
        n = int(inputs["attention_mask"][row].sum())
        ids, changed = inputs["input_ids"][row, :n], masked[row, :n]  # each input alone, unpadded
        special = torch.as_tensor(batch.token_info(row).special_mask)[:n]
        where = changed != ids
        assert (changed[where] == lm.tokenizer.mask_token_id).all() and not where[special].any()
        assert int(where.sum()) == max(1, round(0.15 * int((~special).sum())))
        with torch.no_grad():
            types = inputs["token_type_ids"][row, :n]
            clean, noisy = _pooled(lm.model, ids, types), _pooled(lm.model, changed, types)
        assert float(loss[row]) == pytest.approx(1 - float(F.cosine_similarity(clean, noisy, dim=0)), abs=1e-5)
    assert (loss > 0).all()


def test_masks_follow_the_seed_and_gradient_importance_reaches_every_head():
    lm = tiny_model("bert", **PEAKED)
    one = attnlens.head_importance(PAIRS, lm, "masked_embedding", "gradient", batch_size=1)
    three = attnlens.head_importance(PAIRS, lm, "masked_embedding", "gradient", batch_size=3)
    np.testing.assert_allclose(one.raw, three.raw, rtol=1e-4, atol=1e-8)  # masks fixed per input, not per batch
    assert (one.raw > 0).all()  # unlike "embedding", whose gradient is 0 at the unablated model
    other = attnlens.head_importance(PAIRS, lm, "masked_embedding", "gradient", batch_size=3, seed=1)
    assert other.baseline != pytest.approx(three.baseline, rel=1e-6)


def test_a_tokenizer_without_a_mask_token_is_refused():
    lm = tiny_model("bert")
    tokenizer = copy.deepcopy(lm.tokenizer)
    tokenizer.mask_token = None
    with pytest.raises(AttnlensError, match="mask token"):
        attnlens.head_importance(PAIRS, LoadedModel(lm.model, tokenizer, name="no-mask"), "masked_embedding",
                                 "gradient")
