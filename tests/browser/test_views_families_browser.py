"""The page for the new families: DeBERTa's score terms side by side in the neuron view, and a
capture without q/k (the eager fallback) whose neuron view says why it is hidden."""

from __future__ import annotations

import numpy as np
import pytest

import attnlens
from attnlens.views.html import to_html
from conftest import PAIR
from family_models import deberta_config, save_model, xlm_config
from views_helpers import hover_neuron_cell


@pytest.fixture(scope="module")
def deberta_capture(tmp_path_factory):
    folder = save_model(tmp_path_factory.mktemp("deberta"), deberta_config("v3"))
    return attnlens.capture(*PAIR, model=attnlens.load_model(folder))


def test_neuron_view_shows_the_three_deberta_terms(probe, deberta_capture, tmp_path):
    cap, layer, head, query = deberta_capture, 1, 2, 3
    path = tmp_path / "d.html"
    to_html(cap, path, views=["neuron", "head"], layer=layer, head=head, query=query)
    probe.open(path, wait="neuron")
    content = cap.queries[layer, head, query] @ cap.keys[layer, head].T * cap.extras["content_scale"][layer, head]
    c2p = cap.extras["content_to_position"][layer, head, query]
    p2c = cap.extras["position_to_content"][layer, head, query]
    for j in (0, 4, cap.num_tokens - 1):
        # the columns: q.k scaled, c->p, p->c, their total
        shown = [hover_neuron_cell(probe.page, "term", j, column, match_dim=True) for column in range(4)]
        expected = [content[j], c2p[j], p2c[j], content[j] + c2p[j] + p2c[j]]
        np.testing.assert_allclose(shown, expected, atol=0.02)  # float16 on the page, 3 decimals shown
    assert probe.errors == []


def test_a_capture_without_qk_draws_and_explains_the_missing_neuron_view(probe, tmp_path):
    folder = save_model(tmp_path / "xlm", xlm_config())
    cap = attnlens.capture(*PAIR, model=attnlens.load_model(folder))
    path = tmp_path / "x.html"
    to_html(cap, path)
    probe.open(path)  # the head view draws
    probe.page.click("button[data-view='neuron']")
    probe.wait_drawn("neuron", 1)
    message = probe.page.inner_text("[data-role='no-qk']")
    assert "needs per-head queries and keys" in message
    probe.page.click("button[data-view='model']")
    probe.wait_drawn("model", 1)
    assert probe.errors == []
