"""Views of captures whose layers attend within a band of key offsets (ModernBERT's local layers, Qwen2's sliding
window): the capture carries each layer's band, the payload ships q/k instead of T x T weights, and the page
(decode_payload and data.js itself) masks q . k by the band, so it shows the capture's attention."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

import attnlens
from attnlens.capturing import Capture
from attnlens.views.payload import QK_TOLERANCE, build_payload, decode_payload, qk_attention_error
from interface_models import LOCAL_WINDOW, saved_model
from views_helpers import run_page_data

LONG = " ".join(f"word{i % 7} and" for i in range(12))  # ~40 tokens, well beyond the local window of 8
HALF = LOCAL_WINDOW // 2  # a ModernBERT local layer sees HALF tokens each side


@pytest.fixture(scope="module")
def modernbert(tmp_path_factory):
    return attnlens.load_model(saved_model(tmp_path_factory.mktemp("modernbert"), "modernbert"))


@pytest.fixture(scope="module")
def modernbert_capture(modernbert):
    return attnlens.capture(LONG, model=modernbert)


def test_modernbert_capture_carries_each_layers_band(modernbert, modernbert_capture):
    cap = modernbert_capture
    assert cap.num_tokens > 4 * LOCAL_WINDOW
    assert cap.bands == [(None, None), (-HALF, HALF), (None, None)]  # global, local, global
    short = attnlens.capture("Hi.", model=modernbert)  # shorter than the window: no band cuts anything
    assert short.bands == [(None, None)] * 3


def test_band_payload_ships_qk_and_equals_the_capture(modernbert_capture):
    cap = modernbert_capture
    meta, buffers = build_payload(cap)
    assert meta["attention_code"] == "qk" and meta["causal"] is False
    assert meta["bands"] == [[None, None], [-HALF, HALF], [None, None]]
    assert not [name for name in buffers if name.startswith("attention/")]  # no T x T weights at all
    out = decode_payload(meta, buffers)
    assert np.abs(out["attentions"] - cap.attentions).max() <= QK_TOLERANCE
    t = cap.num_tokens
    far = np.abs(np.arange(t)[None, :] - np.arange(t)[:, None]) > HALF  # [T, T] outside the local window
    assert (out["attentions"][1][:, far] == 0).all()
    # without its bands the same q/k put weight outside the window: the page would be wrong, so "auto" ships uint8
    bandless = dataclasses.replace(cap, bands=None)
    assert qk_attention_error(bandless) > QK_TOLERANCE
    assert build_payload(bandless)[0]["attention_code"] == "sqrt-uint8"
    assert decode_payload(dict(meta, bands=None), buffers)["attentions"][1][:, far].max() > 0.01


def test_qwen2_sliding_window_payload_ships_qk(tmp_path):
    lm = attnlens.load_model(saved_model(tmp_path, "qwen2"))
    cap = attnlens.capture(LONG, model=lm)
    assert cap.causal and cap.bands[0] == (None, 0)  # a full causal layer, then sliding-window layers
    assert all(lo is not None and hi == 0 for lo, hi in cap.bands[1:])
    meta, buffers = build_payload(cap)
    assert meta["attention_code"] == "qk" and not [name for name in buffers if name.startswith("attention/")]
    assert np.abs(decode_payload(meta, buffers)["attentions"] - cap.attentions).max() <= QK_TOLERANCE


def test_decoder_band_changes_nothing(tmp_path):
    """GPT-2's band is the causal mask itself: the page's weights are exactly those of `causal` alone."""
    lm = attnlens.load_model(saved_model(tmp_path, "gpt2"))
    cap = attnlens.capture(LONG, model=lm)
    assert cap.causal and cap.bands == [(None, 0)] * cap.num_layers
    meta, buffers = build_payload(cap)
    assert meta["attention_code"] == "qk"
    with_band = decode_payload(meta, buffers)["attentions"]
    np.testing.assert_array_equal(with_band, decode_payload(dict(meta, bands=None), buffers)["attentions"])


def test_default_model_has_no_bands(default_capture):
    assert default_capture.bands is None
    assert build_payload(default_capture)[0]["bands"] is None


def test_save_and_load_keep_the_bands(modernbert_capture, tmp_path):
    path = modernbert_capture.save(tmp_path / "cap.npz")
    loaded = Capture.load(path)
    assert loaded.bands == modernbert_capture.bands
    meta, buffers = build_payload(loaded)
    assert meta["attention_code"] == "qk"
    assert np.abs(decode_payload(meta, buffers)["attentions"] - loaded.attentions).max() <= QK_TOLERANCE
    bandless = dataclasses.replace(modernbert_capture, bands=None)
    assert Capture.load(bandless.save(tmp_path / "none.npz")).bands is None


def test_wrong_number_of_bands_is_a_clear_error(modernbert_capture):
    with pytest.raises(attnlens.AttnlensError, match="3 layers"):
        build_payload(dataclasses.replace(modernbert_capture, bands=[(None, None)]))


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_own_attention_is_banded(modernbert_capture, tmp_path):
    """data.js run in node on the payload: each layer's weights and the neuron view's softmax equal the capture."""
    cap = modernbert_capture
    query = cap.num_tokens // 2
    result, _ = run_page_data(cap, tmp_path, f"""
const att = [];
for (let layer = 0; layer < data.L; layer++) att.push(Array.from(await data.attention(layer)));
const detail = await data.detail(1, 2, {query});
console.log(JSON.stringify({{ att, softmax: detail.softmax }}));
""", timeout=120)
    t = cap.num_tokens
    att = np.array(result["att"]).reshape(cap.num_layers, cap.num_heads, t, t)
    assert np.abs(att - cap.attentions).max() <= QK_TOLERANCE
    far = np.abs(np.arange(t)[None, :] - np.arange(t)[:, None]) > HALF
    assert (att[1][:, far] == 0).all()
    softmax = np.array(result["softmax"])
    assert np.abs(softmax - cap.attentions[1, 2, query]).max() <= QK_TOLERANCE
    assert (softmax[np.abs(np.arange(t) - query) > HALF] == 0).all()


def test_text_neuron_view_lists_only_the_keys_in_the_window(modernbert_capture):
    """A local layer's query sees only the keys in its band: the text view lists those (their softmax sums to 1)
    and says how many others are masked; a global layer lists every key."""
    from attnlens.views.text import neuron_view_text

    cap, query = modernbert_capture, 20
    local = neuron_view_text(cap, 1, 0, query).splitlines()
    rows = local[3:]
    assert [int(r.split()[0]) for r in rows] == list(range(query - HALF, query + HALF + 1))
    assert f"keys {query - HALF}..{query + HALF}, the {cap.num_tokens - 2 * HALF - 1} other keys masked" \
        in local[0]
    weights = [float(r.split()[4]) for r in rows]  # index, token, q.k, q.k/sqrt(d), softmax, top dims
    assert sum(weights) == pytest.approx(1, abs=5e-3)  # (printed to 3 decimals)
    glob = neuron_view_text(cap, 0, 0, query).splitlines()
    assert len(glob) - 3 == cap.num_tokens and "window" not in glob[0]
