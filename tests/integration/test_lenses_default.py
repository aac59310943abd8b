"""Lenses and head ablation on the real default model (all-MiniLM-L6-v2) and the shipped checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import attnlens
from attnlens.analysis.interventions import ablate_heads
from attnlens.capturing import model_inputs
from conftest import PAIR
from effect_helpers import own_head_outputs, rollout_by_loop, value_and_output_modules


@pytest.fixture(scope="module")
def checkpoint():
    from transformers import BertForPreTraining

    from attnlens.pretraining.predict import shipped_checkpoint

    return attnlens.load_model(shipped_checkpoint(), model_class=BertForPreTraining)


def test_value_norm_on_the_default_model(default_model):
    cap = attnlens.capture(*PAIR, model=default_model, values=True)
    alpha, f, bias, out = own_head_outputs(default_model, *PAIR)
    expected = alpha * np.linalg.norm(f, axis=-1)[:, :, None, :]  # [L, H, T, T]
    np.testing.assert_allclose(attnlens.lens(cap, "value_norm"), expected, rtol=1e-5, atol=1e-5 * expected.max())
    recombined = np.einsum("lhij,lhjd->lid", alpha, f) + bias[:, None, :]  # the output projection's output
    np.testing.assert_allclose(recombined, out, rtol=1e-5, atol=1e-5 * np.abs(out).max())


def test_rollout_on_the_default_model(default_capture):
    got = attnlens.lens(default_capture, "rollout")
    np.testing.assert_allclose(got, rollout_by_loop(default_capture.attentions.astype(np.float64)), atol=1e-5)


def test_zero_ablation_equals_a_zeroed_output_slice_on_the_default_model(default_model):
    enc = default_model.tokenizer(*PAIR, return_tensors="pt")
    inputs = model_inputs(default_model.model, enc, default_model.device)
    layer, head, d = 3, 7, default_model.d_head
    with torch.no_grad(), ablate_heads(default_model, [(layer, head)], "zero"):
        got = default_model.model(**inputs).last_hidden_state
    shadow = copy.deepcopy(default_model.model)
    shadow_lm = type(default_model)(shadow, default_model.tokenizer, name="copy")
    with torch.no_grad():
        value_and_output_modules(shadow_lm, layer)[1].weight[:, head * d:(head + 1) * d] = 0
        expected = shadow(**inputs).last_hidden_state
        unablated = default_model.model(**inputs).last_hidden_state
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got - unablated).abs().max() > 1e-3


def test_grad_weights_on_the_shipped_checkpoint(checkpoint):
    cap = attnlens.capture(*PAIR, model=checkpoint)
    got = attnlens.lens(cap, "grad_weights", model=checkpoint, objective="nsp")
    eager = copy.deepcopy(checkpoint.model)
    eager.set_attn_implementation("eager")
    enc = checkpoint.tokenizer(*PAIR, return_tensors="pt")
    out = eager(**enc, output_attentions=True)
    loss = torch.nn.functional.cross_entropy(out.seq_relationship_logits, torch.tensor([0]))
    grads = torch.autograd.grad(loss, out.attentions)
    expected = torch.stack([(a * g.abs())[0] for a, g in zip(out.attentions, grads)]).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    # and the attention inside equals the capture's
    np.testing.assert_allclose(torch.stack(out.attentions)[:, 0].detach().numpy(), cap.attentions, atol=1e-5)


def test_mlm_importance_on_the_shipped_checkpoint(checkpoint):
    pairs = [PAIR, ("The dog barked at night.", "Nobody slept.")]
    grad = attnlens.head_importance(pairs, checkpoint, "mlm", "gradient")
    zero = attnlens.head_importance(pairs, checkpoint, "mlm", "ablation")
    assert grad.scores.shape == zero.scores.shape == (2, 4)
    np.testing.assert_allclose(np.linalg.norm(grad.scores, axis=1), 1.0, rtol=1e-6)  # normalised per layer
    assert np.isfinite(zero.scores).all() and zero.baseline == pytest.approx(grad.baseline, rel=1e-5)
