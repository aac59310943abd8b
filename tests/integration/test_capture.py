"""Capture: our attention (recomputed from hooked q/k) equals the model's own, for every family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnlens
from attnlens import AttnlensError, Capture
from attnlens.capturing import model_inputs
from conftest import FAMILIES, PAIR, tiny_model

# Large random weights give peaked attention, so a wrong layer/head/mask shows up clearly.
PEAKED = dict(initializer_range=0.3)


def eager_attentions(lm, text_a, text_b=None) -> np.ndarray:
    """The model's own eager `output_attentions` for one unpadded input: [L, H, T, T]."""
    enc = lm.tokenizer(text_a, text_b, return_tensors="pt")
    inputs = model_inputs(lm.model, enc, lm.device)
    with torch.no_grad():
        out = lm.model(**inputs, output_attentions=True)
    assert len(out.attentions) == lm.num_layers
    return torch.stack(out.attentions, dim=1)[0].numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_capture_equals_eager_attention(family):
    sdpa = tiny_model(family, "sdpa", **PEAKED)
    eager = tiny_model(family, "eager", **PEAKED)
    for p_s, p_e in zip(sdpa.model.parameters(), eager.model.parameters()):
        assert torch.equal(p_s, p_e)
    inputs = [PAIR, ("Short one.", None), ("a b c d e f g h i j", "k l m")]
    for lm in (sdpa, eager):  # whatever backend the model was loaded with
        caps = attnlens.capture_batch(lm, inputs, batch_size=3)  # one padded batch
        for cap, (a, b) in zip(caps, inputs):
            ref = eager_attentions(eager, a, b)  # [L, H, T, T]
            assert cap.attentions.shape == ref.shape
            assert np.abs(cap.attentions - ref).max() <= 1e-5
            assert ref.max() > 0.5  # peaked: the comparison is not between near-uniform maps
    assert cap.queries.shape == cap.keys.shape == (sdpa.num_layers, sdpa.num_heads, len(cap.tokens),
                                                      sdpa.config.hidden_size // sdpa.num_heads)


def test_queries_and_keys_are_the_layer_projections():
    lm = tiny_model("bert", **PEAKED)
    cap = attnlens.capture(*PAIR, model=lm)
    enc = lm.tokenizer(*PAIR, return_tensors="pt")
    with torch.no_grad():
        hidden = lm.model(**enc, output_hidden_states=True).hidden_states  # L+1 x [1, T, hidden]
    for layer in range(lm.num_layers):
        attn = lm.model.encoder.layer[layer].attention.self
        with torch.no_grad():
            q = attn.query(hidden[layer])[0].view(len(cap.tokens), lm.num_heads, -1).transpose(0, 1)  # [H, T, D]
            k = attn.key(hidden[layer])[0].view(len(cap.tokens), lm.num_heads, -1).transpose(0, 1)  # [H, T, D]
        np.testing.assert_allclose(cap.queries[layer], q.numpy(), atol=1e-5)
        np.testing.assert_allclose(cap.keys[layer], k.numpy(), atol=1e-5)
        # and the attention is exactly softmax(q k^T / sqrt(d)) of them
        scores = cap.queries[layer] @ cap.keys[layer].transpose(0, 2, 1) / np.sqrt(cap.d_head)
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        np.testing.assert_allclose(cap.attentions[layer], expected, atol=1e-5)


def test_albert_shared_layer_gives_one_capture_per_layer():
    lm = tiny_model("albert", **PEAKED)
    assert len([m for m in lm.model.modules() if type(m).__name__.endswith("Attention")]) == 1
    cap = attnlens.capture(*PAIR, model=lm)
    assert cap.num_layers == 3
    assert not np.allclose(cap.attentions[0], cap.attentions[1])


def test_padded_batch_returns_each_input_unpadded():
    lm = tiny_model("bert", **PEAKED)
    inputs = [("One two three four five six seven eight nine ten.", "Eleven twelve."), "Hi.", PAIR]
    batched = attnlens.capture_batch(lm, inputs, batch_size=8)
    for cap, item in zip(batched, inputs):
        single = attnlens.capture(*((item, None) if isinstance(item, str) else item), model=lm)
        assert cap.tokens == single.tokens
        assert "[PAD]" not in cap.tokens
        np.testing.assert_allclose(cap.attentions, single.attentions, atol=1e-5)
        np.testing.assert_allclose(cap.queries, single.queries, atol=1e-5)
        np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)
    assert [c.text_a for c in batched] == [inputs[0][0], "Hi.", PAIR[0]]


def test_left_padding_tokenizer_is_unpadded_too():
    lm = tiny_model("bert", **PEAKED)
    lm.tokenizer.padding_side = "left"
    try:
        caps = attnlens.capture_batch(lm, [PAIR, "Hi."])
    finally:
        lm.tokenizer.padding_side = "right"
    single = attnlens.capture("Hi.", model=lm)
    assert caps[1].tokens == ["[CLS]", "hi", ".", "[SEP]"]
    np.testing.assert_allclose(caps[1].attentions, single.attentions, atol=1e-5)


def test_default_model_source_example(default_model, default_capture):
    cap = default_capture
    assert cap.tokens == ["[CLS]", "i", "went", "to", "the", "store", ".", "[SEP]", "at", "the", "store", ",", "i",
                          "bought", "fresh", "straw", "##berries", ".", "[SEP]"]
    assert cap.segment_ids.tolist() == [0] * 8 + [1] * 11
    assert cap.special_mask.tolist() == [t in ("[CLS]", "[SEP]") for t in cap.tokens]
    words = cap.word_ids.tolist()
    assert words[15] == words[16] != -1  # straw ##berries: one word
    assert words[5] != words[10]  # the two "store"s are different words
    assert cap.attentions.shape == (6, 12, 19, 19) and cap.queries.shape == (6, 12, 19, 32)
    assert cap.attentions.dtype == np.float32 and cap.queries.dtype == np.float32
    # the real model's own eager attention, same weights
    from transformers import AutoModel

    eager = AutoModel.from_pretrained(str(attnlens.capturing.default_model_path()), attn_implementation="eager")
    ref = eager_attentions(attnlens.LoadedModel(eager, default_model.tokenizer, "eager"), *PAIR)
    assert np.abs(cap.attentions - ref).max() <= 1e-5
    # layer 0 head 2 is a previous-token head on this model
    prev = np.mean([cap.attentions[0, 2, i, i - 1] for i in range(1, cap.num_tokens)])
    assert prev > 0.9


def test_long_input_errors_unless_truncated():
    lm = tiny_model("bert")  # 64 positions
    long_text = " ".join(["word"] * 100)
    with pytest.raises(AttnlensError, match="at most 64.*truncate"):
        attnlens.capture(long_text, model=lm)
    cap = attnlens.capture(long_text, "and a second sentence", model=lm, truncate=True)
    assert cap.num_tokens == 64 and cap.tokens[-1] == "[SEP]" and cap.segment_ids[-1] == 1
    roberta = tiny_model("roberta")  # RoBERTa reserves pad_token_id + 1 positions
    assert roberta.max_length == 64 - 1
    assert attnlens.capture(long_text, model=roberta, truncate=True).num_tokens == 63


@pytest.mark.parametrize("bad, message", [
    ("", "sentence A is empty"), ("   \n\t", "sentence A is empty"), (None, "must be text"), (3, "must be text"),
])
def test_bad_sentence_a(bad, message):
    with pytest.raises(AttnlensError, match=message):
        attnlens.capture(bad, model=tiny_model("bert"))


def test_bad_sentence_b_and_batch():
    lm = tiny_model("bert")
    with pytest.raises(AttnlensError, match="sentence B is empty"):
        attnlens.capture("fine", " ", model=lm)
    with pytest.raises(AttnlensError, match="empty"):
        attnlens.capture_batch(lm, [])
    with pytest.raises(AttnlensError, match="pair"):
        attnlens.capture_batch(lm, [("a", "b", "c")])


def test_bad_model_paths(tmp_path):
    with pytest.raises(AttnlensError, match="does not exist"):
        attnlens.load_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(AttnlensError, match="no config.json"):
        attnlens.load_model(str(tmp_path))
    text_file = tmp_path / "notes.txt"
    text_file.write_bytes(b"\x89PNG\x00\x01binary")
    with pytest.raises(AttnlensError, match="is a file"):
        attnlens.load_model(str(text_file))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AttnlensError, match="could not load model"):
        attnlens.load_model(str(tmp_path))


def test_an_architecture_without_an_entry_falls_back_instead_of_being_refused():
    from transformers import PretrainedConfig, XLMConfig

    from attnlens.capturing import spec_for_config

    spec = spec_for_config(XLMConfig(n_layers=1, emb_dim=8, n_heads=2))  # tests/integration/test_capture_fallback.py
    assert (spec.family, spec.recorder, spec.query) == ("xlm", "output_attentions", None)
    with pytest.raises(AttnlensError, match="names no model_type"):
        spec_for_config(PretrainedConfig())


def test_save_load_round_trip(tmp_path):
    cap = attnlens.capture(*PAIR, model=tiny_model("bert"))
    path = cap.save(tmp_path / "new" / "folder" / "run.npz")  # folders are created
    back = Capture.load(path)
    assert back.tokens == cap.tokens and back.text_b == PAIR[1] and back.model_name == "tiny-bert"
    for name in ("token_ids", "segment_ids", "word_ids", "special_mask", "attentions", "queries", "keys"):
        assert np.array_equal(getattr(back, name), getattr(cap, name))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(AttnlensError, match="not an attnlens capture"):
        Capture.load(garbage)
    with pytest.raises(AttnlensError, match="no capture file"):
        Capture.load(tmp_path / "missing.npz")


def test_layer_head_range_check():
    cap = attnlens.capture("Hello.", model=tiny_model("bert"))
    cap.check_layer_head(2, 3)
    with pytest.raises(AttnlensError, match="layer 3 is out of range"):
        cap.check_layer_head(3, 0)
    with pytest.raises(AttnlensError, match="head -1 is out of range"):
        cap.check_layer_head(0, -1)
