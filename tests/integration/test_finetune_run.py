"""Fine-tuning runs on tiny random encoders: the loop learns, resume after a kill is exact, checkpoints load
with transformers' AutoModelFor*Classification, predictions, and the CLI's bad-input errors."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pretraining import (
    assert_same_final_weights,
    cli,
    dies_after_checkpoint,
    final_weights,
    kill_after_checkpoint,
    one_torch_thread,
)

from conftest import default_tokenizer, tiny_config

WORDS = "the a store went bought fresh man dog cat ran to at of in on is was big small red house tree".split()


def save_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random 3-layer BERT (the default model's tokenizer) saved as a model folder."""
    from transformers import BertModel

    torch.manual_seed(seed)
    BertModel(tiny_config("bert")).save_pretrained(str(folder))
    default_tokenizer().save_pretrained(str(folder))
    return folder


def write_jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def sentiment_rows(n=32, seed=0):
    """Texts whose label is whether they contain 'good' (learnable by a tiny model)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 8))]
        if i % 2:
            words.insert(rng.randrange(len(words)), "good")
        rows.append({"text": " ".join(words), "label": "good" if i % 2 else "plain"})
    return rows


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_tiny_model_overfits_32_examples(tmp_path, tiny_bert):
    from attnlens.finetuning import finetune

    task = write_jsonl(tmp_path / "train.jsonl", sentiment_rows())
    run = finetune(tiny_bert, task, tmp_path / "run", heldout=task, steps=80, batch_size=8, lr=2e-3,
                   eval_every=40, save_every=80, device="cpu", progress=False)
    evals = [m for m in _metrics(run) if m["kind"] == "eval"]
    assert evals[-1]["step"] == 80 and evals[-1]["examples"] == 32
    assert evals[-1]["accuracy"] == 1.0, evals  # the loop really learns: the training set is fitted
    record = json.loads((run / "run.json").read_text())
    assert record["baseline"]["majority"]["accuracy"] == 0.5 and record["task"]["labels"] == ["good", "plain"]


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, tiny_bert):
    from attnlens.finetuning import finetune
    from attnlens.finetuning.tasks import load_task
    from attnlens.finetuning.trainer import FinetuneTrainer

    task = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(40, seed=1))
    settings = dict(steps=10, batch_size=8, lr=1e-3, eval_every=2, save_every=4, seed=5, device="cpu",
                    progress=False)  # the tiny config has dropout 0.1: only a restored RNG repeats it
    finetune(tiny_bert, task, tmp_path / "straight", **settings)
    with dies_after_checkpoint(8):
        finetune(tiny_bert, task, tmp_path / "killed", **settings)
    before = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    torch.manual_seed(999)  # whatever the global RNG holds now must not matter
    trainer = FinetuneTrainer(load_task(task, seed=5), tmp_path / "killed", resume=True, device="cpu", progress=False)
    assert trainer.step == 8  # continues at the checkpoint, not from step 0
    trainer.train()
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    after = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert after[:len(before)] == before
    assert [(m["step"], m["kind"]) for m in _metrics(tmp_path / "killed")] == \
        [(m["step"], m["kind"]) for m in _metrics(tmp_path / "straight")]


def test_sigkill_mid_run_then_cli_resume_is_exact(tmp_path, tiny_bert):
    task = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(40, seed=2))
    args = ["--model", str(tiny_bert), "--task", task, "--steps", "30", "--batch-size", "8", "--lr", "1e-3",
            "--save-every", "4", "--eval-every", "1000", "--device", "cpu", "--no-progress"]
    with one_torch_thread():
        cli("finetune", "--out", str(tmp_path / "straight"), *args)
        _kill_and_resume(tmp_path / "killed", args)
    assert_same_final_weights(tmp_path / "straight", tmp_path / "killed")


def _kill_and_resume(killed: Path, args):
    saved = kill_after_checkpoint("finetune", killed, args, timeout=300)
    assert 12 <= saved[-1][0] < 30, "the run was not killed mid-way"
    cli("finetune", "--out", str(killed), "--resume", "--no-progress")


def test_checkpoints_load_with_auto_classes_and_classify_agrees(tmp_path, tiny_bert):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from attnlens import classify
    from attnlens.pretraining.checkpoint import latest_checkpoint

    task = write_jsonl(tmp_path / "pair.jsonl", [{**r, "text_b": "and then"} for r in sentiment_rows()])
    run = tmp_path / "pair"
    cli("finetune", "--model", str(tiny_bert), "--task", task, "--out", str(run), "--steps", "3", "--batch-size",
        "4", "--device", "cpu", "--no-progress")
    for folder in (run, latest_checkpoint(run)):
        model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
        assert model.config.id2label == {0: "good", 1: "plain"}
    tok = default_tokenizer()
    enc = tok("a good dog", "and then", return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**enc).logits[0], -1)
    result = classify("a good dog", "and then", model=run)
    assert result.label == model.config.id2label[int(probs.argmax())]
    assert result.probabilities == pytest.approx({"good": float(probs[0]), "plain": float(probs[1])}, abs=1e-5)
    out = cli("predict", "classify", "a good dog", "--text-b", "and then", "--model", str(run)).output
    assert out.splitlines()[0] == result.label

    tags = write_jsonl(tmp_path / "tags.jsonl", [{"tokens": r["text"].split(),
                                                  "tags": ["G" if w == "good" else "O" for w in r["text"].split()]}
                                                 for r in sentiment_rows()])
    run = tmp_path / "tags"
    cli("finetune", "--model", str(tiny_bert), "--task", tags, "--out", str(run), "--steps", "3", "--batch-size",
        "4", "--device", "cpu", "--no-progress")
    model = AutoModelForTokenClassification.from_pretrained(str(run))
    assert model.config.id2label == {0: "G", 1: "O"}
    tagged = classify("a strawberries good dog", model=run)
    assert tagged.label is None and tagged.words == ["a", "strawberries", "good", "dog"] and len(tagged.tags) == 4
    assert set(tagged.tags) <= {"G", "O"}


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, tiny_bert):
    good = write_jsonl(tmp_path / "good.jsonl", sentiment_rows())
    bad = {
        "empty": ("", None),
        "missing": ('{"text": "a b"}\n', None),
        "unknown": (None, write_jsonl(tmp_path / "h1.jsonl", [{"text": "x", "label": "good"},
                                                              {"text": "y", "label": "other"}])),
        "differs": (None, write_jsonl(tmp_path / "h2.jsonl", [{"text": "x", "label": "good"}])),
    }
    expected = {"empty": "no examples", "missing": "missing column(s) label", "unknown": "unknown label(s) other",
                "differs": "label set differs"}
    for name, (content, heldout) in bad.items():
        task = good
        if content is not None:
            task = str(tmp_path / f"{name}.jsonl")
            Path(task).write_text(content, encoding="utf-8")
        extra = ["--heldout", heldout] if heldout else []
        result = cli("finetune", "--model", str(tiny_bert), "--task", task, *extra, "--out",
                     str(tmp_path / f"run-{name}"), "--steps", "1", "--device", "cpu", check=False)
        assert result.returncode == 2, (name, result.output)
        assert expected[name] in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for args, message in [
        (["finetune", "--task", good, "--out", str(tmp_path / "x"), "--steps", "2", "--epochs", "1"], "not both"),
        (["finetune", "--out", str(tmp_path / "y")], "--task is required"),
        (["finetune", "--out", str(tmp_path / "z"), "--resume"], "cannot resume"),
        (["predict", "classify", "text", "--model", str(tiny_bert)], "not a fine-tuned classifier"),
    ]:
        result = cli(*args, check=False)
        assert result.returncode == 2 and message in result.output, result.output
