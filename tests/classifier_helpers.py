"""Tiny fine-tuned classifiers (sequence, pair and token tasks), made in-process once per test session with
test_finetune_run's tiny BERT and task rows, for the server and web-app tests of fine-tuned models."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from test_finetune_run import save_tiny_bert, sentiment_rows, write_jsonl  # noqa: E402

GOOD = "<b>good</b>"  # a class name with markup: the page must show it as text
_MADE: dict[str, dict[str, Path]] = {}


def finetuned_classifiers(tmp_path_factory) -> dict[str, Path]:
    """{"base": the tiny BERT folder, "results": the folder holding the runs, "sequence" / "pair" / "token": run
    folders}. The sequence run learns whether a text contains "good" (classes GOOD and "plain") and the token run
    tags "good" G and other words O, so their predictions differ from input to input; the pair run is 4 steps."""
    from attnlens.finetuning import finetune

    key = str(tmp_path_factory.getbasetemp())
    if key in _MADE:
        return _MADE[key]
    root = tmp_path_factory.mktemp("classifiers")
    base = save_tiny_bert(root / "tiny-bert")
    results = root / "results"
    rows = [{**r, "label": GOOD if r["label"] == "good" else r["label"]} for r in sentiment_rows()]
    sequence = write_jsonl(root / "sequence.jsonl", rows)
    pair = write_jsonl(root / "pair.jsonl", [{**r, "text_b": "and then"} for r in rows])
    token = write_jsonl(root / "token.jsonl", [{"tokens": r["text"].split(),
                                                "tags": ["G" if w == "good" else "O" for w in r["text"].split()]}
                                               for r in rows])
    common = dict(batch_size=8, device="cpu", progress=False)
    runs = {
        "sequence": finetune(base, sequence, results / "sequence", heldout=sequence, steps=60, lr=2e-3,
                             eval_every=30, save_every=60, **common),
        "pair": finetune(base, pair, results / "pair", steps=4, save_every=4, **common),
        "token": finetune(base, token, results / "token", heldout=token, steps=60, lr=2e-3, eval_every=60,
                          save_every=60, **common),
    }
    _MADE[key] = {"base": base, "results": results, **runs}
    return _MADE[key]
