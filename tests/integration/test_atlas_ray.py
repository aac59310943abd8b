"""`atlas(..., ray=True)`: the same statistics from Ray tasks, merged exactly (local Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens import atlas, load_model
from conftest import PAIR, tiny_model
from family_models import ernie_config, save_model

pytest.importorskip("ray")

PAIRS = [PAIR, ("The cat sat on the mat.", "It was sunny."), "One sentence only.", " ".join(["long"] * 80),
         ("My brother plays the guitar.", "He practices every evening.")]


def test_ray_shards_merge_to_the_single_machine_scores(local_ray):
    lm = tiny_model("bert")
    local = atlas(PAIRS, model=lm, progress=False)
    sharded = atlas(PAIRS, model=lm, progress=False, ray=True, shards=2)
    assert sharded.inputs == local.inputs == 4
    assert sharded.skipped == local.skipped == {"longer than 64 tokens": 1}
    assert (sharded.stats.count == local.stats.count).all()
    np.testing.assert_allclose(sharded.stats.total, local.stats.total, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sharded.stats.squares, local.stats.squares, rtol=1e-6, atol=1e-6)
    assert {k: v.name for k, v in sharded.labels.items()} == {k: v.name for k, v in local.labels.items()}


def test_a_model_captured_through_the_eager_fallback_still_goes_to_ray(local_ray, tmp_path):
    """ERNIE has no entry: its captures run transformers' output_attentions, which leaves hooks on the module that
    cannot be pickled, and a module unpickled without its constructor returns no attention. The shards get the
    model rebuilt from its class, config and weights (LoadedModel.__reduce__) and score what the local run scores."""
    lm = load_model(str(save_model(tmp_path / "ernie", ernie_config())))
    local = atlas(PAIRS, model=lm, progress=False)  # runs output_attentions on this very module first
    sharded = atlas(PAIRS, model=lm, progress=False, ray=True, shards=2)
    assert sharded.inputs == local.inputs == 4
    np.testing.assert_allclose(sharded.stats.total, local.stats.total, rtol=1e-6, atol=1e-5)
