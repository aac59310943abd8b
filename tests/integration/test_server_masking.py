"""The fill-mask API behind the page's "Mask this token": whole-word masking of a split word,
and which prediction belongs to which position when the text already holds a [MASK]."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

import torch
from fastapi.testclient import TestClient

from attnlens.pretraining.predict import shipped_checkpoint
from attnlens.server import create_app
from attnlens.server.models import load_served_model
from server_helpers import save_tiny_mlm

ISSUE_TEXT = "The [MASK] module provides functions for working with files."


@pytest.fixture(scope="module")
def shipped():
    return load_served_model(str(shipped_checkpoint()))


@pytest.fixture(scope="module")
def client(shipped, tmp_path_factory):
    random_mlm = load_served_model(str(save_tiny_mlm(tmp_path_factory.mktemp("mlm"))))
    with TestClient(create_app({"tiny": shipped, "random": random_mlm})) as c:
        yield c


def fill(client, **body):
    r = client.post("/api/predict/fill-mask", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def top_k(lm, text_a, position, k=5):
    """The model's own top-k at `position` (a BertForPreTraining: its prediction_logits)."""
    enc = lm.tokenizer(text_a, return_tensors="pt")
    with torch.inference_mode():
        out = lm.model(**enc)
    logits = out.logits if hasattr(out, "logits") else out.prediction_logits
    top = torch.softmax(logits[0, position], dim=-1).topk(k)
    return lm.tokenizer.convert_ids_to_tokens(top.indices.tolist()), top.values.numpy()


def test_a_token_masked_next_to_a_mask_of_the_text(client, shipped):
    tokens = shipped.tokenizer.convert_ids_to_tokens(shipped.tokenizer(ISSUE_TEXT)["input_ids"])
    files, existing = tokens.index("files"), tokens.index("[MASK]")
    body = fill(client, model="tiny", text_a=ISSUE_TEXT, position=files, whole_word=True)
    assert body["masked_positions"] == [files] and body["masked_token"] == "files"
    by_position = {p["position"]: p["candidates"] for p in body["predictions"]}
    assert sorted(by_position) == sorted([existing, files])  # one prediction per mask, each with its position
    masked_text = ISSUE_TEXT.replace("files", "[MASK]")
    for position in (files, existing):
        expected, probs = top_k(shipped, masked_text, position)
        assert [c["token"] for c in by_position[position]] == expected
        np.testing.assert_allclose([c["probability"] for c in by_position[position]], probs, rtol=1e-4)
    # the position-only request says which position it masked too
    plain = fill(client, model="tiny", text_a=ISSUE_TEXT, position=files)
    assert plain["masked_positions"] == [files]


def test_whole_word_masks_every_piece_of_a_split_word(client):
    body = fill(client, model="random", text_a="fresh strawberries today", position=3, whole_word=True)
    assert body["masked_token"] == "strawberries" and body["masked_positions"] == [2, 3]
    assert body["text_a"] == "fresh [MASK][MASK] today"
    assert body["masked"]["meta"]["tokens"][1:5] == ["fresh", "[MASK]", "[MASK]", "today"]
    assert [p["position"] for p in body["predictions"]] == [2, 3]
    # the first piece gives the same whole word; a one-piece word is that token alone
    first = fill(client, model="random", text_a="fresh strawberries today", position=2, whole_word=True)
    assert first["masked_positions"] == [2, 3]
    one = fill(client, model="random", text_a="fresh strawberries today", position=1, whole_word=True)
    assert one["masked_positions"] == [1] and one["text_a"] == "[MASK] strawberries today"
    pair = fill(client, model="random", text_a="a b", text_b="fresh strawberries", position=6, whole_word=True)
    assert pair["text_b"] == "fresh [MASK][MASK]" and pair["masked_positions"] == [5, 6] and pair["text_a"] == "a b"


@pytest.mark.parametrize("position,words", [(0, "special token"), (4, "special token"), (9, "out of range"),
                                            (-1, "out of range")])
def test_whole_word_errors_are_422(client, position, words):
    r = client.post("/api/predict/fill-mask", json={"model": "random", "text_a": "fresh strawberries",
                                                    "position": position, "whole_word": True})
    assert r.status_code == 422 and words in r.json()["detail"]
