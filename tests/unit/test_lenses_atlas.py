"""The atlas scores every pattern under any capture-only lens: the same as scoring each capture's lens maps."""

from __future__ import annotations

import numpy as np
import pytest

import attnlens
from attnlens import AttnlensError
from attnlens.patterns import PatternStats, layout_of
from attnlens.patterns.lenses import scoring_maps
from conftest import PAIR, tiny_model

PAIRS = [PAIR, ("The dog barked at night.", "Nobody slept."), ("Rain fell on the quiet town.", None)]


def _rows_normalised(maps):
    return maps / maps.sum(-1, keepdims=True)


@pytest.mark.parametrize("lens", ["value_norm", "rollout", "flow"])
def test_atlas_under_a_lens_scores_each_inputs_lens_maps(lens):
    lm = tiny_model("bert", initializer_range=0.3)
    result = attnlens.atlas(PAIRS, model=lm, lens=lens, progress=False, batch_size=3)  # one padded batch
    assert result.meta["lens"] == lens and f"{lens} lens" in result.summary()
    stats = PatternStats.zeros(lm.num_layers, lm.num_heads)
    for cap in attnlens.capture_batch(lm, PAIRS, values=True, batch_size=1):  # unpadded, one at a time
        maps = attnlens.lens(cap, lens)
        if maps.ndim == 3:  # rollout / flow: the same map for every head of a layer
            maps = np.broadcast_to(maps[:, None], cap.attentions.shape)
        stats.add(_rows_normalised(maps.astype(np.float64)).astype(np.float32), layout_of(cap))
    expected = stats.mean()
    for p, name in enumerate(stats.names):
        np.testing.assert_allclose(result.scores[name], expected[p], atol=2e-5, equal_nan=True)
    weights = attnlens.atlas(PAIRS, model=lm, progress=False)
    assert "lens" not in weights.meta
    assert max(np.abs(np.nan_to_num(result.scores[n] - weights.scores[n])).max() for n in stats.names) > 1e-3


def test_scoring_maps_rows_and_errors():
    rng = np.random.default_rng(0)
    att = rng.random((2, 2, 3, 5, 5)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    norms = rng.random((2, 2, 3, 5)).astype(np.float32)
    maps = scoring_maps("value_norm", att, norms)
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(maps[1, 0, 2, 3], _rows_normalised(att[1, 0, 2, 3] * norms[1, 0, 2]), atol=1e-6)
    with pytest.raises(AttnlensError, match="values=True"):
        scoring_maps("value_norm", att)
    with pytest.raises(AttnlensError, match="unknown lens 'grad_weights'"):
        scoring_maps("grad_weights", att)
    with pytest.raises(AttnlensError, match="unknown lens"):
        attnlens.atlas(PAIRS, model=tiny_model("bert"), lens="saliency", progress=False)


def test_flow_atlas_skips_and_counts_inputs_past_the_flow_limit():
    """The flow lens solves L x T^2 max-flow problems: past FLOW_TOKEN_LIMIT tokens an input is skipped and
    counted (the weights atlas scores it), instead of stopping the whole corpus."""
    lm = tiny_model("bert", max_position_embeddings=128)
    long_input = " ".join(["word"] * 70)  # 72 tokens: within the model's 128, past the flow lens's 64
    flow = attnlens.atlas(PAIRS + [long_input], model=lm, lens="flow", progress=False)
    assert flow.inputs == len(PAIRS) and flow.skipped == {"longer than 64 tokens": 1}
    weights = attnlens.atlas(PAIRS + [long_input], model=lm, progress=False)
    assert weights.inputs == len(PAIRS) + 1 and weights.skipped == {}
