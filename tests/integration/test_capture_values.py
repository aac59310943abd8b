"""values=True: ||f_h(x_j)|| = ||(x_j W_V^h + b_V^h) W_O^h|| per head and token (Kobayashi et al. 2020).

The reference is computed here from the model's own value and output modules (plain torch hooks,
full matrix products, no Gram trick), and checked to be the right decomposition: the sum over heads
and keys of alpha_ij f_h(x_j), plus the output bias, is the model's own attention-output projection.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlens
from attnlens import AttnlensError, Capture
from attnlens.capturing import model_inputs
from conftest import FAMILIES, PAIR, tiny_model

INPUTS = [PAIR, ("Short one.", None), ("a b c d e f g h i j", "k l m")]


def value_and_output_modules(lm):
    """(value Linear, attention-output Linear) of every layer, found by the family's own attribute names."""
    base = lm.model.base_model
    if lm.spec.family == "distilbert":
        return [(layer.attention.v_lin, layer.attention.out_lin) for layer in base.transformer.layer]
    if lm.spec.family == "albert":
        shared = base.encoder.albert_layer_groups[0].albert_layers[0].attention
        return [(shared.value, shared.dense)] * lm.num_layers
    return [(layer.attention.self.value, layer.attention.output.dense) for layer in base.encoder.layer]


def reference(lm, text_a, text_b=None):
    """(f [L, H, T, hidden], the output Linear's output [L, T, hidden], its bias [L, hidden]) in float64."""
    values, outputs = [], []
    handles = []
    for v_mod, o_mod in dict.fromkeys(value_and_output_modules(lm)):  # shared modules hooked once
        handles.append(v_mod.register_forward_hook(lambda m, i, o: values.append(o[0].double())))
        handles.append(o_mod.register_forward_hook(lambda m, i, o: outputs.append(o[0].double())))
    enc = lm.tokenizer(text_a, text_b, return_tensors="pt")
    try:
        with torch.no_grad():
            lm.model.base_model(**model_inputs(lm.model.base_model, enc, lm.device))
    finally:
        for h in handles:
            h.remove()
    n_heads, f, biases = lm.num_heads, [], []
    for layer, (_v_mod, o_mod) in enumerate(value_and_output_modules(lm)):
        w = o_mod.weight.detach().double()  # [hidden, H * D]
        d = w.shape[1] // n_heads
        heads = [values[layer][:, h * d:(h + 1) * d] @ w[:, h * d:(h + 1) * d].T for h in range(n_heads)]
        f.append(torch.stack(heads))  # [H, T, hidden]
        biases.append(o_mod.bias.detach().double())
    return torch.stack(f).numpy(), torch.stack(outputs).numpy(), torch.stack(biases).numpy()


def check_values(lm, caps, inputs):
    for cap, (a, b) in zip(caps, inputs):
        f, out, bias = reference(lm, a, b)
        norms = np.linalg.norm(f, axis=-1)  # [L, H, T]
        assert cap.value_norms.shape == norms.shape
        np.testing.assert_allclose(cap.value_norms, norms, rtol=1e-5, atol=1e-6)
        # the decomposition is the model's own: sum_h sum_j alpha_ij f_h(x_j) + b_O = attention output
        mixed = np.einsum("lhij,lhjd->lid", cap.attentions.astype(np.float64), f) + bias[:, None, :]
        np.testing.assert_allclose(mixed, out, rtol=1e-5, atol=1e-5 * np.abs(out).max())


@pytest.mark.parametrize("family", FAMILIES)
def test_value_norms_match_the_models_own_value_and_output_projections(family):
    lm = tiny_model(family, initializer_range=0.3)
    caps = attnlens.capture_batch(lm, INPUTS, batch_size=3, values=True)  # one padded batch
    check_values(lm, caps, INPUTS)
    assert attnlens.capture(*PAIR, model=lm).value_norms is None  # q/k-only capture stays as it was


def test_value_norms_on_the_default_model():
    lm = attnlens.load_model()
    caps = attnlens.capture_batch(lm, INPUTS, batch_size=2, values=True)
    check_values(lm, caps, INPUTS)
    # Kobayashi's point: a head's heaviest key is not always the one whose vector it passes on most
    weight = caps[0].attentions  # [L, H, T, T]
    carried = weight * caps[0].value_norms[:, :, None, :]  # [L, H, T, T]
    assert (weight.argmax(-1) != carried.argmax(-1)).any()


def test_value_norms_survive_save_and_load(tmp_path):
    lm = tiny_model("bert")
    cap = attnlens.capture(*PAIR, model=lm, values=True)
    loaded = Capture.load(cap.save(tmp_path / "cap.npz"))
    np.testing.assert_array_equal(loaded.value_norms, cap.value_norms)
    np.testing.assert_array_equal(loaded.attentions, cap.attentions)
    plain = Capture.load(attnlens.capture(*PAIR, model=lm).save(tmp_path / "plain.npz"))
    assert plain.value_norms is None


def test_a_family_without_value_modules_says_values_is_unavailable():
    lm = tiny_model("bert")
    lm.spec = attnlens.ArchSpec(**{**lm.spec.__dict__, "value": None, "output": None})
    with pytest.raises(AttnlensError, match="values=True is not available"):
        attnlens.capture(*PAIR, model=lm, values=True)
