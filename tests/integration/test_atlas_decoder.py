"""A decoder (tiny random GPT-2) through the atlas: undefined patterns reported as such, never as 0."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from attnlens import atlas, capture_batch
from attnlens.patterns import PatternStats
from conftest import PAIR, default_tokenizer

PAIRS = [
    PAIR,
    ("Unbelievably, the cat sat on the mat.", "It was a sunny day and the cat was happy."),
    "A single sentence without a partner.",
    ("Strawberries grow in the garden behind the old house.", "The house was painted white last summer."),
]


@pytest.fixture(scope="module")
def tiny_gpt2():
    import torch
    from transformers import GPT2Config, GPT2Model

    from attnlens.capturing import LoadedModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=30522, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64)
    return LoadedModel(GPT2Model(config), default_tokenizer(), name="tiny-gpt2")


def _no_nan(text: str):
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_decoder_atlas_is_the_reduction_of_its_causal_captures(tiny_gpt2):
    result = atlas(PAIRS, model=tiny_gpt2, batch_size=2, progress=False)
    expected = PatternStats.zeros(tiny_gpt2.num_layers, tiny_gpt2.num_heads)
    for cap in capture_batch(tiny_gpt2, PAIRS):
        assert cap.causal and np.abs(np.triu(cap.attentions, 1)).max() == 0
        expected.add_capture(cap)
    assert result.causal and expected.causal
    np.testing.assert_allclose(result.stats.total, expected.total, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(result.stats.count, expected.count)
    np.testing.assert_allclose(result.stats.chance, expected.chance, rtol=1e-9)
    # next_token is not defined for any query: NaN, not 0, with the reason; nothing is labelled with it
    assert set(result.undefined) == {"next_token"} and "later tokens" in result.undefined["next_token"]
    assert np.isnan(result.scores["next_token"]).all() and result.counts["next_token"] == 0
    assert all("next_token" not in label.name for label in result.labels.values())
    summary = result.summary()
    assert "causal (decoder) model" in summary
    assert [line for line in summary.splitlines() if line.strip().startswith("next_token")][0].split()[1] == "n/a:"


def test_decoder_atlas_files_say_not_defined(tiny_gpt2, tmp_path):
    result = atlas(PAIRS, model=tiny_gpt2, progress=False)
    report = result.save(tmp_path / "out", explain=False, causal=False)
    data = _no_nan((tmp_path / "out" / "scores.json").read_text())
    assert data["causal"] is True
    nxt = data["patterns"]["next_token"]
    assert nxt["queries"] == 0 and nxt["chance"] is None and "later tokens" in nxt["undefined"]
    assert all(v is None for row in nxt["mean"] for v in row)
    assert data["patterns"]["previous_token"]["undefined"] is None
    assert isinstance(data["patterns"]["previous_token"]["chance"], float)
    with open(tmp_path / "out" / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["mean"], r["std"], r["chance"]) for r in rows if r["pattern"] == "next_token"} == {("n/a",) * 3}
    assert all(r["mean"] != "n/a" for r in rows if r["pattern"] == "previous_token")
    page = report.read_text()
    assert "Causal (decoder) model" in page and "n/a: not defined</b> on this corpus" in page
