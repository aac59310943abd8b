"""`attnlens atlas` and `attnlens explain` from the command line (a tiny model saved to disk)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from attnlens.cli.app import app
from attnlens.cli import commands  # noqa: F401
from conftest import PAIR, default_tokenizer, tiny_model

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-bert")
    lm = tiny_model("bert")
    lm.model.save_pretrained(path)
    default_tokenizer().save_pretrained(path)
    return str(path)


def test_atlas_command_writes_the_report(model_dir, tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text(f"{PAIR[0]}\t{PAIR[1]}\nThe cat sat on the mat.\tIt was sunny.\n", encoding="utf-8")
    out = tmp_path / "atlas"
    result = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", model_dir, "-o", str(out),
                                 "--no-progress", "--check-limit", "2"])
    assert result.exit_code == 0, result.output
    assert "atlas of" in result.output and "top head per pattern" in result.output
    assert "causal checks" in result.output and "dims carry 80%" in result.output
    for name in ("scores.json", "scores.csv", "report.html", "explanations.json", "causal.json"):
        assert (out / name).is_file()


@pytest.mark.parametrize("args, message", [
    (["atlas", "--corpus", "/nonexistent/pairs.txt"], "no corpus file"),
    (["atlas", "--dataset", "nope"], "neither a dataset"),
    (["atlas", "--limit", "-3"], "--limit"),
    (["atlas", "--corpus", "a.txt", "--dataset", "default"], "not both"),
    (["explain", "--layer", "0", "--head", "0", "--pattern", "nope", "Hi there."], "unknown pattern"),
])
def test_cli_bad_input_is_one_line_and_exit_2(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_explain_command(model_dir):
    result = runner.invoke(app, ["explain", "--model", model_dir, "--layer", "0", "--head", "1", *PAIR])
    assert result.exit_code == 0, result.output
    assert "dimensions carrying 80% of the gap" in result.output
    result = runner.invoke(app, ["explain", "--model", model_dir, "--layer", "7", "--head", "1", *PAIR])
    assert result.exit_code == 2 and "layer 7 is out of range" in result.output
