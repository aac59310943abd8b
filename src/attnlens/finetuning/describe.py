"""A fine-tuned classifier as the web app shows it: what it is (task kind, class names) and what it predicts
for a capture, from the logits the capture's own forward kept (Capture.logits: the recorded pass runs the
classifier's head too, see capturing.attention.forward_attention).

The prediction is predict.py's `classification_of` on those logits, so it equals `classify` on the same text.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..capturing import Capture, LoadedModel
from ..errors import AttnlensError
from ..pretraining.trainer import RUN_FILE
from .predict import TASK_KIND_KEY, classification_of, classifier_encoding, classify, is_token_classifier


def run_task_kind(folder: str | Path) -> str | None:
    """The task kind ("sequence", "pair", "token") in the run.json of a fine-tuning run folder, or of the run
    that holds the checkpoint folder `folder` (RUN_DIR/checkpoints/step-N); None when there is none."""
    path = Path(folder).expanduser()
    for candidate in (path, path.parent.parent):
        try:
            record = json.loads((candidate / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        task = record.get("task") if isinstance(record, dict) else None
        if isinstance(task, dict) and task.get("kind") in ("sequence", "pair", "token"):
            return task["kind"]
    return None


def classifier_info(lm: LoadedModel) -> dict | None:
    """{"kind", "labels"} of a fine-tuned classifier (labels in class-id order), None for any other model.
    The kind comes from the model's config (attnlens's trainer writes it there), else from the run's run.json
    when `lm.name` is a run or checkpoint folder (runs of earlier versions), else from its head."""
    if not lm.has_classifier_head:
        return None
    id2label = {int(k): str(v) for k, v in lm.model.config.id2label.items()}
    written = getattr(lm.model.config, TASK_KIND_KEY, None)
    kind = "token" if is_token_classifier(lm) else (
        written if written in ("sequence", "pair") else run_task_kind(lm.name) or "sequence")
    return {"kind": kind, "labels": [id2label[i] for i in sorted(id2label)]}


def capture_prediction(lm: LoadedModel, cap: Capture) -> dict | None:
    """A classifier's prediction for the input of `cap` (None when the capture kept no logits: not a classifier).

    {"kind": "sequence", "label", "probabilities": {class: p}} or {"kind": "token", "words", "tags", "tokens":
    a label per token of the capture (None for special tokens)}; {"kind", "error"} when the classifier cannot
    read this input (a token classifier given sentence B). Uses the capture's own logits when its tokens are
    the classifier's encoding (always for WordPiece); otherwise (a tokenizer that encodes pre-split words
    differently) it runs `classify`, so the result is the classifier's in every case.
    """
    if cap.logits is None:
        return None
    kind = "token" if is_token_classifier(lm) else "sequence"
    try:
        enc, words = classifier_encoding(lm, cap.text_a, cap.text_b)
    except AttnlensError as exc:
        return {"kind": kind, "error": str(exc)}
    logits = torch.from_numpy(cap.logits)  # [C] or [T, C]
    if enc["input_ids"][0].tolist() == cap.token_ids.tolist():
        result = classification_of(lm, enc, words, logits)
    else:
        result = classify(cap.text_a, cap.text_b, model=lm)
    if kind == "sequence":
        return {"kind": kind, "label": result.label, "probabilities": result.probabilities}
    id2label = {int(k): str(v) for k, v in lm.model.config.id2label.items()}
    per_token = logits.argmax(-1).tolist()  # [T]
    tokens = [None if special else id2label[int(c)] for special, c in zip(cap.special_mask.tolist(), per_token)]
    return {"kind": kind, "words": result.words, "tags": result.tags, "tokens": tokens}
