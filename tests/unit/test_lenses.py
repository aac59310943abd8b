"""Lenses: each against an independent computation from the model's own modules (tiny random configs)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

import attnlens
from attnlens import AttnlensError
from attnlens.patterns.lenses import FLOW_TOKEN_LIMIT, flow, rollout
from conftest import FAMILIES, PAIR, tiny_model
from effect_helpers import own_head_outputs, rollout_by_loop, with_head

PEAKED = dict(initializer_range=0.3)


@pytest.mark.parametrize("family", FAMILIES)
def test_value_norm_is_the_norm_of_what_each_head_takes_from_each_key(family):
    lm = tiny_model(family, **PEAKED)
    cap = attnlens.capture(*PAIR, model=lm, values=True)
    alpha, f, bias, out = own_head_outputs(lm, *PAIR)
    expected = alpha * np.linalg.norm(f, axis=-1)[:, :, None, :]  # ||alpha_ij f_h(x_j)||  [L, H, T, T]
    got = attnlens.lens(cap, "value_norm")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * expected.max())
    # the decomposition is the model's: sum_h sum_j alpha_ij f_h(x_j) + b_O = the output projection's output
    recombined = np.einsum("lhij,lhjd->lid", alpha, f) + bias[:, None, :]  # [L, T, hidden]
    np.testing.assert_allclose(recombined, out, rtol=1e-5, atol=1e-5 * np.abs(out).max())
    # and it differs from the weights: a heavy weight on a small vector moves little
    ratio = got / np.maximum(cap.attentions, 1e-12)
    assert ratio.std() > 0.01 * ratio.mean()


def test_value_norm_without_values_names_the_capture_option():
    lm = tiny_model("bert")
    cap = attnlens.capture(*PAIR, model=lm)
    with pytest.raises(AttnlensError, match="values=True"):
        attnlens.lens(cap, "value_norm")


@pytest.mark.parametrize("family", ["bert", "distilbert", "albert"])
def test_rollout_matches_a_plain_loop(family):
    lm = tiny_model(family, **PEAKED)
    cap = attnlens.capture("The cat sat.", "It was warm.", model=lm)
    got = attnlens.lens(cap, "rollout")
    assert got.shape == (lm.num_layers, cap.num_tokens, cap.num_tokens)
    np.testing.assert_allclose(got, rollout_by_loop(cap.attentions.astype(np.float64)), atol=1e-6)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)  # each position is a mixture of the inputs


def _fake(att):
    return SimpleNamespace(attentions=np.asarray(att, dtype=np.float32), num_tokens=att.shape[-1])


def _mixed(att):
    m = 0.5 * att.mean(1) + 0.5 * np.eye(att.shape[-1])
    return m / m.sum(-1, keepdims=True)


def _random_attention(rng, n_layers, n_heads, t):
    a = rng.random((n_layers, n_heads, t, t)) ** 3
    return a / a.sum(-1, keepdims=True)


def test_flow_on_hand_sized_graphs():
    rng = np.random.default_rng(1)
    # one layer: the only path from input j to position i is the edge, so the flow is its capacity
    att = _random_attention(rng, 1, 2, 3)
    np.testing.assert_allclose(flow(_fake(att))[0], _mixed(att)[0], atol=1e-6)
    # two layers: the paths j -> k -> i share no edge, so the flow is sum_k min(A_0[k, j], A_1[i, k])
    att = _random_attention(rng, 2, 2, 4)
    a0, a1 = _mixed(att)
    expected = np.array([[sum(min(a0[k, j], a1[i, k]) for k in range(4)) for j in range(4)] for i in range(4)])
    got = flow(_fake(att))
    np.testing.assert_allclose(got[1], expected, atol=1e-6)
    np.testing.assert_allclose(got[0], a0, atol=1e-6)
    assert np.abs(got[1] - rollout(_fake(att))[1]).max() > 1e-3  # flow is not rollout


def test_flow_equals_networkx_max_flow():
    nx = pytest.importorskip("networkx")
    rng = np.random.default_rng(2)
    att = _random_attention(rng, 3, 2, 4)
    mixed = _mixed(att)
    graph = nx.DiGraph()
    for l in range(3):
        for i in range(4):
            for j in range(4):
                graph.add_edge((l, j), (l + 1, i), capacity=float(mixed[l, i, j]))
    got = flow(_fake(att))
    for l in range(3):
        for i in range(4):
            for j in range(4):
                assert abs(got[l, i, j] - nx.maximum_flow_value(graph, (0, j), (l + 1, i))) < 1e-6


def test_flow_refuses_long_inputs_with_the_limit():
    att = np.full((1, 1, FLOW_TOKEN_LIMIT + 1, FLOW_TOKEN_LIMIT + 1), 1.0 / (FLOW_TOKEN_LIMIT + 1))
    with pytest.raises(AttnlensError, match=f"limit of {FLOW_TOKEN_LIMIT}.*rollout"):
        flow(_fake(att))


def test_lens_registry_and_errors():
    assert set(attnlens.LENSES) == {"weights", "value_norm", "rollout", "flow", "grad_weights"}
    assert all(lens.definition for lens in attnlens.LENSES.values())
    lm = tiny_model("bert")
    cap = attnlens.capture(*PAIR, model=lm)
    assert np.array_equal(attnlens.lens(cap, "weights"), cap.attentions)
    with pytest.raises(AttnlensError, match="unknown lens 'values'.*value_norm"):
        attnlens.lens(cap, "values")
    with pytest.raises(AttnlensError, match="takes no option"):
        attnlens.lens(cap, "rollout", layer=3)


@pytest.mark.parametrize("objective", ["classification", "nsp"])
def test_grad_weights_equal_autograd_on_the_eager_model(objective):
    from transformers import BertForPreTraining, BertForSequenceClassification

    cls = BertForSequenceClassification if objective == "classification" else BertForPreTraining
    lm = with_head(tiny_model("bert", **PEAKED), cls)
    cap = attnlens.capture(*PAIR, model=lm)
    got = attnlens.lens(cap, "grad_weights", model=lm, objective=objective)
    assert lm.model.config._attn_implementation == "sdpa"  # restored
    # independent: eager copy, retain_grad on its attentions, the loss written out here
    eager = with_head(tiny_model("bert", "eager", **PEAKED), cls)
    enc = lm.tokenizer(*PAIR, return_tensors="pt")
    out = eager.model(**enc, output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    if objective == "classification":
        logits = out.logits
        loss = torch.nn.functional.cross_entropy(logits, logits.argmax(-1))  # the model's own prediction
    else:
        loss = torch.nn.functional.cross_entropy(out.seq_relationship_logits, torch.tensor([0]))  # IsNext
    loss.backward()
    expected = torch.stack([(a * a.grad.abs())[0] for a in out.attentions]).detach().numpy()  # [L, H, T, T]
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    assert np.abs(expected).max() > 0


def test_grad_weights_refuses_flat_objectives_and_missing_heads():
    lm = tiny_model("bert")
    cap = attnlens.capture(*PAIR, model=lm)
    with pytest.raises(AttnlensError, match="zero gradient"):
        attnlens.lens(cap, "grad_weights", model=lm, objective="embedding")
    with pytest.raises(AttnlensError, match="masked-LM head"):
        attnlens.lens(cap, "grad_weights", model=lm, objective="mlm")
