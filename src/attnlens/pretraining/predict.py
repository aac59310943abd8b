"""Predictions of a model's own heads: fill-mask with any masked-LM head, next-sentence probability (NSP)
with a BertForPreTraining.

This is the one masked-LM path of attnlens (`attnlens predict` and the server both use it): the
class that keeps the head is chosen from the config's architectures (masked_lm_class), and the
logits come from the model's own output (mlm_logits).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import torch

from ..capturing import LoadedModel, check_pair, model_inputs, resolve_model
from ..errors import AttnlensError
from .checkpoint import MODEL_CONFIG, model_folder

# *ForPreTraining classes whose heads include a masked-LM head (ElectraForPreTraining is the
# replaced-token discriminator: it has none). Every *ForMaskedLM class has one.
MLM_PRETRAINING = ("BertForPreTraining", "AlbertForPreTraining")
NSP_CLASS = "BertForPreTraining"


def shipped_checkpoint() -> Path:
    """The small checkpoint that ships inside the package (trained by `attnlens pretrain`)."""
    path = Path(str(resources.files("attnlens") / "checkpoints" / "tiny"))
    if not (path / MODEL_CONFIG).is_file():
        raise AttnlensError(f"the shipped checkpoint is missing from {path}; pass --model RUN_DIR")
    return path


def architectures(source: str | Path) -> list[str]:
    """The `architectures` of a model folder's config.json, or of a hub model's config ([] when unknown)."""
    path = Path(source) / MODEL_CONFIG
    if path.is_file():
        try:
            return list(json.loads(path.read_text(encoding="utf-8")).get("architectures") or [])
        except (OSError, ValueError):
            return []
    try:
        from transformers import AutoConfig  # noqa: PLC0415  (heavy: imported on first use)

        return list(getattr(AutoConfig.from_pretrained(str(source)), "architectures", None) or [])
    except Exception:  # noqa: BLE001  (unknown hub names fail later, in load_model, with a clear message)
        return []


def masked_lm_class(source: str | Path):
    """The transformers class that loads `source` with its masked-LM head, from its config's
    architectures: BertForPreTraining / AlbertForPreTraining (pretraining heads), AutoModelForMaskedLM
    for any *ForMaskedLM; None when it has no masked-LM head."""
    archs = architectures(source)
    import transformers  # noqa: PLC0415  (heavy: imported on first use)

    for name in archs:
        if name in MLM_PRETRAINING:
            return getattr(transformers, name)
    if any(name.endswith("ForMaskedLM") for name in archs):
        return transformers.AutoModelForMaskedLM
    return None


def has_mlm_head(lm: LoadedModel) -> bool:
    """Whether `lm.model` predicts tokens (a masked-LM head)."""
    name = type(lm.model).__name__
    return name.endswith("ForMaskedLM") or name in MLM_PRETRAINING


def load_pretrained(model: str | Path | LoadedModel | None = None, device: str = "cpu") -> LoadedModel:
    """A model with its masked-LM head (and NSP head, for a BertForPreTraining): a LoadedModel as given,
    or a model folder / run folder (its newest checkpoint) loaded through the one model cache;
    None = the shipped checkpoint."""
    if isinstance(model, LoadedModel):
        if not has_mlm_head(model):
            raise AttnlensError(f"model {model.name} has no masked-LM head "
                                f"(it is a {type(model.model).__name__}, not a *ForMaskedLM / *ForPreTraining)")
        return model
    folder = str(model_folder(model)) if model is not None else str(shipped_checkpoint())
    model_class = masked_lm_class(folder)
    if model_class is None:
        raise AttnlensError(f"{folder} has no masked-LM or pretraining heads (architectures: "
                            f"{', '.join(architectures(folder)) or 'none'}); predictions need a *ForMaskedLM model "
                            "or a checkpoint written by `attnlens pretrain`")
    return resolve_model(folder, device=device, model_class=model_class)


@dataclass
class MaskPrediction:
    """The top-k candidates for one [MASK] position."""

    position: int  # token index in the encoded input (0 = [CLS])
    tokens: list[str]
    probabilities: list[float]

    def as_dict(self) -> dict:
        return {"position": self.position, "tokens": self.tokens, "probabilities": self.probabilities}


def mlm_logits(lm: LoadedModel, enc) -> torch.Tensor:
    """Masked-LM logits [batch, tokens, vocab] of a model with a masked-LM head, from its own output."""
    with torch.inference_mode():
        out = lm.model(**model_inputs(lm.model, enc, lm.device))
    logits = getattr(out, "logits", None)  # *ForMaskedLM
    if logits is None:
        logits = getattr(out, "prediction_logits", None)  # *ForPreTraining
    if logits is None:
        raise AttnlensError(f"model {lm.name} returned no token logits")
    return logits  # [B, T, V]


def mask_predictions(lm: LoadedModel, enc, positions: torch.Tensor, top_k: int) -> list[MaskPrediction]:
    """Top-k tokens and probabilities at token `positions` [M] of one encoded input (one forward pass)."""
    logits = mlm_logits(lm, enc)[0, positions]  # [M, vocab]
    probs = torch.softmax(logits.float(), dim=-1)  # [M, vocab]
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)  # [M, k]
    return [MaskPrediction(int(p), lm.tokenizer.convert_ids_to_tokens(ids.tolist()), [float(x) for x in values])
            for p, ids, values in zip(positions, top.indices, top.values, strict=True)]


def _encode(lm: LoadedModel, text_a: str, text_b: str | None = None):
    """One checked input as tensors on the model's device; an error when it is longer than the model takes."""
    enc = lm.tokenizer(text_a, text_b, return_tensors="pt")
    n = enc["input_ids"].shape[1]
    if n > lm.max_length:
        raise AttnlensError(f"input is {n} tokens but the model takes at most {lm.max_length}")
    return enc


def fill_mask(text: str, model=None, top_k: int = 5, text_b: str | None = None) -> list[MaskPrediction]:
    """Top-k tokens and probabilities at every [MASK] of `text` (several masks are predicted jointly, in one pass)."""
    lm = load_pretrained(model)
    if top_k < 1:
        raise AttnlensError(f"top-k must be at least 1, got {top_k}")
    text, text_b = check_pair((text, text_b))
    mask = lm.tokenizer.mask_token
    if mask not in text and (text_b is None or mask not in text_b):
        raise AttnlensError(f"the text has no {mask} token to fill")
    enc = _encode(lm, text, text_b)
    positions = (enc["input_ids"][0] == lm.tokenizer.mask_token_id).nonzero().flatten()  # [M]
    return mask_predictions(lm, enc, positions, top_k)


def next_sentence_probability(text_a: str, text_b: str, model=None) -> float:
    """P(IsNext): the model's probability that `text_b` follows `text_a` (a BertForPreTraining's NSP head)."""
    lm = load_pretrained(model)
    if type(lm.model).__name__ != NSP_CLASS:
        raise AttnlensError(f"next-sentence prediction needs a {NSP_CLASS} (with its NSP head), such as a checkpoint "
                            f"of `attnlens pretrain`; model {lm.name} is a {type(lm.model).__name__}")
    text_a, text_b = check_pair((text_a, text_b))
    if text_b is None:
        raise AttnlensError("next-sentence prediction needs a sentence B")
    enc = _encode(lm, text_a, text_b)
    with torch.inference_mode():
        out = lm.model(**model_inputs(lm.model, enc, lm.device))
    probs = torch.softmax(out.seq_relationship_logits.float(), dim=-1)[0]  # [2] (IsNext, NotNext)
    return float(probs[0])
