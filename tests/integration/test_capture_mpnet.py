"""MPNet: capture (q . k / sqrt(d) plus the relative-position bias) equals the model's eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlens
from attnlens.views.payload import build_payload
from attnlens.views.text import neuron_view_text
from conftest import PAIR
from family_models import INPUTS, eager_model, mpnet_config, save_model, worst_difference


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("mpnet"), mpnet_config())


def test_capture_equals_eager_attention_single_and_padded(folder):
    lm = attnlens.load_model(folder)
    assert lm.spec.family == "mpnet" and lm.max_length == 66 - 2  # positions start after padding_idx 1
    eager = eager_model(folder)
    batched = attnlens.capture_batch(lm, INPUTS, batch_size=3)
    singles = [attnlens.capture(a, b, model=lm) for a, b in INPUTS]
    assert worst_difference(batched, eager) <= 1e-5
    assert worst_difference(singles, eager) <= 1e-5
    assert max(float(c.attentions.max()) for c in singles) > 0.5


def test_the_bias_is_the_models_relative_position_bias_and_matters(folder):
    lm = attnlens.load_model(folder)
    cap = attnlens.capture(*PAIR, model=lm)
    bias = cap.extras["position_bias"]  # [L, H, T, T]
    with torch.no_grad():
        own = lm.model.encoder.compute_position_bias(torch.zeros(1, cap.num_tokens, 1))[0].numpy()  # [H, T, T]
    for layer in range(cap.num_layers):
        np.testing.assert_allclose(bias[layer], own, atol=1e-6)
    plain = cap.queries @ np.swapaxes(cap.keys, -1, -2) / np.sqrt(cap.d_head)  # without the bias
    plain = np.exp(plain - plain.max(-1, keepdims=True))
    plain /= plain.sum(-1, keepdims=True)
    assert np.abs(plain - cap.attentions).max() > 0.05  # q . k alone would be wrong


def test_values_and_views(folder):
    lm = attnlens.load_model(folder)
    cap = attnlens.capture(*PAIR, model=lm, values=True)
    assert cap.value_norms.shape == cap.attentions.shape[:3] and (cap.value_norms > 0).all()
    meta, _buffers = build_payload(cap)
    assert meta["score_terms"] == ["position_bias"] and meta["content_scale"][0][0] == pytest.approx(1 / np.sqrt(8))
    assert "position_bias" in neuron_view_text(cap, 0, 1, 2)
