"""Fine-tuning tasks: labelled examples with a held-out part, from a file, from HF `datasets`, or built in.

A task is one of three kinds (KINDS): "sequence" (one text, one label), "pair" (text + text_b, one label)
and "token" (a list of words, one tag per word). Sources:

- a CSV / TSV / JSONL file with `text`, optional `text_b`, `label`; or `tokens` + `tags` (space-separated
  in CSV/TSV, lists or strings in JSONL) for a token task;
- `datasets:FORMAT:PATH` (e.g. `datasets:json:train.jsonl`): HF datasets' FORMAT builder over local files,
  same columns (pip install 'attnlens[finetune]');
- a built-in task (BUILTIN_TASKS) made from the shipped corpus with its own held-out documents
  (attnlens.corpus.load_documents(..., split="heldout")).

Without an explicit held-out source a file task holds out a seeded 10% of its rows.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..corpus import SOURCES, load_documents
from ..errors import AttnlensError
from ..pretraining.data import seed_for

KINDS = ("sequence", "pair", "token")
DATASETS_PREFIX = "datasets:"
FILE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".json": None}
HELDOUT_FRACTION = 0.1  # of a file task's rows, when no held-out source is given


@dataclass(frozen=True)
class Example:
    """One labelled input: `a` a text (or a tuple of words, token tasks), `b` the second text of a pair,
    `label` a class name (or a tuple of tags, one per word)."""

    a: str | tuple[str, ...]
    b: str | None
    label: str | tuple[str, ...]


@dataclass
class Task:
    """A task's examples and its class names (the order of the classifier's outputs)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    train: list[Example]
    heldout: list[Example]
    info: dict = field(default_factory=dict)

    def label_ids(self, examples: list[Example]) -> list:
        """Class ids of `examples` (token tasks: a list per example)."""
        index = {name: i for i, name in enumerate(self.labels)}
        if self.kind == "token":
            return [[index[t] for t in ex.label] for ex in examples]
        return [index[ex.label] for ex in examples]

    def majority_baseline(self) -> dict:
        """Always predict the most frequent training class: its held-out accuracy and macro-F1."""
        train = [t for ex in self.train for t in (ex.label if self.kind == "token" else (ex.label,))]
        held = [t for ex in self.heldout for t in (ex.label if self.kind == "token" else (ex.label,))]
        top = max(self.labels, key=train.count)
        index = {name: i for i, name in enumerate(self.labels)}
        truth = np.array([index[t] for t in held])
        return {"label": top, **classification_metrics(truth, np.full(len(truth), index[top]), len(self.labels))}


def classification_metrics(truth: np.ndarray, predicted: np.ndarray, num_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (mean over the classes present in `truth` or `predicted`) of class ids."""
    truth, predicted = np.asarray(truth), np.asarray(predicted)
    f1 = []
    for c in range(num_labels):
        tp = int(((truth == c) & (predicted == c)).sum())
        fp, fn = int(((truth != c) & (predicted == c)).sum()), int(((truth == c) & (predicted != c)).sum())
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float((truth == predicted).mean()) if len(truth) else 0.0,
            "macro_f1": float(np.mean(f1)) if f1 else 0.0}


# ---- file and datasets sources -----------------------------------------------------------
def _read_rows(spec: str) -> tuple[list[dict], str]:
    """Rows (dicts) of a CSV / TSV / JSONL file or a `datasets:FORMAT:PATH` source, and a name for it."""
    if spec.startswith(DATASETS_PREFIX):
        parts = spec[len(DATASETS_PREFIX):].split(":", 1)
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise AttnlensError(f"{spec}: write a datasets source as datasets:FORMAT:PATH (e.g. datasets:json:x.jsonl)")
        fmt, path = parts
        if not Path(path).expanduser().is_file():
            raise AttnlensError(f"{spec}: file {path} does not exist")
        try:
            import datasets  # noqa: PLC0415  (an optional extra: pip install 'attnlens[finetune]')
        except ImportError:
            raise AttnlensError("datasets: sources need the HF datasets package: "
                                "pip install 'attnlens[finetune]'") from None
        datasets.disable_progress_bars()
        try:
            ds = datasets.load_dataset(fmt, data_files=str(Path(path).expanduser()), split="train")
        except Exception as exc:  # noqa: BLE001  (datasets raises many kinds; the user needs one line)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise AttnlensError(f"{spec}: could not load with datasets ({first})") from None
        return [dict(row) for row in ds], spec
    path = Path(spec).expanduser()
    if not path.is_file():
        raise AttnlensError(f"task {spec!r} is neither a built-in task ({', '.join(BUILTIN_TASKS)}) nor a file")
    if path.suffix.lower() not in FILE_SUFFIXES:
        raise AttnlensError(f"{path}: unknown task file type {path.suffix!r} (use .csv, .tsv or .jsonl)")
    text = path.read_text(encoding="utf-8")
    delimiter = FILE_SUFFIXES[path.suffix.lower()]
    if delimiter is None:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError:
                    raise AttnlensError(f"{path}: line {n} is not valid JSON") from None
                if not isinstance(row, dict):
                    raise AttnlensError(f"{path}: line {n} is not a JSON object")
                rows.append(row)
        return rows, str(path)
    return list(csv.DictReader(text.splitlines(), delimiter=delimiter)), str(path)


def _words(value, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) for v in value):
        return tuple(str(v) for v in value)
    raise AttnlensError(f"{where}: expected a list of words or a space-separated string")


def _text(value, where: str, column: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
        raise AttnlensError(f"{where}: empty {column}")
    return str(value).strip()


def rows_to_examples(rows: list[dict], name: str) -> tuple[str, list[Example]]:
    """(kind, examples) of rows with text/[text_b]/label or tokens/tags columns; errors name the row."""
    if not rows:
        raise AttnlensError(f"{name}: no examples (empty file)")
    columns = set(rows[0])
    if {"tokens", "tags"} <= columns:
        kind = "token"
    elif {"text", "label"} <= columns:
        kind = "pair" if "text_b" in columns else "sequence"
    else:
        missing = sorted({"text", "label"} - columns) if "tokens" not in columns else ["tags"]
        raise AttnlensError(f"{name}: missing column(s) {', '.join(missing)} (need text + label, optionally "
                            f"text_b, or tokens + tags; found {', '.join(sorted(map(str, columns))) or 'none'})")
    examples = []
    for n, row in enumerate(rows, start=1):
        where = f"{name}: row {n}"
        if kind == "token":
            words, tags = _words(row.get("tokens"), where), _words(row.get("tags"), where)
            if not words:
                raise AttnlensError(f"{where}: empty tokens")
            if len(words) != len(tags):
                raise AttnlensError(f"{where}: {len(words)} tokens but {len(tags)} tags")
            examples.append(Example(words, None, tags))
        else:
            b = _text(row.get("text_b"), where, "text_b") if kind == "pair" else None
            examples.append(Example(_text(row.get("text"), where, "text"), b, _text(row.get("label"), where, "label")))
    return kind, examples


def _label_set(kind: str, examples: list[Example]) -> set[str]:
    return {t for ex in examples for t in (ex.label if kind == "token" else (ex.label,))}


def file_task(spec: str, heldout: str | None = None, seed: int = 0) -> Task:
    """A task from a file / datasets source; `heldout` another one, else a seeded 10% of the rows."""
    kind, train = rows_to_examples(*_read_rows(spec))
    labels = _label_set(kind, train)
    if heldout is not None:
        held_kind, held = rows_to_examples(*_read_rows(heldout))
        if held_kind != kind:
            raise AttnlensError(f"{heldout} is a {held_kind} task but {spec} is a {kind} task")
        held_labels = _label_set(kind, held)
        unknown = sorted(held_labels - labels)
        if unknown:
            raise AttnlensError(f"{heldout}: unknown label(s) {', '.join(unknown)} (not in the training labels)")
        if held_labels != labels:
            missing = ", ".join(sorted(labels - held_labels))
            raise AttnlensError(f"the label set differs between train and held-out: {missing} never occur(s) in "
                                f"{heldout}")
    else:
        if len(train) < 2:
            raise AttnlensError(f"{spec}: {len(train)} example(s); need at least 2 to hold some out (or pass a "
                                "held-out file)")
        order = np.random.default_rng(seed_for(seed, 13)).permutation(len(train))
        n_held = max(1, int(round(len(train) * HELDOUT_FRACTION)))
        held = [train[i] for i in sorted(order[:n_held])]
        train = [train[i] for i in sorted(order[n_held:])]
    return Task(spec, kind, tuple(sorted(labels)), train, held,
                {"source": spec, "heldout": heldout or f"seeded {HELDOUT_FRACTION:.0%} of the rows"})


# ---- built-in tasks from the shipped corpus ----------------------------------------------
ORDER_LABELS = ("in_order", "swapped")
BOUNDARY_LABELS = ("inside", "start")
BOUNDARY_WORDS = 32  # words per window of the boundary task
_PUNCT = re.compile(r"[^\w]+", re.UNICODE)


def _source_examples(split: str) -> list[Example]:
    return [Example(s, None, src) for src in SOURCES for doc in load_documents(src, split) for s in doc]


def _order_examples(split: str) -> list[Example]:
    """Consecutive sentences (A, B) of a document, swapped for a seeded half: is B the sentence after A?"""
    rng = np.random.default_rng(seed_for(17, split == "heldout"))  # fixed: the same examples whatever the run seed
    out = []
    for doc in load_documents("default", split):
        for first, second in zip(doc, doc[1:]):
            swapped = bool(rng.random() < 0.5)
            out.append(Example(second, first, ORDER_LABELS[1]) if swapped else Example(first, second, ORDER_LABELS[0]))
    return out


def _bare_words(sentence: str) -> list[str]:
    """The sentence's words, lower-cased, with punctuation removed (words of punctuation only dropped)."""
    return [w for w in (_PUNCT.sub("", word).lower() for word in sentence.split()) if w]


def _boundary_examples(split: str) -> list[Example]:
    """Windows of BOUNDARY_WORDS words of running text without punctuation or case: which words start a
    sentence (the corpus's own sentence split)."""
    out = []
    for doc in load_documents("default", split):
        words, tags = [], []
        for sentence in doc:
            bare = _bare_words(sentence)
            words += bare
            tags += [BOUNDARY_LABELS[1]] + [BOUNDARY_LABELS[0]] * (len(bare) - 1) if bare else []
        for start in range(0, len(words), BOUNDARY_WORDS):
            if len(words[start:start + BOUNDARY_WORDS]) >= 2:
                out.append(Example(tuple(words[start:start + BOUNDARY_WORDS]), None,
                                   tuple(tags[start:start + BOUNDARY_WORDS])))
    return out


@dataclass(frozen=True)
class BuiltinTask:
    """A registry entry: how to make a task's examples of one split of the shipped corpus."""

    name: str
    kind: str
    labels: tuple[str, ...]
    description: str
    examples: Callable[[str], list[Example]]


_REGISTRY = (
    BuiltinTask("source", "sequence", SOURCES, "which shipped source a sentence comes from "
                "(imbalanced: report macro-F1 and the majority baseline)", _source_examples),
    BuiltinTask("order", "pair", ORDER_LABELS, "sentence-order prediction: is B the sentence after A "
                "(in_order) or A the sentence after B (swapped)", _order_examples),
    BuiltinTask("boundary", "token", BOUNDARY_LABELS, f"which words start a sentence in {BOUNDARY_WORDS}-word "
                "windows of running text without punctuation or case", _boundary_examples),
)
BUILTIN_TASKS: dict[str, BuiltinTask] = {t.name: t for t in _REGISTRY}


def load_task(spec: str, heldout: str | None = None, seed: int = 0) -> Task:
    """A built-in task name, a CSV/TSV/JSONL file or a `datasets:FORMAT:PATH` source (see the module doc)."""
    if spec in BUILTIN_TASKS:
        if heldout is not None:
            raise AttnlensError(f"the built-in task {spec} has its own held-out split; leave --heldout out")
        t = BUILTIN_TASKS[spec]
        return Task(t.name, t.kind, t.labels, t.examples("train"), t.examples("heldout"),
                    {"builtin": t.name, "description": t.description,
                     "heldout": "the shipped corpus's held-out documents"})
    return file_task(spec, heldout, seed)
