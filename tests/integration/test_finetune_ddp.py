"""`attnlens finetune` under torchrun (2 processes, gloo on the CPU) trains like one process: the same final
weights (encoder and the fresh classification head) and the same held-out metrics along the way."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_finetune_run import sentiment_rows, write_jsonl
from test_pretraining import assert_two_processes_train_like_one

from attnlens.pretraining.predict import shipped_checkpoint


def token_rows(n=32):
    """Token task rows: tag every 'good' word, as a tiny model can learn."""
    return [{"tokens": row["text"].split(), "tags": ["hit" if w == "good" else "o" for w in row["text"].split()]}
            for row in sentiment_rows(n)]


def _evals(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "minutes"} for r in lines if r["kind"] == "eval"]


@pytest.mark.parametrize("kind", ["sequence", "token"])
def test_two_process_finetuning_equals_one_process(tmp_path, kind):
    # the shipped checkpoint has dropout 0, so a process's half of the batch meets no RNG of its own. lr 1e-4:
    # the key biases' gradient is exactly 0 in exact arithmetic (softmax ignores a shift shared by a row), so
    # AdamW turns its rounding noise into steps of ~0.1 lr in either run; at lr 1e-3 that noise alone (4e-5) exceeds
    # the tolerance, while every other weight agrees to 1e-7 and moves by ~4 lr over the 6 steps
    rows = sentiment_rows(32) if kind == "sequence" else token_rows(32)
    task = write_jsonl(tmp_path / "task.jsonl", rows)
    args = ["--model", str(shipped_checkpoint()), "--task", task, "--heldout", task, "--steps", "6",
            "--batch-size", "8", "--lr", "1e-4", "--max-length", "24", "--eval-every", "3", "--save-every", "3",
            "--seed", "4", "--device", "cpu", "--no-progress"]
    assert_two_processes_train_like_one(tmp_path, args, steps=6, command="finetune")
    one, two = _evals(tmp_path / "one"), _evals(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [3, 6]
    for a, b in zip(one, two, strict=True):  # the held-out evaluation runs on the main process's whole model
        assert a["accuracy"] == b["accuracy"] and a["macro_f1"] == b["macro_f1"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    # the run folder of the 2-process run loads as a classifier, as the 1-process one does
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    cls = AutoModelForSequenceClassification if kind == "sequence" else AutoModelForTokenClassification
    assert set(cls.from_pretrained(str(tmp_path / "two")).config.id2label.values()) == (
        {"good", "plain"} if kind == "sequence" else {"hit", "o"})
