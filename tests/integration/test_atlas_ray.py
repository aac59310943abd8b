"""`atlas(..., ray=True)`: the same statistics from Ray tasks, merged exactly (local Ray)."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens import atlas
from conftest import PAIR, tiny_model

ray = pytest.importorskip("ray")

PAIRS = [PAIR, ("The cat sat on the mat.", "It was sunny."), "One sentence only.", " ".join(["long"] * 80),
         ("My brother plays the guitar.", "He practices every evening.")]


def test_ray_shards_merge_to_the_single_machine_scores():
    lm = tiny_model("bert")
    local = atlas(PAIRS, model=lm, progress=False)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        sharded = atlas(PAIRS, model=lm, progress=False, ray=True, shards=2)
    finally:
        ray.shutdown()
    assert sharded.inputs == local.inputs == 4
    assert sharded.skipped == local.skipped == {"longer than 64 tokens": 1}
    assert (sharded.stats.count == local.stats.count).all()
    np.testing.assert_allclose(sharded.stats.total, local.stats.total, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sharded.stats.squares, local.stats.squares, rtol=1e-6, atol=1e-6)
    assert {k: v.name for k, v in sharded.labels.items()} == {k: v.name for k, v in local.labels.items()}
