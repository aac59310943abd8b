"""Views of a decoder's (causal) capture: the payload says `causal`, the page's q/k-derived attention is
masked (no weight, so no line, to a later token), the text views say "causal" and list no later key."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from attnlens import capture
from attnlens.capturing import Capture
from attnlens.views.payload import build_payload, decode_payload, softmax_qk
from attnlens.views.text import head_view_text, model_view_text, neuron_view_text
from conftest import PAIR, default_tokenizer
from views_helpers import run_page_data

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "it", "ran", "[SEP]"]


def causal_capture(seed: int = 0, layers: int = 2, heads: int = 3, d_head: int = 8) -> Capture:
    """A hand-built decoder capture: attention = causally masked softmax(q.k/sqrt(d)) of random q/k."""
    rng = np.random.default_rng(seed)
    t = len(TOKENS)
    q = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    k = rng.normal(size=(layers, heads, t, d_head)).astype(np.float32)  # [L, H, T, D]
    return Capture(tokens=TOKENS, token_ids=np.arange(t), segment_ids=np.array([0, 0, 0, 0, 0, 1, 1, 1]),
                   word_ids=np.array([-1, 0, 1, 2, -1, 3, 4, -1]), special_mask=np.array([t in ("[CLS]", "[SEP]")
                                                                                          for t in TOKENS]),
                   attentions=softmax_qk(q, k, causal=True).astype(np.float32), queries=q, keys=k,
                   text_a="the cat sat", text_b="it ran", model_name="decoder", causal=True)


def test_causal_payload_derives_masked_attention_from_qk():
    cap = causal_capture()
    assert np.abs(np.triu(cap.attentions, 1)).max() == 0
    meta, buffers = build_payload(cap)
    assert meta["causal"] is True and meta["attention_code"] == "qk"  # q/k reproduce it once masked
    out = decode_payload(meta, buffers)
    assert np.abs(np.triu(out["attentions"], 1)).max() == 0  # no weight on a later token
    assert np.abs(out["attentions"] - cap.attentions).max() <= 0.01
    # unmasked, the same q/k would put weight on later tokens: the mask is what makes the page right
    unmasked = decode_payload(dict(meta, causal=False), buffers)["attentions"]
    assert np.triu(unmasked, 1).max() > 0.1
    # an encoder's payload says so too
    assert build_payload(dataclasses.replace(cap, causal=False))[0]["causal"] is False


def test_real_gpt2_capture_ships_qk_and_draws_no_line_to_the_future():
    import torch
    from transformers import GPT2Config, GPT2Model

    from attnlens.capturing import LoadedModel

    torch.manual_seed(0)
    model = GPT2Model(GPT2Config(vocab_size=30522, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64))
    cap = capture(*PAIR, model=LoadedModel(model, default_tokenizer(), name="tiny-gpt2"))
    assert cap.causal
    meta, buffers = build_payload(cap)
    assert meta["causal"] is True and meta["attention_code"] == "qk"
    out = decode_payload(meta, buffers)
    assert np.abs(np.triu(out["attentions"], 1)).max() == 0
    assert np.abs(out["attentions"] - cap.attentions).max() <= 0.01


def test_text_views_say_causal_and_show_no_later_key():
    cap = causal_capture()
    assert "causal" in head_view_text(cap, 0).splitlines()[0]
    assert "causal" in model_view_text(cap).splitlines()[0]
    lines = neuron_view_text(cap, 1, 2, query=3).splitlines()
    assert "causal" in lines[0] and "4 later keys are masked" in lines[0]
    keys = [line.split()[1] for line in lines[3:]]
    assert keys == TOKENS[:4]  # [CLS] the cat sat: itself and the keys before it only
    # an encoder's neuron view lists every key
    encoder = dataclasses.replace(cap, causal=False)
    assert len(neuron_view_text(encoder, 1, 2, query=3).splitlines()) == 3 + len(TOKENS)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_attention_from_qk_is_causally_masked(tmp_path):
    """data.js (the page's decoder) run in node on the payload: its q/k attention and neuron softmax are masked."""
    cap = causal_capture(seed=1)
    result, _ = run_page_data(cap, tmp_path, """
const att = await data.attention(1), detail = await data.detail(1, 2, 3);
console.log(JSON.stringify({ att: Array.from(att), softmax: detail.softmax }));
""", timeout=60)
    att = np.array(result["att"]).reshape(cap.num_heads, len(TOKENS), len(TOKENS))
    assert np.abs(np.triu(att, 1)).max() == 0
    np.testing.assert_allclose(att, cap.attentions[1], atol=0.01)
    np.testing.assert_allclose(result["softmax"], cap.attentions[1, 2, 3], atol=0.01)
    assert result["softmax"][4:] == [0, 0, 0, 0]
