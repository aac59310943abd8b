"""Head importance in `attnlens diff`: a model against itself changes nothing, a head whose output columns are
zeroed loses its importance and the reported numbers are `head_importance` of each model run alone; the
objective both models give (masked_embedding, or two classifiers' own task loss); the report, the CLI."""

from __future__ import annotations

import copy
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pretraining import cli

from attnlens import AttnlensError
from conftest import PAIR, default_tokenizer, tiny_config, tiny_model

PAIRS = [PAIR, ("The cat sat on the mat.", None), ("Short one.", "A somewhat longer second sentence here."),
         ("Padding matters when lengths differ a lot in one batch of inputs.", None)]
PEAKED = dict(initializer_range=0.3)


def _zeroed(lm, layer: int, head: int):
    """A copy of the model with head's W_O columns (its share of the attention output projection) zeroed."""
    from attnlens.capturing import LoadedModel

    model = copy.deepcopy(lm.model)
    part = slice(head * lm.d_head, (head + 1) * lm.d_head)
    with torch.no_grad():
        model.encoder.layer[layer].attention.output.dense.weight[:, part] = 0
    return LoadedModel(model, lm.tokenizer, name="zeroed")


def _classifier(seed: int, labels=("neg", "pos")):
    from transformers import BertForSequenceClassification

    from attnlens.capturing import LoadedModel

    torch.manual_seed(seed)
    config = tiny_config("bert", num_labels=len(labels), id2label=dict(enumerate(labels)),
                         label2id={n: i for i, n in enumerate(labels)}, **PEAKED)
    return LoadedModel(BertForSequenceClassification(config).eval(), default_tokenizer(), name=f"clf-{seed}")


def test_a_model_against_itself_changes_no_importance():
    from attnlens.analysis.diff import diff

    lm = tiny_model("bert", **PEAKED)
    imp = diff(lm, lm, PAIRS, limit=None).importance
    assert imp.objective == "masked_embedding" and imp.a.inputs == len(PAIRS)
    assert (imp.a.scores > 0).all()  # every head has an importance, and it is the same in B
    assert np.all(imp.change == 0) and np.all(imp.layer_change == 0) and np.all(imp.rank_change == 0)
    assert imp.movers() == []


def test_a_zeroed_head_loses_its_importance_and_the_numbers_are_head_importance_of_each_model():
    from attnlens import head_importance
    from attnlens.analysis.diff import diff

    lm = tiny_model("bert", **PEAKED)
    zeroed = _zeroed(lm, 1, 2)
    result = diff(lm, zeroed, PAIRS, limit=None, batch_size=2)
    imp = result.importance
    for model, got in ((lm, imp.a), (zeroed, imp.b)):  # the same inputs, objective and masks as run alone
        alone = head_importance(PAIRS, model, "masked_embedding", "gradient", batch_size=2)
        np.testing.assert_allclose(got.scores, alone.scores, rtol=1e-9, atol=0)
        np.testing.assert_allclose(got.raw, alone.raw, rtol=1e-9, atol=0)
    assert imp.a.scores[1, 2] > 0.1 and imp.b.scores[1, 2] == 0  # no output: no gradient through its gate
    assert imp.change[1, 2] == pytest.approx(-imp.a.scores[1, 2])
    assert imp.ranks(imp.b)[1, 2] == 12 and imp.ranks(imp.a)[1, 2] < 12  # the least important head of all
    # per-layer normalisation lifts the layer's other heads, so they may move further; the head is listed
    moved = {(m["layer"], m["head"]): m for m in imp.movers(12)}
    assert moved[1, 2]["rank_b"] == 12 and moved[1, 2]["rank_change"] == imp.ranks(imp.a)[1, 2] - 12
    assert imp.layer_change[1] == pytest.approx(np.abs(imp.change[1]).mean()) and imp.layer_change[1] > 0
    assert f"L1H2 {imp.ranks(imp.a)[1, 2]}->12" in result.summary().splitlines()[-1]


def test_two_classifiers_with_the_same_labels_compare_their_own_task_loss(tmp_path):
    from attnlens import head_importance
    from attnlens.analysis.diff import diff

    a, b = _classifier(0), _classifier(1)
    imp = diff(a, b, PAIRS, limit=None).importance
    assert imp.objective == "classification"
    np.testing.assert_allclose(imp.b.scores, head_importance(PAIRS, b, "classification", "gradient").scores,
                               rtol=1e-9)
    # saved folders (loaded without their heads for the attention) are recognised from their config
    for lm, name in ((a, "a"), (b, "b")):
        lm.model.save_pretrained(str(tmp_path / name))
        lm.tokenizer.save_pretrained(str(tmp_path / name))
    from_files = diff(str(tmp_path / "a"), str(tmp_path / "b"), PAIRS, limit=None).importance
    assert from_files.objective == "classification"
    np.testing.assert_allclose(from_files.a.scores, imp.a.scores, rtol=1e-5, atol=1e-7)
    # other labels, or a classifier against its encoder: the objective both give
    assert diff(a, _classifier(2, ("x", "y", "z")), PAIRS, limit=None).importance.objective == "masked_embedding"
    encoder = diff(a, _as_encoder(a), PAIRS, limit=None).importance
    assert encoder.objective == "masked_embedding" and np.all(encoder.change == 0)


def _as_encoder(lm):
    from attnlens.capturing import LoadedModel

    return LoadedModel(lm.model.base_model, lm.tokenizer, name="encoder")


def test_choosing_or_turning_off_the_objective():
    from attnlens.analysis.diff import diff

    lm = tiny_model("bert")
    off = diff(lm, lm, PAIRS, limit=None, importance=None)
    assert off.importance is None and off.to_dict()["importance"] is None and "importance" not in off.summary()
    with pytest.raises(AttnlensError, match="unknown objective"):
        diff(lm, lm, PAIRS, importance="taylor")
    with pytest.raises(AttnlensError, match="masked-LM head"):  # named explicitly: an error, not a note
        diff(lm, lm, PAIRS, limit=None, importance="mlm")


def test_report_files_carry_the_importance(tmp_path):
    from attnlens.analysis.diff import diff, write_diff

    lm = tiny_model("bert", **PEAKED)
    result = diff(lm, _zeroed(lm, 2, 0), PAIRS + [("<b>bold</b> & more", None)], limit=None)
    names = {p.name for p in write_diff(result, tmp_path)}
    assert {"diff.json", "diff.csv", "report.html", "diff.png", "diff.svg"} <= names
    imp = result.importance
    data = json.loads((tmp_path / "diff.json").read_text())["importance"]
    assert data["objective"] == "masked_embedding" and data["change"][2][0] == pytest.approx(imp.change[2, 0])
    assert data["layers"] == pytest.approx(imp.layer_change.tolist(), abs=1e-6)
    assert data["movers"] == imp.movers() and len(data["movers"]) == 5
    rows = list(csv.DictReader((tmp_path / "diff.csv").open()))
    assert len(rows) == 12
    for row in rows:
        l, h = int(row["layer"]), int(row["head"])
        assert float(row["importance_a"]) == pytest.approx(imp.a.scores[l, h], abs=1e-6)
        assert float(row["importance_change"]) == pytest.approx(imp.change[l, h], abs=1e-6)
        assert int(row["rank_a"]) - int(row["rank_b"]) == int(row["rank_change"]) == imp.rank_change[l, h]
    page = (tmp_path / "report.html").read_text()
    assert "Importance rank moved most" in page and "masked_embedding" in page and "<b>bold" not in page


def test_cli_diff_writes_the_importance_columns(tmp_path, default_model):
    from attnlens import head_importance
    from attnlens.analysis.run import resolve_pairs
    from attnlens.capturing import default_model_path

    path = str(default_model_path())
    out = cli("diff", path, path, "--limit", "8", "-o", str(tmp_path / "same"), "--no-progress").output
    assert "head importance (masked_embedding, gradient" in out and "mean |change| 0.0000" in out
    rows = list(csv.DictReader((tmp_path / "same" / "diff.csv").open()))
    assert len(rows) == 72 and all(float(r["importance_change"]) == 0 and r["rank_change"] == "0" for r in rows)
    # the real default model: the same numbers as `head_importance` over the diff's 8 inputs
    alone = head_importance(resolve_pairs(None, 8)[0], default_model, "masked_embedding", "gradient")
    got = np.array([float(r["importance_a"]) for r in rows]).reshape(6, 12)
    np.testing.assert_allclose(got, alone.scores, atol=2e-6)
    cli("diff", path, path, "--limit", "4", "-o", str(tmp_path / "off"), "--no-importance", "--no-progress")
    header = (tmp_path / "off" / "diff.csv").read_text().splitlines()[0]
    assert "importance" not in header
    assert json.loads((tmp_path / "off" / "diff.json").read_text())["importance"] is None
    bad = cli("diff", path, path, "--limit", "4", "-o", str(tmp_path / "bad"), "--importance-objective", "nsp",
              "--no-progress", check=False)
    assert bad.returncode == 2 and "next-sentence head" in bad.output and "Traceback" not in bad.output
