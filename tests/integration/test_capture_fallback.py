"""A family with no entry: capture falls back to the model's own eager `output_attentions` (exact,
no q/k), says once what that leaves out, and the views, atlas and Capture files still work."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import attnlens
from attnlens import AttnlensError, Capture
from attnlens.analysis.pipeline import run_checks
from attnlens.views.html import to_html
from attnlens.views.payload import build_payload, decode_payload
from attnlens.views.text import neuron_view_text
from conftest import PAIR
from family_models import INPUTS, eager_model, ernie_config, save_model, worst_difference, xlm_config


@pytest.fixture(scope="module")
def xlm(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("xlm"), xlm_config())


def test_xlm_captures_its_own_attention_exactly(xlm, caplog):
    from attnlens.capturing.families import fallback

    fallback._warned.discard("xlm")
    lm = attnlens.load_model(xlm)
    assert lm.spec.recorder == "output_attentions" and lm.spec.family == "xlm"
    with caplog.at_level(logging.WARNING, logger="attnlens"):
        batched = attnlens.capture_batch(lm, INPUTS, batch_size=3)
        singles = [attnlens.capture(a, b, model=lm) for a, b in INPUTS]
    said = [r.getMessage() for r in caplog.records if "no entry" in r.getMessage()]
    assert len(said) == 1 and "neuron view, explanations and value lenses" in said[0]  # said once
    eager = eager_model(xlm)
    assert worst_difference(batched, eager) <= 1e-5
    assert worst_difference(singles, eager) <= 1e-5
    cap = batched[0]
    assert cap.queries is None and cap.keys is None and not cap.has_qk and cap.d_head == 0
    np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)


def test_sdpa_model_is_switched_to_eager_for_the_capture_and_back(tmp_path):
    folder = save_model(tmp_path, ernie_config())
    lm = attnlens.load_model(folder)
    assert lm.spec.recorder == "output_attentions"
    assert lm.model.config._attn_implementation == "sdpa"
    caps = attnlens.capture_batch(lm, INPUTS, batch_size=3)
    assert lm.model.config._attn_implementation == "sdpa"  # restored
    assert worst_difference(caps, eager_model(folder)) <= 1e-5
    assert max(float(c.attentions.max()) for c in caps) > 0.5


def test_features_needing_qk_say_so_in_one_line(xlm):
    lm = attnlens.load_model(xlm)
    cap = attnlens.capture(*PAIR, model=lm)
    with pytest.raises(AttnlensError, match="neuron view needs per-head queries/keys"):
        neuron_view_text(cap, 0, 0, 1)
    with pytest.raises(AttnlensError, match="explanations needs per-head queries/keys"):
        attnlens.explain(cap, 0, 0, "previous_token")
    with pytest.raises(AttnlensError, match="values=True needs the value projections"):
        attnlens.capture(*PAIR, model=lm, values=True)


def test_files_views_and_atlas_work_without_qk(xlm, tmp_path):
    lm = attnlens.load_model(xlm)
    cap = attnlens.capture(*PAIR, model=lm)
    back = Capture.load(cap.save(tmp_path / "x.npz"))
    assert back.queries is None and np.array_equal(back.attentions, cap.attentions)
    meta, buffers = build_payload(back)
    assert not meta["has_qk"] and meta["attention_code"] == "sqrt-uint8"
    assert not any(name.startswith(("queries/", "keys/")) for name in buffers)
    page = decode_payload(meta, buffers)
    assert np.abs(page["attentions"] - cap.attentions).max() < 1 / 255 + 1e-3
    assert "data-attnlens-root" in to_html(back)
    corpus = [PAIR, ("The cat sat on the mat.", None), ("She read the book that he wrote.", None)] * 3
    at = attnlens.atlas(corpus, model=lm)
    assert at.num_layers == 2 and np.isfinite(at.scores["previous_token"]).all()
    checks = run_checks(at, causal=False)  # each top head "not explained", saying why
    assert checks.explanations == [] and checks.unexplained
    assert all("needs per-head queries/keys" in why for _l, _h, why in checks.unexplained.values())
    report = at.save(tmp_path / "atlas", checks=checks)
    assert report.is_file() and (report.parent / "scores.json").is_file() and list((report.parent / "views").iterdir())
