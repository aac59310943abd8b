"""`--objective clm`: next-token labels and their shift, checked by hand on a short sequence of a tiny GPT-2."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlens import AttnlensError
from attnlens.pretraining.config import TrainConfig, gpt2_config
from attnlens.pretraining.data import PairSet, make_lm_batch
from attnlens.pretraining.objective import PRETRAINING_OBJECTIVES, CausalLMObjective

PAD, CLS, SEP = 0, 1, 2


def _pairs() -> PairSet:
    """Two `[CLS] A [SEP] B [SEP]` rows of 6 and 4 real tokens, padded to 8."""
    ids = np.array([[CLS, 5, 6, SEP, 7, SEP, PAD, PAD], [CLS, 9, SEP, 8, SEP, PAD, PAD, PAD]], dtype=np.int64)
    types = np.array([[0, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 0, 0, 0]], dtype=np.int64)
    return PairSet(ids, types, np.array([6, 5]), np.array([0, 1]))


def _model():
    from transformers import GPT2LMHeadModel

    torch.manual_seed(0)
    config = gpt2_config("tiny", vocab_size=12, pad_token_id=PAD, bos_token_id=CLS, eos_token_id=SEP)
    return GPT2LMHeadModel(config).eval()


def test_lm_batch_labels_are_the_unmasked_tokens_with_padding_ignored():
    batch = make_lm_batch(_pairs())
    np.testing.assert_array_equal(batch.input_ids.numpy(), _pairs().input_ids)  # nothing masked or replaced
    assert batch.labels.tolist() == [[CLS, 5, 6, SEP, 7, SEP, -100, -100], [CLS, 9, SEP, 8, SEP, -100, -100, -100]]
    assert batch.attention_mask.tolist() == [[1] * 6 + [0] * 2, [1] * 5 + [0] * 3]


def test_clm_loss_is_next_token_cross_entropy_computed_by_hand():
    model, batch = _model(), make_lm_batch(_pairs())
    objective = CausalLMObjective(model)
    (norm,) = objective.norms(batch, world=1)
    assert norm == 5 + 4  # every real token but the first is a target: 5 in row 0, 4 in row 1
    with torch.no_grad():
        loss, stats = objective(batch, norm)
        # by hand: each row alone, unpadded; position t is scored on token t + 1
        nll, correct = [], 0
        for row, length in enumerate((6, 5)):
            ids = batch.input_ids[row, :length]
            logp = torch.log_softmax(model(ids[None]).logits[0].float(), -1)  # [length, vocab]
            for t in range(length - 1):
                nll.append(-logp[t, ids[t + 1]])
                correct += int(logp[t].argmax() == ids[t + 1])
    by_hand = torch.stack(nll).mean()
    torch.testing.assert_close(loss, by_hand, rtol=1e-5, atol=1e-6)
    assert stats.tolist()[1:] == [correct, 9]
    summary = objective.summarize(stats)
    assert summary["lm_loss"] == pytest.approx(float(by_hand), rel=1e-5)
    assert summary["lm_perplexity"] == pytest.approx(float(torch.exp(by_hand)), rel=1e-5)
    # and it is what transformers itself computes from the same labels (it shifts them the same way)
    with torch.no_grad():
        theirs = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss
    torch.testing.assert_close(loss, theirs, rtol=1e-5, atol=1e-6)


def test_a_target_is_never_seen_by_the_position_that_predicts_it():
    """Changing token t + 1 leaves the prediction made at position t unchanged (the loss's logits see no future)."""
    model, batch = _model(), make_lm_batch(_pairs())
    changed = batch.input_ids.clone()
    changed[0, 4] = 11  # B's first token
    with torch.no_grad():
        before = model(batch.input_ids[:1, :6]).logits
        after = model(changed[:1, :6]).logits
    torch.testing.assert_close(before[0, :4], after[0, :4])
    assert not torch.allclose(before[0, 4:], after[0, 4:])


def test_gradient_of_the_global_batch_is_split_by_the_global_count():
    """Two halves with world=2 norms give the gradient of the whole batch (what DDP averages)."""
    model, batch = _model(), make_lm_batch(_pairs())
    objective = CausalLMObjective(model)
    whole = objective(batch, *objective.norms(batch, 1))[0]
    grads = torch.autograd.grad(whole, list(model.parameters()))
    halves = [torch.autograd.grad(objective(batch.rows(slice(r, r + 1)), *objective.norms(batch, 2))[0],
                                  list(model.parameters())) for r in (0, 1)]
    for g, a, b in zip(grads, *halves):
        torch.testing.assert_close(g, (a + b) / 2, rtol=1e-4, atol=1e-6)


def test_objective_is_a_config_field_with_a_clear_error():
    assert set(PRETRAINING_OBJECTIVES) == {"mlm-nsp", "clm"}
    assert TrainConfig().objective == "mlm-nsp"
    assert TrainConfig.from_dict({"size": "tiny"}).objective == "mlm-nsp"  # run.json written before the field
    with pytest.raises(AttnlensError, match="unknown objective 'gpt'"):
        TrainConfig(objective="gpt")
