"""Predictions of a pretrained BERT's own heads: fill-mask (MLM) and next-sentence probability (NSP)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..errors import AttnlensError
from ..models import LoadedModel, load_model
from .checkpoint import model_folder

PRETRAINING_HEADS = ("BertForPreTraining",)


def shipped_checkpoint() -> Path:
    """The small checkpoint that ships inside the package (trained by `attnlens pretrain`)."""
    path = Path(str(resources.files("attnlens") / "checkpoints" / "tiny"))
    if not (path / "config.json").is_file():
        raise AttnlensError(f"the shipped checkpoint is missing from {path}; pass --model RUN_DIR")
    return path


def load_pretrained(model: str | Path | LoadedModel | None = None, device: str = "cpu") -> LoadedModel:
    """A BertForPreTraining (MLM + NSP heads) from a checkpoint or run folder; None = the shipped one."""
    if isinstance(model, LoadedModel):
        if not hasattr(model.model, "cls"):
            raise AttnlensError(f"model {model.name} has no masked-LM/NSP heads (it is not a BertForPreTraining)")
        return model
    return _load_cached(str(model_folder(model)) if model is not None else str(shipped_checkpoint()), device)


@functools.lru_cache(maxsize=4)
def _load_cached(folder: str, device: str) -> LoadedModel:
    import json  # noqa: PLC0415

    from transformers import BertForPreTraining  # noqa: PLC0415

    archs = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")).get("architectures") or []
    if not any(a in PRETRAINING_HEADS for a in archs):
        raise AttnlensError(f"{folder} has no pretraining heads (architectures: {', '.join(archs) or 'none'}); "
                            "predictions need a checkpoint written by `attnlens pretrain`")
    return load_model(folder, device=device, model_class=BertForPreTraining)


@dataclass
class MaskPrediction:
    """The top-k candidates for one [MASK] position."""

    position: int  # token index in the encoded input (0 = [CLS])
    tokens: list[str]
    probabilities: list[float]

    def as_dict(self) -> dict:
        return {"position": self.position, "tokens": self.tokens, "probabilities": self.probabilities}


def _encode(lm: LoadedModel, text_a: str, text_b: str | None = None):
    for which, text in (("A", text_a), ("B", text_b)):
        if text is not None and (not isinstance(text, str) or not text.strip()):
            raise AttnlensError(f"text {which} is empty")
    enc = lm.tokenizer(text_a, text_b, return_tensors="pt")
    n = enc["input_ids"].shape[1]
    if n > lm.max_length:
        raise AttnlensError(f"input is {n} tokens but the model takes at most {lm.max_length}")
    return {k: v.to(lm.device) for k, v in enc.items()}


def fill_mask(text: str, model=None, top_k: int = 5, text_b: str | None = None) -> list[MaskPrediction]:
    """Top-k tokens and probabilities at every [MASK] of `text` (several masks are predicted jointly, in one pass)."""
    lm = load_pretrained(model)
    if top_k < 1:
        raise AttnlensError(f"top-k must be at least 1, got {top_k}")
    mask = lm.tokenizer.mask_token
    if mask not in text and (text_b is None or mask not in text_b):
        raise AttnlensError(f"the text has no {mask} token to fill")
    enc = _encode(lm, text, text_b)
    positions = (enc["input_ids"][0] == lm.tokenizer.mask_token_id).nonzero().flatten()  # [M]
    with torch.inference_mode():
        hidden = lm.model.bert(**enc).last_hidden_state[0]  # [T, hidden]
        probs = torch.softmax(lm.model.cls.predictions(hidden[positions]).float(), dim=-1)  # [M, vocab]
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    return [MaskPrediction(int(p), lm.tokenizer.convert_ids_to_tokens(ids.tolist()), [float(x) for x in values])
            for p, ids, values in zip(positions, top.indices, top.values)]


def next_sentence_probability(text_a: str, text_b: str, model=None) -> float:
    """P(IsNext): the model's probability that `text_b` follows `text_a`."""
    lm = load_pretrained(model)
    enc = _encode(lm, text_a, text_b)
    with torch.inference_mode():
        pooled = lm.model.bert(**enc).pooler_output  # [1, hidden]
        probs = torch.softmax(lm.model.cls.seq_relationship(pooled).float(), dim=-1)[0]  # [2] (IsNext, NotNext)
    return float(probs[0])
