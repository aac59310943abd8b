"""DeBERTa-v2/v3: capture equals the model's eager attention, and its three score terms sum to the
model's own pre-softmax scores (computed here by the model's own functions, no hooks)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlens
from attnlens.patterns.explain import explain_captures
from attnlens.views.payload import build_payload, decode_payload
from attnlens.views.text import neuron_view_text
from conftest import PAIR, default_tokenizer
from family_models import DEBERTA, INPUTS, deberta_config, eager_model, save_model, worst_difference

C2P, P2C = "content_to_position", "position_to_content"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {v: save_model(tmp_path_factory.mktemp(f"deberta-{v}"), deberta_config(v)) for v in DEBERTA}


@pytest.mark.parametrize("variant", list(DEBERTA))
def test_capture_equals_eager_attention_single_and_padded(folders, variant):
    lm = attnlens.load_model(folders[variant])
    assert lm.spec.family == "deberta-v2" and lm.spec.recorder == "disentangled"
    eager = eager_model(folders[variant])
    batched = attnlens.capture_batch(lm, INPUTS, batch_size=3)  # one right-padded batch of mixed lengths
    singles = [attnlens.capture(a, b, model=lm) for a, b in INPUTS]
    assert worst_difference(batched, eager) <= 1e-5
    assert worst_difference(singles, eager) <= 1e-5
    assert max(float(c.attentions.max()) for c in singles) > 0.5  # peaked: not a comparison of uniform maps
    cap = batched[0]
    kinds = set(deberta_config(variant).pos_att_type or ()) if DEBERTA[variant]["relative_attention"] else set()
    assert ({C2P, P2C} & set(cap.extras)) == {name for kind, name in (("c2p", C2P), ("p2c", P2C)) if kind in kinds}
    for name in (C2P, P2C):
        if name in cap.extras:
            assert cap.extras[name].shape == cap.attentions.shape
            np.testing.assert_allclose(cap.extras[name], singles[0].extras[name], atol=1e-5)  # padding changes nothing


def _model_scores(model, text_a, text_b):
    """Pre-softmax scores [L, H, T, T] from DisentangledSelfAttention's own code on each layer's input."""
    batch = default_tokenizer()(text_a, text_b, return_tensors="pt")
    scores = []
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states  # L+1 x [1, T, hidden]
        encoder = model.encoder
        rel_embeddings = encoder.get_rel_embedding()
        relative_pos = encoder.get_rel_pos(hidden[0])
        for layer, block in enumerate(encoder.layer):
            attn = block.attention.self
            q = attn.transpose_for_scores(attn.query_proj(hidden[layer]), attn.num_attention_heads)  # [H, T, D]
            k = attn.transpose_for_scores(attn.key_proj(hidden[layer]), attn.num_attention_heads)  # [H, T, D]
            factor = 1 + sum(kind in attn.pos_att_type for kind in ("c2p", "p2c"))
            scale = torch.sqrt(torch.tensor(q.size(-1), dtype=torch.float) * factor)
            s = torch.bmm(q, k.transpose(-1, -2) / scale)
            if attn.relative_attention:
                s = s + attn.disentangled_attention_bias(q, k, relative_pos, rel_embeddings, factor)
            scores.append(s.numpy())
    return np.stack(scores)  # [L, H, T, T]


@pytest.mark.parametrize("variant", ["v3", "unshared-c2p", "unshared-p2c"])
def test_the_three_terms_sum_to_the_models_pre_softmax_scores(folders, variant):
    lm = attnlens.load_model(folders[variant])
    cap = attnlens.capture(*PAIR, model=lm)
    content = cap.queries @ np.swapaxes(cap.keys, -1, -2) * cap.extras["content_scale"][..., None, None]  # [L,H,T,T]
    total = content + sum(cap.extras[n] for n in (C2P, P2C) if n in cap.extras)
    np.testing.assert_allclose(total, _model_scores(eager_model(folders[variant]), *PAIR), atol=1e-4)
    position = sum(np.abs(cap.extras[n]).mean() for n in (C2P, P2C) if n in cap.extras)
    assert position > 0.05 * np.abs(content).mean()  # the position terms are a real part of the score


def test_values_are_the_head_output_norms(folders):
    lm = attnlens.load_model(folders["v3"])
    cap = attnlens.capture(*PAIR, model=lm, values=True)
    assert cap.value_norms.shape == cap.attentions.shape[:3]
    layer = lm.model.encoder.layer[1]
    enc = default_tokenizer()(*PAIR, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states[1][0]  # [T, hidden]
        v = layer.attention.self.value_proj(hidden).view(len(cap.tokens), lm.num_heads, -1)  # [T, H, D]
        w = layer.attention.output.dense.weight.view(-1, lm.num_heads, lm.d_head)  # [hidden, H, D]
        expected = torch.einsum("thd,ohd->hto", v, w).norm(dim=-1)  # [H, T]
    np.testing.assert_allclose(cap.value_norms[1], expected.numpy(), rtol=1e-4, atol=1e-5)


def test_views_ship_and_show_the_terms(folders):
    cap = attnlens.capture(*PAIR, model=attnlens.load_model(folders["v3"]))
    meta, buffers = build_payload(cap)
    assert meta["score_terms"] == [C2P, P2C] and meta["has_qk"] and meta["attention_code"] == "sqrt-uint8"
    page = decode_payload(meta, buffers)
    assert page["terms"].shape == (cap.num_layers, 2, cap.num_heads, cap.num_tokens, cap.num_tokens)
    np.testing.assert_allclose(page["terms"][:, 0], cap.extras[C2P], atol=2e-2)
    text = neuron_view_text(cap, 1, 2, 3)
    assert "content_to_position" in text and "position_to_content" in text and "score" in text


def test_previous_token_head_is_carried_by_the_position_terms(tmp_path):
    """A head whose keys are zero and whose query is a constant: its weights come from c2p alone."""
    folder = save_model(tmp_path, deberta_config("unshared-c2p"))
    lm = attnlens.load_model(folder)
    attn = lm.model.encoder.layer[0].attention.self
    span = attn.pos_ebd_size
    with torch.no_grad():
        attn.key_proj.weight.zero_()
        attn.key_proj.bias.zero_()
        attn.query_proj.weight.zero_()
        attn.query_proj.bias.fill_(1.0)
        rel = lm.model.encoder.rel_embeddings.weight  # [2S, hidden]; row span + 1: query one after the key
        attn.pos_key_proj.weight.zero_()
        attn.pos_key_proj.bias.zero_()
        attn.pos_key_proj.weight[:, 0] = 1.0
        rel.zero_()
        rel[span + 1, 0] = 40.0  # LayerNorm-free (norm_rel_ebd none): the previous token gets a large c2p
    caps = attnlens.capture_batch(lm, ["The cat sat on the mat near the door.", PAIR])
    prev = np.mean([c.attentions[0, 0, i, i - 1] for c in caps for i in range(1, c.num_tokens)])
    assert prev > 0.9
    ex = explain_captures(caps, 0, 0, "previous_token")
    assert ex.carried_by == C2P and ex.terms["q.k"] == pytest.approx(0.0, abs=1e-6)
    assert "carried by content_to_position" in ex.text()
