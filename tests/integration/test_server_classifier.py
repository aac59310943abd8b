"""Fine-tuned classifiers in the web app's API: `serve --model RUN_DIR` loads the head, /api/models describes
the task kind and classes, every capture carries the prediction of its own forward (equal to
`attnlens.classify`, also in a padded batch of the server's dynamic batching), /api/results lists
fine-tuning runs with their scores, and a classifier folder that cannot load is a one-line error."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from attnlens import classify
from attnlens.errors import AttnlensError
from attnlens.pretraining.checkpoint import latest_checkpoint
from attnlens.server import Limits, create_app
from attnlens.server.batching import CaptureBatcher
from attnlens.server.models import ServedModel, load_served_model
from classifier_helpers import GOOD, finetuned_classifiers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pretraining import cli
from test_server_batching import INPUTS, batched_together

TEXTS = [("a good dog", None), ("the man went to the big red house", None), ("good", None),
         ("the cat ran to the tree and the dog ran to the house of the man", None)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return finetuned_classifiers(tmp_path_factory)


@pytest.fixture(scope="module")
def client(runs):
    models = [str(runs["sequence"]), str(latest_checkpoint(runs["pair"])), str(runs["token"]), str(runs["base"])]
    app = create_app(models, results_dir=runs["results"], limits=Limits(max_chars=300, max_tokens=60))
    with TestClient(app) as c:
        yield c


def test_a_checkpoint_copied_away_from_its_run_keeps_its_task_kind(runs, tmp_path):
    """The kind is in the checkpoint's own config.json, so a copy without the run's run.json is still a pair model."""
    from attnlens.finetuning.describe import classifier_info

    copied = shutil.copytree(latest_checkpoint(runs["pair"]), tmp_path / "elsewhere" / "pair-model")
    assert not (copied.parent / "run.json").exists() and not (copied.parent.parent / "run.json").exists()
    info = classifier_info(load_served_model(str(copied)))
    assert info == {"kind": "pair", "labels": [GOOD, "plain"]}


def assert_same_as_classify(prediction: dict, text_a, text_b, run) -> None:
    expected = classify(text_a, text_b, model=run)
    assert prediction["kind"] == "sequence" and prediction["label"] == expected.label
    assert list(prediction["probabilities"]) == list(expected.probabilities)
    assert prediction["probabilities"] == pytest.approx(expected.probabilities, abs=1e-5, rel=0)


def test_models_describe_classifiers_with_kind_and_classes(client, runs):
    models = {m["name"]: m for m in client.get("/api/models").json()}
    assert models[str(runs["sequence"])]["classifier"] == {"kind": "sequence", "labels": [GOOD, "plain"]}
    pair = models[str(latest_checkpoint(runs["pair"]))]  # a checkpoint folder: the kind from its run's run.json
    assert pair["classifier"] == {"kind": "pair", "labels": [GOOD, "plain"]}
    assert models[str(runs["token"])]["classifier"] == {"kind": "token", "labels": ["G", "O"]}
    plain = models[str(runs["base"])]
    assert "classifier" not in plain and plain["mlm"] is False and plain["layers"] == 3


def test_capture_carries_the_prediction_of_classify(client, runs):
    probabilities = []
    for text_a, text_b in TEXTS:
        r = client.post("/api/capture", json={"model": str(runs["sequence"]), "text_a": text_a, "text_b": text_b})
        assert r.status_code == 200, r.text
        prediction = r.json()["meta"]["prediction"]
        assert_same_as_classify(prediction, text_a, text_b, runs["sequence"])
        assert client.get(f"/api/captures/{r.json()['id']}/meta").json()["prediction"] == prediction
        probabilities.append(prediction["probabilities"][GOOD])
    assert probabilities[0] - probabilities[1] > 0.5, probabilities  # it learned: the prediction follows the input
    pair = str(latest_checkpoint(runs["pair"]))
    r = client.post("/api/capture", json={"model": pair, "text_a": "a good dog", "text_b": "and then"})
    assert_same_as_classify(r.json()["meta"]["prediction"], "a good dog", "and then", runs["pair"])
    plain = client.post("/api/capture", json={"model": str(runs["base"]), "text_a": "a good dog"}).json()
    assert "prediction" not in plain["meta"]


def test_token_classifier_tags_each_word_as_classify(client, runs):
    text = "a strawberries good dog, good"
    meta = client.post("/api/capture", json={"model": str(runs["token"]), "text_a": text}).json()["meta"]
    prediction, expected = meta["prediction"], classify(text, model=runs["token"])
    assert prediction["kind"] == "token" and prediction["words"] == expected.words == text.split()
    assert prediction["tags"] == expected.tags and expected.tags[:3] == ["O", "O", "G"]  # it learned "good"
    tokens = prediction["tokens"]  # one label per token of the capture, none on [CLS] / [SEP]
    assert len(tokens) == len(meta["tokens"]) and tokens[0] is None and tokens[-1] is None
    assert all(t in ("G", "O") for t in tokens[1:-1])
    r = client.post("/api/capture", json={"model": str(runs["token"]), "text_a": text, "text_b": "more"})
    assert r.status_code == 200 and "tags one text" in r.json()["meta"]["prediction"]["error"]


def test_prediction_through_dynamic_batching_equals_classify(runs):
    lm = load_served_model(str(runs["sequence"]))
    batcher = CaptureBatcher(ServedModel("seq", lm), max_tokens=60, max_wait_s=0.05, max_inputs=8)
    try:
        caps = batched_together(batcher, INPUTS)
    finally:
        batcher.close()
    assert max(batcher.batch_sizes) == len(INPUTS) - 1  # the rest ran as one padded batch of different lengths
    assert len({c.num_tokens for c in caps}) > 3
    served = ServedModel("seq", lm)
    for cap, (text_a, text_b) in zip(caps, INPUTS):
        assert cap.logits.shape == (2,)
        assert_same_as_classify(served.prediction(cap), text_a, text_b, runs["sequence"])


def test_results_list_finetuning_runs_with_scores(client, runs):
    found = {r["path"]: r for r in client.get("/api/results").json()["runs"]}
    assert set(found) == {"sequence", "pair", "token"}
    run = found["sequence"]["finetune"]
    evals = [json.loads(line) for line in (runs["sequence"] / "metrics.jsonl").read_text().splitlines()]
    last = [m for m in evals if m["kind"] == "eval"][-1]
    assert run["task"] == "sequence.jsonl" and run["kind"] == "sequence" and run["labels"] == [GOOD, "plain"]
    assert run["steps"] == run["planned_steps"] == 60
    assert run["heldout"] == {"step": 60, "accuracy": last["accuracy"], "macro_f1": last["macro_f1"]}
    assert run["heldout"]["accuracy"] == 1.0 and run["baseline"]["accuracy"] == 0.5
    assert found["token"]["finetune"]["kind"] == "token" and found["pair"]["finetune"]["kind"] == "pair"
    assert str(runs["results"]) not in json.dumps(found)  # no absolute paths


def test_classifier_folder_that_cannot_load_is_one_line(tmp_path, runs):
    bad = tmp_path / "broken-run"
    shutil.copytree(latest_checkpoint(runs["sequence"]), bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(AttnlensError) as err:
        create_app([str(bad)])
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    result = cli("serve", "--model", str(bad), "--port", "0", check=False)
    assert result.returncode == 2 and len(result.output.strip().splitlines()) == 1, result.output
