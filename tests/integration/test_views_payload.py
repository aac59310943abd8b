"""The payload serializer: round trip to quantization precision, fallbacks, thumbnails."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens import AttnlensError, capture
from attnlens.views.payload import (
    attention_error_bound,
    block_max,
    build_payload,
    decode_buffer,
    decode_payload,
    dequantize_attention,
    quantize_attention,
)
from conftest import PAIR, tiny_model
from views_helpers import synthetic_capture

F16_REL = 2.0 ** -11  # float16 rounding, relative


def _check_round_trip(cap, meta, buffers):
    out = decode_payload(meta, buffers)
    for name in ("queries", "keys"):
        original = getattr(cap, name)
        assert out[name].shape == original.shape
        assert np.all(np.abs(out[name] - original) <= np.abs(original) * F16_REL + 1e-7)
    assert out["attentions"].shape == cap.attentions.shape
    return out


@pytest.mark.parametrize("family", ["bert", "distilbert", "albert"])
def test_round_trip_tiny_models(family):
    cap = capture(*PAIR, model=tiny_model(family))
    meta, buffers = build_payload(cap)
    out = _check_round_trip(cap, meta, buffers)
    assert meta["attention_code"] == "qk"
    # the page derives attention from float16 q/k; it stays within the measured, small error
    assert np.abs(out["attentions"] - cap.attentions).max() <= 0.01
    assert meta["num_layers"] == cap.num_layers and meta["num_heads"] == cap.num_heads
    assert meta["tokens"] == cap.tokens
    assert meta["segment_ids"] == cap.segment_ids.tolist()
    assert meta["word_ids"] == cap.word_ids.tolist()
    assert meta["special"] == cap.special_mask.tolist()


def test_round_trip_default_model(default_capture):
    cap = default_capture
    meta, buffers = build_payload(cap)
    out = _check_round_trip(cap, meta, buffers)
    err = np.abs(out["attentions"] - cap.attentions).max()
    assert meta["attention_code"] == "qk"
    assert err <= 0.005
    assert meta["attention_error"] <= err + 1e-9  # sampled rows: never more than the full maximum
    assert meta["d_head"] == 32 and meta["is_pair"] and meta["text_b"] == PAIR[1]


def test_uint8_attention_round_trip(default_capture):
    cap = default_capture
    meta, buffers = build_payload(cap, attention="uint8")
    assert meta["attention_code"] == "sqrt-uint8"
    out = _check_round_trip(cap, meta, buffers)
    assert np.all(np.abs(out["attentions"] - cap.attentions) <= attention_error_bound(cap.attentions) + 1e-7)


def test_attention_that_is_not_softmax_qk_is_shipped():
    cap = synthetic_capture(["a", "b", "c", "d"])
    cap.attentions = np.full_like(cap.attentions, 0.25)  # e.g. a model with its own attention bias
    meta, buffers = build_payload(cap)
    assert meta["attention_code"] == "sqrt-uint8"
    assert np.allclose(decode_payload(meta, buffers)["attentions"], 0.25, atol=attention_error_bound(0.25) + 1e-7)


def test_quantization_bound_is_tight_and_respected():
    w = np.linspace(0, 1, 100001, dtype=np.float32)
    err = np.abs(dequantize_attention(quantize_attention(w)) - w)
    assert np.all(err <= attention_error_bound(w) + 1e-7)
    assert err.max() > 0.5 * attention_error_bound(w).max()  # the bound is not loose


def test_thumbnails_are_block_maxima(default_capture):
    cap = default_capture
    meta, buffers = build_payload(cap)
    n = meta["thumb_size"]
    assert n == cap.num_tokens  # short inputs: one cell per weight
    thumbs = decode_buffer(meta, buffers, "thumbs/1")
    assert thumbs.shape == (cap.num_heads, n, n)
    assert np.all(np.abs(thumbs - cap.attentions[1]) <= attention_error_bound(cap.attentions[1]) + 1e-7)


def test_block_max_pools_uneven_blocks():
    x = np.arange(49, dtype=np.float32).reshape(7, 7)
    pooled = block_max(x, 3)  # edges 0, 2, 4
    expected = np.array([[x[0:2, 0:2].max(), x[0:2, 2:4].max(), x[0:2, 4:].max()],
                         [x[2:4, 0:2].max(), x[2:4, 2:4].max(), x[2:4, 4:].max()],
                         [x[4:, 0:2].max(), x[4:, 2:4].max(), x[4:, 4:].max()]])
    assert np.array_equal(pooled, expected)


def test_compression_is_optional_and_lossless():
    cap = synthetic_capture(["x"] * 30, layers=1)
    meta_z, buf_z = build_payload(cap, compress=True)
    meta_r, buf_r = build_payload(cap, compress=False)
    assert all(e["encoding"] == "raw" for e in meta_r["buffers"].values())
    for name in ("queries/0", "keys/0", "thumbs/0"):
        assert np.array_equal(decode_buffer(meta_z, buf_z, name), decode_buffer(meta_r, buf_r, name))


def test_bad_captures_are_clear_errors():
    cap = synthetic_capture(["a", "b"])
    cap.queries = cap.queries.copy()
    cap.queries[0, 0, 0, 0] = np.nan
    with pytest.raises(AttnlensError, match="NaN"):
        build_payload(cap)
    cap = synthetic_capture(["a", "b"])
    cap.segment_ids = np.zeros(3, np.int64)
    with pytest.raises(AttnlensError, match="segment_ids"):
        build_payload(cap)
    with pytest.raises(AttnlensError, match="attention must be"):
        build_payload(synthetic_capture(["a"]), attention="float")
