"""Fine-tuning tasks: file / datasets parsing, bad input, built-in tasks from the shipped corpus, the data path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnlens import AttnlensError
from attnlens.finetuning.tasks import classification_metrics, load_task, rows_to_examples


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_csv_tsv_and_jsonl_give_the_same_pair_task(tmp_path):
    rows = [{"text": f"sentence {i} here", "text_b": f"other {i}", "label": "yes" if i % 2 else "no"}
            for i in range(20)]
    (tmp_path / "t.csv").write_text("text,text_b,label\n" + "".join(
        f"\"{r['text']}\",{r['text_b']},{r['label']}\n" for r in rows), encoding="utf-8")
    (tmp_path / "t.tsv").write_text("label\ttext\ttext_b\n" + "".join(
        f"{r['label']}\t{r['text']}\t{r['text_b']}\n" for r in rows), encoding="utf-8")
    tasks = [load_task(str(tmp_path / "t.csv")), load_task(str(tmp_path / "t.tsv")),
             load_task(_jsonl(tmp_path / "t.jsonl", rows))]
    for task in tasks:
        assert task.kind == "pair" and task.labels == ("no", "yes")
        assert len(task.train) == 18 and len(task.heldout) == 2  # a seeded 10% held out
        assert task.train == tasks[0].train and task.heldout == tasks[0].heldout
    assert {(e.a, e.b, e.label) for e in tasks[0].train + tasks[0].heldout} == {
        (r["text"], r["text_b"], r["label"]) for r in rows}


def test_token_task_from_jsonl_lists_and_csv_strings(tmp_path):
    rows = [{"tokens": ["the", "cat", "sat"], "tags": ["O", "B", "O"]}, {"tokens": "a dog", "tags": "O B"}]
    kind, examples = rows_to_examples(rows, "x")
    assert kind == "token"
    assert examples[0].a == ("the", "cat", "sat") and examples[1].label == ("O", "B")


def test_datasets_source_reads_the_same_rows_as_the_file(tmp_path):
    pytest.importorskip("datasets")
    rows = [{"text": f"text number {i}", "label": ["a", "b", "c"][i % 3]} for i in range(30)]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    held = _jsonl(tmp_path / "h.jsonl", rows[:6])
    from_file = load_task(path, heldout=held)
    from_datasets = load_task(f"datasets:json:{path}", heldout=f"datasets:json:{held}")
    assert from_datasets.kind == "sequence" and from_datasets.labels == ("a", "b", "c")
    assert from_datasets.train == from_file.train and from_datasets.heldout == from_file.heldout


@pytest.mark.parametrize("content, message", [
    ("", "no examples"),
    ("text,other\nhello,1\n", "missing column(s) label"),
    ("text,label\nhello,\n", "row 1: empty label"),
    ("text,label\n,a\n", "row 1: empty text"),
])
def test_bad_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(AttnlensError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_task(str(path))
    assert "\n" not in str(err.value)


def test_heldout_labels_must_match_the_training_labels(tmp_path):
    train = _jsonl(tmp_path / "train.jsonl", [{"text": "x y", "label": lab} for lab in "aabbc"])
    unknown = _jsonl(tmp_path / "unknown.jsonl", [{"text": "x", "label": lab} for lab in "abcd"])
    fewer = _jsonl(tmp_path / "fewer.jsonl", [{"text": "x", "label": lab} for lab in "ab"])
    with pytest.raises(AttnlensError, match="unknown label"):
        load_task(train, heldout=unknown)
    with pytest.raises(AttnlensError, match="label set differs between train and held-out: c"):
        load_task(train, heldout=fewer)
    tokens = _jsonl(tmp_path / "tok.jsonl", [{"tokens": ["a", "b"], "tags": ["x"]}])
    with pytest.raises(AttnlensError, match="2 tokens but 1 tags"):
        load_task(tokens)
    with pytest.raises(AttnlensError, match="neither a built-in task"):
        load_task(str(tmp_path / "missing.csv"))


def test_builtin_tasks_use_the_corpus_heldout_documents():
    from attnlens.corpus import SOURCES, is_heldout, load_documents

    source = load_task("source")
    assert source.kind == "sequence" and source.labels == SOURCES
    held_sentences = {s for src in SOURCES for d in load_documents(src, "heldout") for s in d}
    assert {ex.a for ex in source.heldout} == held_sentences
    assert {ex.label for ex in source.heldout} == set(SOURCES)

    order = load_task("order")
    assert order.kind == "pair" and order.labels == ("in_order", "swapped")
    docs = load_documents("default", "heldout")
    consecutive = {(a, b) for d in docs for a, b in zip(d, d[1:])}
    for ex in order.heldout:
        assert ((ex.a, ex.b) if ex.label == "in_order" else (ex.b, ex.a)) in consecutive
    share = np.mean([ex.label == "swapped" for ex in order.train])
    assert 0.45 < share < 0.55
    assert all(not is_heldout(d) for d in load_documents("default", "train"))

    boundary = load_task("boundary")
    assert boundary.kind == "token"
    first = load_documents("default", "heldout")[0]
    words = [w for s in first for w in s.split()]
    ex = boundary.heldout[0]
    assert len(ex.a) == len(ex.label) <= 32 and ex.label[0] == "start"
    assert all(w == w.lower() and w.replace("_", "").isalnum() for w in ex.a)
    assert sum(t == "start" for t in ex.label) >= 1 and len(words) >= len(ex.a)


def test_macro_f1_and_accuracy():
    m = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), 3)
    assert m["accuracy"] == 0.75
    assert m["macro_f1"] == pytest.approx((2 * 3 / (2 * 3 + 1) + 0.0) / 2)  # class 2 absent from both: not counted
