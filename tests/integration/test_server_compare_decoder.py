"""The web app's Compare with an encoder and a decoder (tiny random BERT and GPT-2) on the same text."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from attnlens import capture
from attnlens.server import create_app
from conftest import PAIR, default_tokenizer, tiny_model


@pytest.fixture(scope="module")
def tiny_gpt2():
    import torch
    from transformers import GPT2Config, GPT2Model

    from attnlens.capturing import LoadedModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=30522, n_positions=64, n_embd=32, n_layer=3, n_head=4, n_inner=64)
    return LoadedModel(GPT2Model(config), default_tokenizer(), name="tiny-gpt2")


def test_compare_an_encoder_with_a_decoder_on_the_same_text(tiny_gpt2):
    encoder = tiny_model("bert")
    with TestClient(create_app({"enc": encoder, "dec": tiny_gpt2})) as client:
        text = {"text_a": PAIR[0], "text_b": PAIR[1]}
        r = client.post("/api/compare", json={"left": {"model": "enc", **text}, "right": {"model": "dec", **text}})
        assert r.status_code == 200, r.text
        body = r.json()
        same = client.post("/api/compare", json={"left": {"model": "dec", **text}, "right": {"model": "dec", **text}})
    assert body["left"]["meta"]["causal"] is False and body["right"]["meta"]["causal"] is True
    assert body["aligned"] and "right model is causal" in body["measure"]
    # the map is the per-head total variation distance between the two models' own captures
    a, b = capture(*PAIR, model=encoder).attentions, capture(*PAIR, model=tiny_gpt2).attentions
    expected = 0.5 * np.abs(a - b).sum(-1).mean(-1)  # [L, H]
    np.testing.assert_allclose(body["map"], expected, atol=1e-4)
    assert np.abs(np.triu(b, 1)).max() == 0
    assert same.json()["map"] == [[0.0] * 4] * 3 and "causal" not in same.json()["measure"]
