"""Two threads capturing through one model at once each get their own capture (hooks are per model)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from attnlens import capture
from conftest import tiny_model

TEXTS = ["A cat.", "The quick brown fox jumps over the lazy dog.", "Hi there, how are you today my friend?",
         "One two three four five six seven."]


def test_concurrent_captures_of_one_model_do_not_mix():
    lm = tiny_model("bert", initializer_range=0.3)
    alone = {t: capture(t, model=lm) for t in TEXTS}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda t: capture(t, model=lm), TEXTS * 6))
    for text, cap in zip(TEXTS * 6, together):
        assert cap.tokens == alone[text].tokens
        np.testing.assert_array_equal(cap.queries, alone[text].queries)
        np.testing.assert_allclose(cap.attentions, alone[text].attentions, atol=1e-6)
