"""The atlas report's importance column and labels x importance map, and `attnlens importance` (CLI)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import attnlens
from attnlens.analysis.pipeline import IMPORTANCE_LIMIT, check_pairs, run_checks
from attnlens.cli import commands  # noqa: F401  (registers the commands)
from attnlens.cli.app import app
from conftest import PAIR, default_tokenizer, tiny_model

runner = CliRunner()
PAIRS = [PAIR, ("The dog barked at night.", "Nobody slept."), ("Rain fell.", "The streets were wet."),
         ("She reads books.", "He writes them.")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-bert")
    lm = tiny_model("bert", initializer_range=0.3)
    lm.model.save_pretrained(path)
    default_tokenizer().save_pretrained(path)
    return str(path)


def test_report_has_the_importance_of_every_head(tmp_path):
    lm = tiny_model("bert", initializer_range=0.3)
    at = attnlens.atlas(PAIRS, model=lm, progress=False)
    checks = run_checks(at, explain=False, causal=True, check_limit=4)
    expected = attnlens.head_importance(check_pairs(PAIRS, IMPORTANCE_LIMIT), lm, "embedding", "ablation")
    np.testing.assert_allclose(checks.importance.scores, expected.scores, rtol=1e-6)
    at.save(tmp_path, checks=checks, example=False)
    saved = json.loads((tmp_path / "importance.json").read_text())
    np.testing.assert_allclose(saved["scores"], expected.scores, rtol=1e-6)
    page = (tmp_path / "report.html").read_text()
    assert "<h2 id='importance'>Importance</h2>" in page and "heads in the top quarter" in page
    layer, head, score = expected.top(1)[0]
    assert f"layer {layer} head {head}</b>: " in page and f"importance {score:.4f}" in page


def test_importance_command_writes_scores_and_pruning(model_dir, tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS), encoding="utf-8")
    out = tmp_path / "imp"
    result = runner.invoke(app, ["importance", "--corpus", str(corpus), "--model", model_dir, "-o", str(out),
                                 "--pruning", "--points", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "head importance of" in result.output and "pruning (least important first)" in result.output
    for name in ("importance.json", "importance.csv", "importance.png", "pruning.json", "pruning.png", "pruning.svg"):
        assert (out / name).stat().st_size > 0
    saved = json.loads((out / "importance.json").read_text())
    assert saved["inputs"] == len(PAIRS) and saved["objective"] == "embedding" and saved["method"] == "ablation"
    assert json.loads((out / "pruning.json").read_text())["fractions"] == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("args, message", [
    (["importance", "--objective", "bleu"], "unknown objective 'bleu'"),
    (["importance", "--method", "gradient"], "zero gradient"),
    (["importance", "--objective", "classification"], "ForSequenceClassification"),
    (["importance", "--ablation", "half"], "unknown ablation 'half'"),
    (["importance", "--corpus", "/nonexistent.tsv"], "no corpus file"),
])
def test_importance_command_errors_are_one_line(model_dir, args, message):
    result = runner.invoke(app, [*args, "--model", model_dir, "--no-progress", "--limit", "2"])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_atlas_command_scores_under_a_lens(model_dir, tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS), encoding="utf-8")
    args = ["atlas", "--corpus", str(corpus), "--model", model_dir, "--no-progress", "--no-explain", "--no-causal"]
    result = runner.invoke(app, [*args, "--lens", "value_norm", "-o", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert "value_norm lens" in result.output
    saved = json.loads((tmp_path / "a" / "scores.json").read_text())
    assert saved["meta"]["lens"] == "value_norm"
    bad = runner.invoke(app, [*args, "--lens", "saliency", "-o", str(tmp_path / "b")])
    assert bad.exit_code == 2 and "unknown lens 'saliency'" in bad.output
