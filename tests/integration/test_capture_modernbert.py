"""ModernBERT captured through transformers' attention interface: exact attention with rotary positions and
alternating local (sliding-window) / global layers, at lengths beyond the local window, padded or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlens
from conftest import PAIR
from interface_models import LOCAL_WINDOW, eager_attentions, eager_model, saved_model, softmax_rows

LONG = " ".join(f"word{i % 7} and" for i in range(20))  # ~70 tokens, far beyond the local window of 8
INPUTS = [PAIR, ("Hi.", None), (LONG, "the end of it."), ("a b c d e f g h i j k l m", None)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return saved_model(tmp_path_factory.mktemp("modernbert"), "modernbert")


def test_layers_alternate_local_and_global(folder):
    lm = attnlens.load_model(folder)
    assert lm.spec.family == "modernbert" and not lm.spec.causal
    assert lm.config.layer_types == ["full_attention", "sliding_attention", "full_attention"]
    cap = attnlens.capture(LONG, model=lm)
    t = len(cap.tokens)
    assert t > 4 * LOCAL_WINDOW
    distance = np.abs(np.arange(t)[None, :] - np.arange(t)[:, None])
    far = distance > LOCAL_WINDOW // 2  # a local layer sees local_attention / 2 tokens each side
    assert (cap.attentions[1][:, far] == 0).all()
    assert (cap.attentions[1][:, ~far] > 0).all()
    assert (cap.attentions[[0, 2]][:, :, far] > 0).all()  # the global layers see the whole input


def test_capture_equals_eager_attention_single_and_padded(folder):
    lm = attnlens.load_model(folder)
    ref_model = eager_model(folder)
    batched = attnlens.capture_batch(lm, INPUTS, batch_size=4)  # one right-padded batch, lengths 4 to ~75
    assert len({len(c.tokens) for c in batched}) == 4
    for cap, (a, b) in zip(batched, INPUTS):
        ref = eager_attentions(ref_model, lm.tokenizer, a, b)  # [L, H, T, T]
        single = attnlens.capture(a, b, model=lm)  # unpadded, recomputed lazily with mask None
        for got in (cap, single):
            assert got.attentions.shape == ref.shape
            assert np.abs(got.attentions - ref).max() <= 1e-5
        assert ref.max() > 0.5
    assert lm.config._attn_implementation == "sdpa"


def test_queries_keys_are_post_rotary(folder):
    from transformers.models.modernbert.modeling_modernbert import apply_rotary_pos_emb

    lm = attnlens.load_model(folder)
    cap = attnlens.capture(LONG, model=lm)
    t, h, d = len(cap.tokens), cap.num_heads, cap.d_head
    projections = []
    handles = [layer.attn.Wqkv.register_forward_hook(lambda _m, _i, out: projections.append(out.detach()))
               for layer in lm.model.layers]
    enc = lm.tokenizer(LONG, return_tensors="pt")
    with torch.no_grad():
        lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    for handle in handles:
        handle.remove()
    for layer, qkv in enumerate(projections):
        q, k, _v = qkv.view(1, t, 3, h, d).unbind(dim=2)  # each [1, T, H, D]
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # [1, H, T, D]
        with torch.no_grad():
            cos, sin = lm.model.rotary_emb(qkv, torch.arange(t)[None], lm.config.layer_types[layer])
        q_rot, k_rot = apply_rotary_pos_emb(q, k, cos, sin)
        np.testing.assert_allclose(cap.queries[layer], q_rot[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(cap.keys[layer], k_rot[0].numpy(), atol=1e-5)
        assert np.abs(cap.queries[layer, :, 1:] - q[0, :, 1:].numpy()).max() > 1e-2  # not the raw projection
        # softmax(q . k / sqrt(d) + the layer's mask) of exactly these q/k is the attention
        distance = np.abs(np.arange(t)[None, :] - np.arange(t)[:, None])
        allowed = distance <= (LOCAL_WINDOW // 2 if lm.config.layer_types[layer] == "sliding_attention" else t)
        scores = cap.queries[layer] @ cap.keys[layer].transpose(0, 2, 1) / np.sqrt(d)
        np.testing.assert_allclose(cap.attentions[layer], softmax_rows(scores, allowed), atol=1e-5)


def test_pair_keeps_the_tokenizers_template(folder):
    cap = attnlens.capture(*PAIR, model=attnlens.load_model(folder))
    assert cap.tokens[0] == "[CLS]" and cap.tokens[-1] == "[SEP]" and cap.special_mask.sum() == 3
    assert set(cap.segment_ids.tolist()) == {0, 1}
