"""A capture of a fine-tuned classifier runs its head in the recorded forward: Capture.logits equals the
classifier's own output (padded batches included), the attention is the encoder's as without the head, and the
logits survive save/load. Other models' captures keep no logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlens import capture, capture_batch
from attnlens.capturing import Capture, LoadedModel, model_inputs
from conftest import FAMILIES, PAIR, default_tokenizer, tiny_config, tiny_model

INPUTS = [PAIR, ("Hi.", None), ("The cat sat on the mat because it was warm there.", "Yes.")]


def tiny_classifier(family: str, head: str) -> LoadedModel:
    """A random tiny *For{Sequence,Token}Classification (3 classes) with the same encoder weights as tiny_model."""
    import transformers

    base = tiny_model(family)
    cls = getattr(transformers, f"AutoModelFor{head}Classification")
    model = cls.from_config(tiny_config(family, num_labels=3), attn_implementation="sdpa")
    loaded = model.base_model.load_state_dict(base.model.state_dict(), strict=False)  # a head without a pooler
    assert not loaded.missing_keys
    return LoadedModel(model, default_tokenizer(), name=f"tiny-{family}-{head}")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("head", ["Sequence", "Token"])
def test_classifier_capture_keeps_its_own_logits(family, head):
    lm = tiny_classifier(family, head)
    assert lm.has_classifier_head and not tiny_model(family).has_classifier_head
    caps = capture_batch(lm, INPUTS)  # one padded batch of different lengths
    for cap, pair in zip(caps, INPUTS):
        enc = lm.tokenizer(*pair, return_tensors="pt")
        with torch.inference_mode():
            expected = lm.model(**model_inputs(lm.model, dict(enc), lm.device)).logits[0].numpy()  # [C] / [T, C]
        assert cap.logits.shape == expected.shape == ((3,) if head == "Sequence" else (cap.num_tokens, 3))
        np.testing.assert_allclose(cap.logits, expected, atol=1e-5, rtol=0)
        plain = capture(*pair, model=tiny_model(family))  # the same encoder without a head
        assert plain.logits is None
        np.testing.assert_allclose(cap.attentions, plain.attentions, atol=1e-6, rtol=0)


def test_logits_survive_save_and_load(tmp_path):
    cap = capture(*PAIR, model=tiny_classifier("bert", "Sequence"))
    loaded = Capture.load(cap.save(tmp_path / "cap.npz"))
    np.testing.assert_array_equal(loaded.logits, cap.logits)
    assert Capture.load(capture(*PAIR, model=tiny_model("bert")).save(tmp_path / "plain.npz")).logits is None
