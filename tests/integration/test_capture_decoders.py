"""Decoders (GPT-2, Llama, Qwen2) captured through transformers' attention interface: exact causal attention,
post-rotary q/k per query head (grouped-query attention), sliding windows, a BPE tokenizer without specials."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import attnlens
from attnlens import AttnlensError
from attnlens.capturing.families import interface
from conftest import PAIR
from interface_models import eager_attentions, eager_model, saved_model, softmax_rows

DECODERS = ("gpt2", "llama", "qwen2")
INPUTS = [PAIR, ("Short one.", None), ("the cat sat on the mat and the dog slept by the door", "she said so")]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """family -> folder of a saved tiny random model with its tokenizer."""
    return {f: saved_model(tmp_path_factory.mktemp(f), f) for f in DECODERS}


@pytest.mark.parametrize("family", DECODERS)
def test_capture_equals_eager_attention_single_and_padded(saved, family):
    lm = attnlens.load_model(saved[family])
    ref_model = eager_model(saved[family])
    assert lm.spec.family == family and lm.spec.causal
    batched = attnlens.capture_batch(lm, INPUTS, batch_size=3)  # one right-padded batch of mixed lengths
    assert len({len(c.tokens) for c in batched}) == 3
    for cap, (a, b) in zip(batched, INPUTS):
        ref = eager_attentions(ref_model, lm.tokenizer, a, b)  # [L, H, T, T]
        single = attnlens.capture(a, b, model=lm)  # unpadded: recomputed lazily with mask None
        for got in (cap, single):
            assert got.attentions.shape == ref.shape
            assert np.abs(got.attentions - ref).max() <= 1e-5
        assert ref[:, :, -1].max() > 0.5  # peaked rows that see many keys: not near-uniform maps
        assert cap.causal and single.causal
    assert lm.config._attn_implementation == "sdpa"  # switched back after each capture
    assert not interface._ACTIVE


@pytest.mark.parametrize("family", DECODERS)
def test_causal_mask_holds_in_every_layer_and_head(saved, family):
    cap = attnlens.capture("the cat sat on the mat and the dog slept by the door", model=attnlens.load_model(
        saved[family]))
    t = len(cap.tokens)
    future = np.triu(np.ones((t, t), dtype=bool), k=1)
    assert (cap.attentions[..., future] == 0).all()  # no weight on later tokens
    assert (cap.attentions[..., ~future] > 0).any()
    np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)


def test_qwen2_sliding_window_layers_see_only_the_last_tokens(saved):
    lm = attnlens.load_model(saved["qwen2"])
    assert lm.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    cap = attnlens.capture("the cat sat on the mat and the dog slept by the door", model=lm)
    t = len(cap.tokens)
    offset = np.arange(t)[None, :] - np.arange(t)[:, None]  # key - query
    outside = offset <= -lm.config.sliding_window  # a window of 4: the token and the 3 before it
    assert (cap.attentions[1:, :, outside] == 0).all()
    assert (cap.attentions[0, :, outside] > 0).any()  # the full layer still reaches back


def _llama_projections(lm, text):
    """Per layer: pre-rotary q, k and post-rotary q, k as the model computes them, [H or H_kv, T, D]."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states  # L+1 x [1, T, hidden]
        t = enc["input_ids"].shape[1]
        cos, sin = lm.model.rotary_emb(hidden[0], torch.arange(t)[None])
        out = []
        for layer, block in enumerate(lm.model.layers):
            x = block.input_layernorm(hidden[layer])
            attn = block.self_attn
            q = attn.q_proj(x).view(1, t, -1, attn.head_dim).transpose(1, 2)  # [1, H, T, D]
            k = attn.k_proj(x).view(1, t, -1, attn.head_dim).transpose(1, 2)  # [1, H_kv, T, D]
            q_rot, k_rot = apply_rotary_pos_emb(q, k, cos, sin)
            out.append((q[0].numpy(), k[0].numpy(), q_rot[0].numpy(), k_rot[0].numpy()))
    return out


def test_llama_queries_keys_are_post_rotary_and_per_query_head(saved):
    lm = attnlens.load_model(saved["llama"])
    text = "the cat sat on the mat and the dog slept"
    cap = attnlens.capture(text, model=lm)
    groups = lm.config.num_attention_heads // lm.config.num_key_value_heads
    assert groups == 2 and cap.num_heads == 4 and cap.d_head == lm.config.head_dim
    t = len(cap.tokens)
    for layer, (q, k, q_rot, k_rot) in enumerate(_llama_projections(lm, text)):
        np.testing.assert_allclose(cap.queries[layer], q_rot, atol=1e-5)
        np.testing.assert_allclose(cap.keys[layer], np.repeat(k_rot, groups, axis=0), atol=1e-5)  # per query head
        assert np.abs(cap.queries[layer, :, 1:] - q[:, 1:]).max() > 1e-2  # rotary moved them (not at position 0)
        assert np.abs(cap.keys[layer, ::groups, 1:] - k[:, 1:]).max() > 1e-2
        # the attention is softmax(q . k * scale + causal mask) of exactly these q/k
        scores = cap.queries[layer] @ cap.keys[layer].transpose(0, 2, 1) * lm.config.head_dim ** -0.5
        expected = softmax_rows(scores, np.tril(np.ones((t, t), dtype=bool)))
        np.testing.assert_allclose(cap.attentions[layer], expected, atol=1e-5)
    assert (cap.keys[:, 0] == cap.keys[:, 1]).all() and not np.allclose(cap.keys[:, 0], cap.keys[:, 2])


def test_gpt2_queries_are_the_fused_projection_and_scaling_is_folded_in(tmp_path):
    folder = saved_model(tmp_path, "gpt2", scale_attn_by_inverse_layer_idx=True)  # scaling 1 / sqrt(d) / (l + 1)
    lm = attnlens.load_model(folder)
    text = "the cat sat on the mat"
    cap = attnlens.capture(text, model=lm)
    ref = eager_attentions(eager_model(folder), lm.tokenizer, text)
    assert np.abs(cap.attentions - ref).max() <= 1e-5
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states
        for layer, block in enumerate(lm.model.h):
            q, k, _v = block.attn.c_attn(block.ln_1(hidden[layer]))[0].split(lm.config.n_embd, dim=-1)  # [T, hidden]
            q = q.view(len(cap.tokens), 4, -1).transpose(0, 1).numpy()  # [H, T, D]
            k = k.view(len(cap.tokens), 4, -1).transpose(0, 1).numpy()
            np.testing.assert_allclose(cap.queries[layer], q / (layer + 1), atol=1e-5)  # q . k / sqrt(d) = score
            np.testing.assert_allclose(cap.keys[layer], k, atol=1e-5)


def test_bpe_tokenizer_without_specials_single_and_pair(saved):
    lm = attnlens.load_model(saved["gpt2"])
    assert lm.tokenizer.pad_token == "<|endoftext|>"  # none of its own: end-of-text pads (masked, on the right)
    one = attnlens.capture(PAIR[0], model=lm)
    assert one.tokens[0] == "I" and not one.special_mask.any() and (one.segment_ids == 0).all()
    assert one.tokens[1:3] == ["Ġwe", "nt"] and one.word_ids.tolist() == [0, 1, 1, 2, 2, 3, 4, 5]  # "went" = 2 tokens
    pair = attnlens.capture(*PAIR, model=lm)  # the tokenizer's own pair encoding: A's tokens, then B's
    n_a = len(one.tokens)
    assert pair.tokens[:n_a] == one.tokens and pair.tokens[n_a] == "At"
    assert not pair.special_mask.any()
    assert pair.segment_ids.tolist() == [0] * n_a + [1] * (len(pair.tokens) - n_a)
    assert pair.word_ids[n_a] == one.word_ids.max() + 1  # B's words numbered after A's
    np.testing.assert_allclose(pair.attentions[:, :, :n_a, :n_a], one.attentions, atol=1e-5)  # causal: A ignores B


def test_values_norms_follow_grouped_value_heads(saved):
    lm = attnlens.load_model(saved["llama"])
    text = "the cat sat on the mat"
    cap = attnlens.capture(text, model=lm, values=True)
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states
        block = lm.model.layers[1]
        attn = block.self_attn
        v = attn.v_proj(block.input_layernorm(hidden[1]))[0].view(len(cap.tokens), 2, -1)  # [T, H_kv, D]
        d = attn.head_dim
        for head in range(4):
            w_o = attn.o_proj.weight[:, head * d:(head + 1) * d]  # [hidden, D]
            expected = (v[:, head // 2] @ w_o.T).norm(dim=-1).numpy()  # [T]
            np.testing.assert_allclose(cap.value_norms[1, head], expected, rtol=1e-4, atol=1e-6)


def test_gpt2_value_norms_use_the_conv1d_output_weight(saved):
    lm = attnlens.load_model(saved["gpt2"])
    text = "the cat sat on the mat"
    cap = attnlens.capture(text, model=lm, values=True)
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states
        block = lm.model.h[0]
        v = block.attn.c_attn(block.ln_1(hidden[0]))[0].split(lm.config.n_embd, dim=-1)[2]  # [T, hidden]
        d = lm.config.n_embd // 4
        for head in range(4):
            w_o = block.attn.c_proj.weight[head * d:(head + 1) * d]  # Conv1D weight is [in, out]: rows = head dims
            expected = (v[:, head * d:(head + 1) * d] @ w_o).norm(dim=-1).numpy()
            np.testing.assert_allclose(cap.value_norms[0, head], expected, rtol=1e-4, atol=1e-6)


def test_implementation_is_restored_when_the_forward_fails(saved):
    lm = attnlens.load_model(saved["llama"])

    def boom(*_args):
        raise RuntimeError("layer failed")

    handle = lm.model.layers[1].register_forward_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="layer failed"):
            attnlens.capture("the cat sat", model=lm)
    finally:
        handle.remove()
    assert lm.config._attn_implementation == "sdpa" and not interface._ACTIVE
    assert attnlens.capture("the cat sat", model=lm).attentions.shape[0] == 3  # and the model still captures


def test_two_models_captured_in_two_threads_do_not_interfere(saved):
    models = [attnlens.load_model(saved["gpt2"]), attnlens.load_model(saved["llama"])]
    texts = ["the cat sat on the mat and the dog slept by the door", PAIR[1]]
    expected = [[attnlens.capture(t, model=lm).attentions for t in texts] for lm in models]
    results: dict = {}
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        results[i] = [[attnlens.capture(t, model=models[i]).attentions for t in texts] for _ in range(5)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for i in range(2):
        for run in results[i]:
            for got, want in zip(run, expected[i]):
                np.testing.assert_array_equal(got, want)


def test_a_mask_that_is_not_a_band_is_refused(saved):
    lm = attnlens.load_model(saved["gpt2"])
    recorder = interface.InterfaceQK(lm)
    q = torch.zeros((1, 4, 3, 8))
    mask = torch.tensor([[True, False, True], [True, True, False], [True, True, True]])[None, None]  # a hole at (0, 1)
    for _ in range(lm.num_layers):
        recorder.record(q, q, q, mask, None, {})
    with pytest.raises(AttnlensError, match="not padding plus a causal"):
        recorder.finish(None, torch.ones((1, 3)))


@pytest.mark.parametrize("family", ("qwen2", "gpt2"))
def test_the_models_output_is_unchanged_while_recorded(saved, family):
    lm = attnlens.load_model(saved[family])
    enc = lm.tokenizer([PAIR[1], "Short one."], padding=True, return_tensors="pt")  # right padded
    with torch.no_grad():
        plain = lm.model(**enc, use_cache=False).last_hidden_state  # [B, T, hidden], sdpa
        recorder = interface.InterfaceQK(lm)
        with recorder.running():
            assert lm.config._attn_implementation == interface.IMPLEMENTATION
            recorded = lm.model(**enc, use_cache=False).last_hidden_state
    assert len(recorder.store["q"]) == lm.num_layers
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(recorded[real], plain[real], atol=1e-5, rtol=1e-5)
    assert lm.config._attn_implementation == "sdpa"
