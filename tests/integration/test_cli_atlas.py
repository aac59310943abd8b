"""`attnlens atlas` and `attnlens explain` from the command line (a tiny model saved to disk)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from attnlens.cli import commands  # noqa: F401  (registers the commands)
from attnlens.cli.app import app
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


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_python_atlas_save_writes_the_same_folder_as_the_command(model_dir, tmp_path):
    import json

    from attnlens import atlas
    from attnlens.analysis.pipeline import run_checks

    corpus = tmp_path / "pairs.tsv"
    corpus.write_text(f"{PAIR[0]}\t{PAIR[1]}\nThe cat sat on the mat.\tIt was sunny.\nOne more sentence.\n"
                      "My brother plays the guitar.\tHe practices every evening.\n", encoding="utf-8")
    cli_out, py_out = tmp_path / "cli", tmp_path / "py"
    result = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", model_dir, "-o", str(cli_out),
                                 "--no-progress", "--check-limit", "2"])
    assert result.exit_code == 0, result.output

    at = atlas(str(corpus), model=model_dir, progress=False)
    assert at.corpus_name == str(corpus)  # no patching needed
    report = at.save(py_out, check_limit=2)
    assert report == py_out / "report.html"

    assert _files(cli_out) == _files(py_out)
    assert {"scores.json", "scores.csv", "report.html", "explanations.json", "causal.json", "labels.png"} <= set(
        _files(py_out))
    assert any(name.startswith("views/") for name in _files(py_out))
    for name in ("scores.json", "explanations.json", "causal.json"):
        assert json.loads((cli_out / name).read_text()) == json.loads((py_out / name).read_text()), name
    for name in _files(py_out):  # every text file is the same, byte for byte (the pictures carry dates)
        if name.endswith((".json", ".csv", ".html")):
            assert (cli_out / name).read_bytes() == (py_out / name).read_bytes(), name
    causal = json.loads((py_out / "causal.json").read_text())
    assert causal["rows"] and set(causal["rows"][0]) >= {"layer", "head", "pattern", "baseline", "segments_equal"}

    # the command prints the atlas summary and the checks' text, nothing of its own but the last line
    checks = run_checks(at, check_limit=2)
    assert result.output == f"{at.summary()}\n{checks.text()}\n\nwrote {cli_out / 'report.html'}\n"


def test_atlas_command_without_checks(model_dir, tmp_path):
    corpus = tmp_path / "pairs.tsv"
    corpus.write_text(f"{PAIR[0]}\t{PAIR[1]}\n", encoding="utf-8")
    out = tmp_path / "atlas"
    result = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", model_dir, "-o", str(out),
                                 "--no-progress", "--no-explain", "--no-causal"])
    assert result.exit_code == 0, result.output
    assert "explanations" not in result.output and "causal checks" not in result.output
    assert not (out / "explanations.json").exists() and not (out / "causal.json").exists()
    assert (out / "report.html").is_file() and (out / "views").is_dir()
    result = runner.invoke(app, ["atlas", "--corpus", str(corpus), "--model", model_dir, "--check-limit", "0"])
    assert result.exit_code == 2 and "--check-limit must be at least 1" in result.output
