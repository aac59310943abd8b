"""Using a fine-tuned classifier: load it, evaluate it on encoded examples, classify a text.

This is the one classification path: the trainer's held-out evaluation, `attnlens predict classify`,
`attnlens.classify` and the head-ablation findings all run `predict_encoded`.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..capturing import LoadedModel, check_pair, check_text, default_model_path, model_inputs, resolve_model
from ..errors import AttnlensError
from ..pretraining.checkpoint import model_folder
from ..pretraining.predict import architectures
from .data import IGNORE, Encoded, collate
from .objective import logits_of
from .tasks import classification_metrics

HEADS = {"ForSequenceClassification": "AutoModelForSequenceClassification",
         "ForTokenClassification": "AutoModelForTokenClassification"}
TASK_CLASS = {"sequence": "AutoModelForSequenceClassification", "pair": "AutoModelForSequenceClassification",
              "token": "AutoModelForTokenClassification"}
TASK_KIND_KEY = "attnlens_task_kind"  # the model config's entry naming the task kind a classifier was trained on


def model_source(model: str | os.PathLike | None) -> str:
    """What from_pretrained loads for `model`: the default model's folder (None), a model folder, the newest
    checkpoint of a run folder (pretraining or fine-tuning), or a hub name as given."""
    if model is None:
        return str(default_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(model_folder(path))
    return str(model)


def auto_class(name: str):
    import transformers  # noqa: PLC0415  (heavy: imported on first use, so `import attnlens` stays fast)

    return getattr(transformers, name)


def classifier_class(folder: str) -> str:
    """The Auto class name that loads a fine-tuned model folder with its head (from config.json's architectures)."""
    for arch in architectures(folder):
        for suffix, name in HEADS.items():
            if arch.endswith(suffix):
                return name
    raise AttnlensError(f"{folder} is not a fine-tuned classifier (architectures: "
                        f"{', '.join(architectures(folder)) or 'none'}); fine-tune one with `attnlens finetune`")


def load_classifier(model: str | os.PathLike | LoadedModel, device: str = "cpu") -> LoadedModel:
    """A fine-tuned classifier (a run folder, its checkpoint folder, or a LoadedModel) through the one model cache."""
    if isinstance(model, LoadedModel):
        if not any(type(model.model).__name__.endswith(s) for s in HEADS):
            raise AttnlensError(f"model {model.name} is a {type(model.model).__name__}, not a fine-tuned classifier")
        return model
    if model is None:
        raise AttnlensError("classification needs --model RUN_DIR (a run of `attnlens finetune`)")
    folder = str(model_folder(model))
    return resolve_model(folder, device=device, model_class=auto_class(classifier_class(folder)))


@torch.no_grad()
def predict_encoded(model, encoded: Encoded, pad_id: int, batch_size: int = 64, around=None) -> dict:
    """Predictions of a classifier on encoded examples, in length-sorted batches: {"truth", "predicted"}
    (class ids at every labelled position, in example order) and "loss" (mean cross-entropy).
    around: a function of the batch giving a context manager each forward runs in (e.g. a head ablation)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    order = np.argsort([len(x) for x in encoded.input_ids], kind="stable")
    truth, predicted, losses = [], [], []
    try:
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = collate(encoded, index, pad_id).to(device)
            with around(batch) if around is not None else nullcontext():
                logits = logits_of(model, batch).float()  # [B, C] or [B, T, C]
            chosen = batch.labels != IGNORE
            truth.append((index, batch.labels[chosen].cpu().numpy(), chosen.sum(-1).cpu().numpy() if
                          chosen.dim() > 1 else np.ones(len(index), dtype=np.int64)))
            predicted.append(logits[chosen].argmax(-1).cpu().numpy())
            losses.append(float(F.cross_entropy(logits[chosen], batch.labels[chosen], reduction="sum")))
    finally:
        model.train(was_training)
    # back to example order: each batch's labelled positions are grouped by row
    per_example: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for (index, t, counts), p in zip(truth, predicted):
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for row, i in enumerate(index):
            per_example[int(i)] = (t[bounds[row]:bounds[row + 1]], p[bounds[row]:bounds[row + 1]])
    t_all = np.concatenate([per_example[i][0] for i in range(len(encoded))])
    p_all = np.concatenate([per_example[i][1] for i in range(len(encoded))])
    return {"truth": t_all, "predicted": p_all, "loss": sum(losses) / max(1, len(t_all))}


def evaluate_encoded(model, encoded: Encoded, num_labels: int, pad_id: int, batch_size: int = 64,
                     around=None) -> dict:
    """Accuracy, macro-F1 and loss of a classifier on encoded examples (see predict_encoded for `around`)."""
    out = predict_encoded(model, encoded, pad_id, batch_size, around)
    return {**classification_metrics(out["truth"], out["predicted"], num_labels), "loss": out["loss"],
            "examples": len(encoded), "positions": int(len(out["truth"]))}


@dataclass
class Classification:
    """A classifier's output for one input: the label and each class's probability (sequence models), or
    the words with their predicted tags (token models; `label` is then None)."""

    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"label": self.label, "probabilities": self.probabilities, "words": self.words, "tags": self.tags}


def is_token_classifier(lm: LoadedModel) -> bool:
    return type(lm.model).__name__.endswith("ForTokenClassification")


def classifier_encoding(lm: LoadedModel, text: str, text_b: str | None = None):
    """(encoding, words): what a classifier reads for `text` (and `text_b`), checked, as it was trained: a token
    classifier's whitespace words (split into words; `words` lists them), else the tokenizer's (pair) encoding."""
    words: list[str] = []
    if is_token_classifier(lm):
        if text_b is not None:
            raise AttnlensError("a token classifier tags one text; leave --text-b out")
        words = check_text(text).split()
        enc = lm.tokenizer(words, is_split_into_words=True, return_tensors="pt")
    else:
        text, text_b = check_pair((text, text_b))
        enc = lm.tokenizer(text, text_b, return_tensors="pt")
    if enc["input_ids"].shape[1] > lm.max_length:
        raise AttnlensError(f"input is {enc['input_ids'].shape[1]} tokens but the model takes at most {lm.max_length}")
    return enc, words


def classification_of(lm: LoadedModel, enc, words: list[str], logits: torch.Tensor) -> Classification:
    """The Classification of a classifier's `logits` ([C], or [T, C] for a token classifier) on `enc` (from
    classifier_encoding): the label and every class's probability, or each word's tag (its first piece's)."""
    id2label = {int(k): v for k, v in lm.model.config.id2label.items()}
    logits = logits.float()
    if is_token_classifier(lm):
        tags, previous = [], None
        for position, word in enumerate(enc.word_ids(0)):
            if word is not None and word != previous:
                tags.append(id2label[int(logits[position].argmax())])
            previous = word
        return Classification(None, {}, words, tags)
    probs = torch.softmax(logits, dim=-1)  # [C]
    return Classification(id2label[int(probs.argmax())], {id2label[i]: float(p) for i, p in enumerate(probs)})


def classify(text: str, text_b: str | None = None, *, model) -> Classification:
    """Classify `text` (and `text_b`, for a pair task) with a fine-tuned model (a run folder of `attnlens
    finetune`, its checkpoint folder, or a LoadedModel of one); a token model tags each whitespace word."""
    lm = load_classifier(model)
    enc, words = classifier_encoding(lm, text, text_b)
    with torch.inference_mode():
        logits = lm.model(**model_inputs(lm.model, dict(enc), lm.device)).logits[0]  # [C] or [T, C]
    return classification_of(lm, enc, words, logits)
