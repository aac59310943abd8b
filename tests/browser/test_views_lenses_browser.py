"""The lens selector in the standalone page (headless chromium): head and model views redraw under each lens,
and the neuron view shows ||f_h(x_j)|| next to the softmax."""

from __future__ import annotations

import pytest

import attnlens
from attnlens.views.html import to_html
from conftest import PAIR


@pytest.fixture(scope="module")
def lens_page(default_model, tmp_path_factory):
    cap = attnlens.capture(*PAIR, model=default_model, values=True)
    path = tmp_path_factory.mktemp("views") / "lenses.html"
    to_html(cap, path, layer=5)
    return path


def test_lens_selector_redraws_head_and_model_views(probe, lens_page):
    probe.open(lens_page)
    page, canvas = probe.page, ".al-head-canvas"
    lens = 'select[aria-label="Lens"] >> nth=0'
    values = page.eval_on_selector_all(f"{lens} >> option", "os => os.map(o => o.value)")
    assert values == ["weights", "value_norm", "rollout"]  # no grad_weights in this capture
    weights = probe.canvas_hash(canvas)
    seen = {weights}
    for name in ("value_norm", "rollout"):
        count = probe.drawn("head")
        page.select_option(lens, name)
        probe.wait_drawn("head", count + 1)
        assert probe.state()["lens"] == name
        seen.add(probe.canvas_hash(canvas))
    assert len(seen) == 3  # each lens draws something else
    page.click("button[data-view=model]")
    probe.wait_drawn("model", 1)
    rollout = probe.canvas_hash(".al-model-canvas")
    count = probe.drawn("model")
    page.select_option('.al-panel[data-view=model] select[aria-label="Lens"]', "weights")
    probe.wait_drawn("model", count + 1)
    assert probe.canvas_hash(".al-model-canvas") != rollout
    assert probe.errors == []


def test_neuron_view_has_the_value_norm_column(probe, lens_page, default_capture, tmp_path):
    plain = tmp_path / "plain.html"
    to_html(default_capture, plain, views=["neuron"])
    widths = []
    for path in (lens_page, plain):
        probe.open(path, wait="neuron") if path == plain else probe.open(path)
        if path == lens_page:
            probe.page.click("button[data-view=neuron]")
            probe.wait_drawn("neuron", 1)
        widths.append(probe.page.eval_on_selector(".al-neuron-canvas", "c => c.getBoundingClientRect().width"))
    assert widths[0] > widths[1] + 100  # the ||f(x)|| column
    assert probe.errors == []
