"""`head_importance(..., ray=True)` / `attnlens importance --ray`: shards scored by Ray tasks (local Ray) give the
one-machine result: the same inputs, skips, masks (keyed by corpus position) and sums."""

from __future__ import annotations

import numpy as np
import pytest

from attnlens.analysis.importance import head_importance
from conftest import PAIR, tiny_model

pytest.importorskip("ray")

PAIRS = [PAIR, ("The cat sat on the mat.", "It was sunny."), "One sentence only.", " ".join(["long"] * 80),
         ("My brother plays the guitar.", "He practices every evening."), ("Rain fell on the town.", None),
         ("She opened the old wooden door slowly.", "Nobody was there.")]


@pytest.mark.parametrize("method,objective,ablation", [("gradient", "masked_embedding", "zero"),
                                                        ("ablation", "embedding", "mean")])
def test_ray_shards_give_the_one_machine_importance(local_ray, method, objective, ablation):
    lm = tiny_model("bert", initializer_range=0.3)
    kwargs = dict(model=lm, objective=objective, method=method, ablation=ablation, batch_size=2, seed=3)
    local = head_importance(PAIRS, **kwargs)
    sharded = head_importance(PAIRS, **kwargs, ray=True, shards=3)
    assert sharded.inputs == local.inputs == len(PAIRS) - 1
    assert sharded.meta["skipped"] == local.meta["skipped"] == {"longer than 64 tokens": 1}
    np.testing.assert_allclose(sharded.raw, local.raw, rtol=1e-5, atol=1e-7)  # float32 losses, other padding
    np.testing.assert_allclose(sharded.scores, local.scores, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sharded.spread, local.spread, rtol=1e-4, atol=1e-7)
    assert sharded.baseline == pytest.approx(local.baseline, rel=1e-5, abs=1e-6)
