"""Lenses in the views: the payload carries what each lens needs, and the page's lens maps equal attnlens.lens."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import attnlens
from attnlens.views.payload import build_payload, decode_payload
from conftest import PAIR
from views_helpers import run_page_data


@pytest.fixture(scope="module")
def value_capture(default_model):
    cap = attnlens.capture(*PAIR, model=default_model, values=True)
    cap.extras["grad_weights"] = attnlens.lens(cap, "value_norm") ** 2  # any per-head map: the shipping is checked
    return cap


def _shares(maps):
    return maps / maps.sum(-1, keepdims=True)


def test_payload_lenses(value_capture, default_capture):
    meta, buffers = build_payload(value_capture)
    assert meta["lenses"] == ["weights", "rollout", "value_norm", "grad_weights"]
    out = decode_payload(meta, buffers)
    np.testing.assert_allclose(out["value_norms"], value_capture.value_norms, rtol=1e-3)
    shares = _shares(value_capture.extras["grad_weights"])
    assert np.all(np.abs(out["grad_weights"] - shares) <= np.sqrt(shares) / 255 + 1e-5)
    plain, plain_buffers = build_payload(default_capture)
    assert plain["lenses"] == ["weights", "rollout"]
    assert not any(name.startswith(("value_norms/", "grad_weights/")) for name in plain_buffers)
    # the value norms cost L x H x T float16 values: small next to the page
    extra = sum(len(b) for n, b in buffers.items() if n.startswith("value_norms/"))
    assert extra <= 2 * value_capture.num_layers * value_capture.num_heads * value_capture.num_tokens


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_pages_lens_maps_equal_the_python_lenses(value_capture, tmp_path):
    """data.js run in node on the payload: value_norm (row shares), rollout and grad_weights as in Python."""
    result, _ = run_page_data(value_capture, tmp_path, """
const out = {};
for (const lens of ["weights", "value_norm", "rollout", "grad_weights"]) {
  out[lens] = Array.from(await data.lensAttention(4, lens));
}
out.norms = Array.from(await data.valueNorms(4));
console.log(JSON.stringify(out));
""")
    cap, t = value_capture, value_capture.num_tokens
    shape = (cap.num_heads, t, t)
    page = {k: np.array(v).reshape(shape) for k, v in result.items() if k != "norms"}
    np.testing.assert_allclose(page["weights"], cap.attentions[4], atol=0.01)
    np.testing.assert_allclose(page["value_norm"], _shares(attnlens.lens(cap, "value_norm")[4]), atol=0.01)
    rollout = attnlens.lens(cap, "rollout")[4]
    for head in range(cap.num_heads):
        np.testing.assert_allclose(page["rollout"][head], rollout, atol=0.01)
    np.testing.assert_allclose(page["grad_weights"], _shares(cap.extras["grad_weights"][4]), atol=0.01)
    np.testing.assert_allclose(np.array(result["norms"]).reshape(cap.num_heads, t), cap.value_norms[4], rtol=1e-3)
    assert np.abs(page["value_norm"] - page["weights"]).max() > 0.05  # the lens changes what is drawn
