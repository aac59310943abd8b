"""`attnlens diff`: a model against itself is exactly 0, a copy with one changed head differs in that head only,
two different models differ on every head, the distance equals one computed by hand; the report and the CLI."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pretraining import cli

from conftest import PAIR, tiny_model

PAIRS = [PAIR, ("The cat sat on the mat.", None), ("Short one.", "A somewhat longer second sentence here."),
         ("Padding matters when lengths differ a lot in one batch of inputs.", None)]


def test_diff_of_a_model_with_itself_is_exactly_zero():
    from attnlens.analysis.diff import diff

    lm = tiny_model("bert")
    result = diff(lm, lm, PAIRS, limit=None)
    assert result.tv.shape == (3, 4) and np.all(result.tv == 0.0)
    assert result.queries == sum(len(lm.tokenizer(a, b)["input_ids"]) for a, b in PAIRS)
    assert all(c["change"] in ("kept", "") for c in result.label_changes())
    assert all(np.all(np.nan_to_num(v) == 0) for v in result.score_change.values())


def test_a_changed_head_differs_alone_and_the_distance_matches_a_hand_computation():
    from attnlens import capture
    from attnlens.analysis.diff import diff
    from attnlens.capturing import LoadedModel

    lm = tiny_model("bert")
    model = copy.deepcopy(lm.model)
    d = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():  # change head 2 of the last layer only: its query rows
        model.encoder.layer[2].attention.self.query.weight[2 * d:3 * d] += torch.randn(d, model.config.hidden_size)
    changed = LoadedModel(model, lm.tokenizer, name="changed")
    result = diff(lm, changed, PAIRS, limit=None, batch_size=2)
    assert result.tv[2, 2] > 0.01
    mask = np.ones_like(result.tv, dtype=bool)
    mask[2, 2] = False
    assert np.all(result.tv[mask] == 0.0), result.tv  # earlier layers and the other heads are untouched
    assert result.layer_tv[2] > 0 and result.layer_tv[0] == result.layer_tv[1] == 0
    # by hand: each input alone, 0.5 * sum |a - b| per query row, averaged over all rows
    rows = []
    for a, b in PAIRS:
        x, y = capture(a, b, model=lm).attentions[2, 2], capture(a, b, model=changed).attentions[2, 2]  # [T, T]
        rows += list(0.5 * np.abs(x - y).sum(-1))
    assert result.tv[2, 2] == pytest.approx(np.mean(rows), rel=1e-5)


def test_two_different_models_differ_on_every_head_and_the_report_is_written(tmp_path):
    from attnlens.analysis.diff import diff, write_diff

    a, b = tiny_model("bert", seed=0), tiny_model("bert", seed=1)
    result = diff(a, b, PAIRS + [("<script>alert(1)</script> text", None)], limit=None)
    assert np.all(result.tv > 0)
    paths = write_diff(result, tmp_path)
    names = {p.name for p in paths}
    assert {"diff.json", "diff.csv", "report.html", "diff.png", "diff.svg"} <= names
    data = json.loads((tmp_path / "diff.json").read_text())
    assert data["tv"]["layers"] == pytest.approx(result.layer_tv.tolist(), abs=1e-6)
    assert len((tmp_path / "diff.csv").read_text().splitlines()) == 1 + 3 * 4
    page = (tmp_path / "report.html").read_text()
    assert "Content-Security-Policy" in page and "<script>" not in page


def test_models_with_other_shapes_or_tokenizers_are_refused():
    from attnlens import AttnlensError
    from attnlens.analysis.diff import diff

    with pytest.raises(AttnlensError, match="architectures differ"):
        diff(tiny_model("bert"), tiny_model("distilbert"), PAIRS)


def test_cli_diff_of_the_default_model_with_itself(tmp_path, default_model):
    result = cli("diff", "sentence-transformers/all-MiniLM-L6-v2-missing", "x", "-o", str(tmp_path / "bad"),
                 check=False)
    assert result.returncode == 2 and len(result.output.strip().splitlines()) == 1
    from attnlens.capturing import default_model_path

    path = str(default_model_path())
    out = cli("diff", path, path, "--limit", "8", "-o", str(tmp_path / "same"), "--no-progress").output
    assert "mean total-variation distance 0.0000" in out
    data = json.loads((tmp_path / "same" / "diff.json").read_text())
    assert data["layers"] == 6 and data["heads"] == 12 and data["inputs"] == 8
    assert all(v == 0 for row in data["tv"]["heads"] for v in row)
