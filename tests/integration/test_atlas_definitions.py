"""The atlas's pattern definitions on models: `definitions="clark"` against plain loops over the model's
own captures, the option on the command line and in scores.json, and the default model's L0 H2 (issue 10.13)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from attnlens import AttnlensError, atlas, capture_batch
from attnlens.cli import commands  # noqa: F401  (registers the commands)
from attnlens.cli.app import app
from conftest import PAIR, default_tokenizer, tiny_model

PAIRS = [
    PAIR,
    ("The cat sat on the mat, and it slept.", "It was a sunny day."),
    "A single sentence, without a partner.",
    ("Unbelievably, the subprocess module was rewritten.", "Its documentation was not."),
]
CLARK = ("next_token", "previous_token", "self", "cls", "sep", "punctuation", "entropy")


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert")


def clark_by_hand(captures) -> dict[str, np.ndarray]:
    """Clark et al. 2019's notebook with plain loops: per input, the attention on each kind of key summed
    over every row and divided by the input's length (entropy: nats of the row smoothed as
    0.9999 a + 0.0001 / n, averaged over the rows), then averaged over the inputs."""
    n_layers, n_heads = captures[0].attentions.shape[:2]
    out = {name: np.zeros((n_layers, n_heads)) for name in CLARK}
    for cap in captures:
        tokens, n = cap.tokens, len(cap.tokens)
        for layer in range(n_layers):
            for head in range(n_heads):
                rows = cap.attentions[layer, head].astype(np.float64)
                total = dict.fromkeys(CLARK, 0.0)
                for i in range(n):
                    for j in range(n):
                        a = rows[i, j]
                        total["next_token"] += a * (j == i + 1)
                        total["previous_token"] += a * (j == i - 1)
                        total["self"] += a * (j == i)
                        total["cls"] += a * (tokens[j] == "[CLS]")
                        total["sep"] += a * (tokens[j] == "[SEP]")
                        total["punctuation"] += a * (tokens[j] in (".", ","))
                        smoothed = 0.9999 * a + 0.0001 / n
                        total["entropy"] -= smoothed * math.log(smoothed)
                for name in CLARK:
                    out[name][layer, head] += total[name] / n / len(captures)
    return out


def test_clark_atlas_equals_the_hand_computation_on_the_models_captures(tiny_bert):
    result = atlas(PAIRS, model=tiny_bert, batch_size=2, progress=False, definitions="clark")
    expected = clark_by_hand(capture_batch(tiny_bert, PAIRS))
    assert result.definitions == "clark" and result.pattern_names == CLARK
    assert result.counts == dict.fromkeys(CLARK, len(PAIRS))  # every input counts once
    for name in CLARK:
        np.testing.assert_allclose(result.scores[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)
    data = result.to_dict()
    assert data["definitions"]["name"] == "clark" and "Clark et al. 2019" in data["definitions"]["description"]
    assert data["patterns"]["previous_token"]["definition"].startswith("Clark's \"left\"")
    assert "clark definitions" in result.summary()
    default = atlas(PAIRS, model=tiny_bert, progress=False)
    assert default.definitions == "attnlens" and default.to_dict()["definitions"]["name"] == "attnlens"
    assert {"self", "punctuation"} <= set(default.pattern_names)
    with pytest.raises(AttnlensError, match="token level"):
        atlas(PAIRS, model=tiny_bert, progress=False, definitions="clark", level="word")
    with pytest.raises(AttnlensError, match="unknown definitions"):
        atlas(PAIRS, model=tiny_bert, progress=False, definitions="bert")


def test_clark_definitions_reach_the_ray_shards(tiny_bert, local_ray):
    local = atlas(PAIRS, model=tiny_bert, progress=False, definitions="clark")
    sharded = atlas(PAIRS, model=tiny_bert, progress=False, ray=True, shards=2, definitions="clark")
    assert sharded.definitions == "clark" and sharded.pattern_names == CLARK
    assert sharded.counts == local.counts == dict.fromkeys(CLARK, len(PAIRS))
    np.testing.assert_allclose(sharded.stats.total, local.stats.total, rtol=1e-6, atol=1e-6)


def test_atlas_command_with_clark_definitions(tiny_bert, tmp_path):
    model_dir = tmp_path / "tiny-bert"
    tiny_bert.model.save_pretrained(model_dir)
    default_tokenizer().save_pretrained(model_dir)
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("".join(f"{a}\t{b or ''}\n" if b else f"{a}\n" for a, b in
                              (p if isinstance(p, tuple) else (p, None) for p in PAIRS)), encoding="utf-8")
    out = tmp_path / "atlas"
    runner = CliRunner()
    result = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", str(model_dir), "-o", str(out),
                                 "--no-progress", "--check-limit", "2", "--definitions", "clark"])
    assert result.exit_code == 0, result.output
    assert "clark definitions" in result.output and "causal checks" in result.output
    data = json.loads((out / "scores.json").read_text())
    assert data["definitions"]["name"] == "clark" and tuple(data["patterns"]) == CLARK
    explained = [ex["pattern"] for ex in json.loads((out / "explanations.json").read_text())]
    assert explained == [n for n in CLARK if n != "entropy"]
    bad = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", str(model_dir), "--definitions", "nope"])
    assert bad.exit_code == 2 and "unknown definitions 'nope'" in bad.output


def test_default_model_previous_token_head_is_not_a_word_pieces_head(default_model):
    """Issue 10.13: L0 H2 was labelled previous_token+same_word_pieces (0.61 over 300 corpus pairs)
    because a ## piece's previous token is its own word."""
    result = atlas(None, model=default_model, limit=60, progress=False)
    assert result.counts["same_word_pieces"] > 50  # pieces of words of 3+ pieces occur
    label = result.labels[(0, 2)]
    assert label.name == "previous_token" and label.score > 0.95
    assert result.scores["same_word_pieces"][0, 2] < 0.1
