"""Objectives a head's effect is measured on: one registry entry each, a per-input loss of one batch.

An objective `prepare`s its targets from the unablated model (fixed masks, reference embeddings,
the model's own predictions) and then gives a differentiable per-input loss [B] under whatever
hooks (ablations, gates) are active. Inputs come from the one batcher (`capturing.batches`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..capturing import LoadedModel, model_inputs
from ..errors import AttnlensError

MASK_RATE = 0.15  # mlm: share of each input's text tokens masked (at least one)


@dataclass(frozen=True)
class Objective:
    """One objective: which model it needs, how it fixes its targets, and its per-input loss."""

    name: str
    definition: str
    check: Callable  # check(lm): raises an AttnlensError when the model cannot give this objective
    prepare: Callable  # prepare(lm, inputs, batch, seed, labels) -> targets dict (may override "inputs")
    loss: Callable  # loss(output, targets, inputs) -> per-input loss [B]
    base: bool = False  # True: run the encoder (lm.model.base_model) rather than the model with its heads
    gradient: bool = True  # False: d loss / d head is 0 at the unablated model (gradient methods refuse it)


def padded_inputs(lm: LoadedModel, batch) -> dict:
    """The right-padded tensors of one `capturing.batches` Batch, on the model's device."""
    return {k: v.to(lm.device) for k, v in batch.inputs.items()}


def run(objective: Objective, lm: LoadedModel, inputs: dict, targets: dict, **forward_kwargs):
    """(per-input loss [B], model output) of one batch under the active hooks."""
    module = lm.model.base_model if objective.base or targets.get("head") is not None else lm.model
    feed = {**inputs, **targets.get("inputs", {})}
    output = module(**model_inputs(module, feed, lm.device), **forward_kwargs)
    return objective.loss(output, targets, inputs), output


def _type_name(lm: LoadedModel) -> str:
    return type(lm.model).__name__


# ---- mlm -----------------------------------------------------------------------------------
def _check_mlm(lm):
    name = _type_name(lm)
    if not (name.endswith("ForMaskedLM") or name in ("BertForPreTraining", "AlbertForPreTraining")):
        raise AttnlensError(f"the mlm objective needs a model with a masked-LM head (a *ForMaskedLM or a checkpoint "
                            f"of `attnlens pretrain`); {lm.name} is a {name}")


# where a masked-LM model keeps its token head (hidden states -> vocabulary logits), if in one module: the
# objective then runs the encoder and this head on the masked positions only, not on every token
MLM_HEADS = ("cls.predictions", "predictions", "lm_head")


def mlm_head(lm):
    """The module mapping hidden states [..., hidden] to vocabulary logits, or None (then the whole model runs)."""
    for name in MLM_HEADS:
        try:
            return lm.model.get_submodule(name)
        except AttributeError:
            continue
    return None


def _prepare_mlm(lm, inputs, batch, seed, _labels):
    ids, labels = masked_ids(lm, inputs, batch, seed)
    return {"inputs": {"input_ids": ids}, "labels": labels, "head": mlm_head(lm)}


def masked_ids(lm, inputs, batch, seed):
    """(input ids with MASK_RATE of each input's text tokens replaced by [MASK], labels: the original ids there and
    -100 elsewhere); the positions are fixed per (seed, position in the corpus).  # [B, T], [B, T]"""
    ids = inputs["input_ids"].clone()  # [B, T]
    labels = torch.full_like(ids, -100)  # [B, T]
    for row, position in enumerate(batch.index):
        text = (~torch.as_tensor(batch.token_info(row).special_mask)).nonzero().flatten()  # [N] text token positions
        if len(text) == 0:
            continue
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(position))  # fixed per input
        chosen = text[torch.randperm(len(text), generator=gen)[:max(1, round(MASK_RATE * len(text)))]]
        labels[row, chosen] = ids[row, chosen]
        ids[row, chosen] = lm.tokenizer.mask_token_id
    return ids, labels


def _loss_mlm(output, targets, _inputs):
    labels = targets["labels"]  # [B, T]
    if targets.get("head") is not None:  # the head on the masked positions only
        where = labels != -100  # [B, T]
        logits = targets["head"](output.last_hidden_state[where]).float()  # [M, V]
        per_mask = F.cross_entropy(logits, labels[where], reduction="none")  # [M]
        rows = where.nonzero()[:, 0]  # [M] the input of each masked position
        total = torch.zeros(labels.shape[0], dtype=per_mask.dtype, device=per_mask.device).index_add(0, rows, per_mask)
        return total / where.sum(1).clamp_min(1)
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output.prediction_logits  # [B, T, V]
    per_token = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100, reduction="none")  # [B, T]
    counted = (labels != -100).sum(1).clamp_min(1)  # [B]
    return per_token.sum(1) / counted


# ---- nsp -----------------------------------------------------------------------------------
def _check_nsp(lm):
    name = _type_name(lm)
    if name not in ("BertForPreTraining",) and not name.endswith("ForNextSentencePrediction"):
        raise AttnlensError(f"the nsp objective needs a model with a next-sentence head (BertForPreTraining, e.g. a "
                            f"checkpoint of `attnlens pretrain`); {lm.name} is a {name}")


def _prepare_nsp(_lm, _inputs, batch, _seed, _labels):
    if any(b is None for _a, b in batch.pairs):
        raise AttnlensError("the nsp objective needs sentence pairs (sentence A, sentence B); got a single sentence")
    return {}


def _loss_nsp(output, _targets, inputs):
    logits = getattr(output, "seq_relationship_logits", None)
    if logits is None:
        logits = output.logits  # *ForNextSentencePrediction  [B, 2]
    is_next = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)  # corpus pairs are consecutive
    return F.cross_entropy(logits.float(), is_next, reduction="none")  # [B]


# ---- embedding -----------------------------------------------------------------------------
def mean_pooled(output, mask) -> torch.Tensor:
    """Mean of the last hidden state over real tokens (the sentence-transformers embedding).  # [B, hidden]"""
    hidden = output.last_hidden_state.float()  # [B, T, hidden]
    weights = mask.to(hidden.dtype)[:, :, None]  # [B, T, 1]
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)


def _prepare_embedding(lm, inputs, _batch, _seed, _labels):
    with torch.no_grad():
        out = lm.model.base_model(**model_inputs(lm.model.base_model, inputs, lm.device))
    return {"reference": mean_pooled(out, inputs["attention_mask"])}


def _loss_embedding(output, targets, inputs):
    pooled = mean_pooled(output, inputs["attention_mask"])  # [B, hidden]
    return 1.0 - F.cosine_similarity(pooled, targets["reference"], dim=-1)  # [B]


# ---- masked_embedding ----------------------------------------------------------------------
def _check_masked_embedding(lm):
    if lm.tokenizer.mask_token_id is None:
        raise AttnlensError(f"the masked_embedding objective needs a tokenizer with a mask token; {lm.name} has none")


def _prepare_masked_embedding(lm, inputs, batch, seed, labels):
    ids, _labels = masked_ids(lm, inputs, batch, seed)
    return {**_prepare_embedding(lm, inputs, batch, seed, labels), "inputs": {"input_ids": ids}}


# ---- classification ------------------------------------------------------------------------
def _check_classification(lm):
    if not _type_name(lm).endswith("ForSequenceClassification"):
        raise AttnlensError(f"the classification objective needs a fine-tuned *ForSequenceClassification model; "
                            f"{lm.name} is a {_type_name(lm)}")


def _prepare_classification(lm, inputs, batch, _seed, labels):
    if labels is not None:
        return {"labels": torch.as_tensor([labels[i] for i in batch.index], device=lm.device)}
    with torch.no_grad():
        logits = lm.model(**model_inputs(lm.model, inputs, lm.device)).logits  # [B, C]
    own = logits.squeeze(-1) if logits.shape[-1] == 1 else logits.argmax(-1)  # the model's own predictions
    return {"labels": own}


def _loss_classification(output, targets, _inputs):
    logits = output.logits.float()  # [B, C]
    labels = targets["labels"]
    if logits.shape[-1] == 1:  # regression head: the model's own loss is MSE
        return (logits.squeeze(-1) - labels.float()) ** 2
    return F.cross_entropy(logits, labels.long(), reduction="none")  # [B]


_REGISTRY = (
    Objective("mlm", "mean cross-entropy of the masked-LM head at fixed masked positions (15% of each input's text "
              "tokens, at least one, chosen by a generator seeded with (seed, position in the corpus); masked "
              "tokens become [MASK])", _check_mlm, _prepare_mlm, _loss_mlm),
    Objective("nsp", "cross-entropy of the next-sentence head on the corpus pairs, which are consecutive "
              "sentences (label IsNext)", _check_nsp, _prepare_nsp, _loss_nsp),
    Objective("embedding", "1 - cosine between the mean-pooled last hidden state over real tokens and the unablated "
              "one (the all-MiniLM-L6-v2 sentence embedding); 0 and flat at the unablated model",
              lambda lm: None, _prepare_embedding, _loss_embedding, base=True, gradient=False),
    Objective("masked_embedding", "1 - cosine between the mean-pooled last hidden state of the input with the mlm "
              "objective's masked tokens ([MASK] at 15% of its text tokens, fixed per input) and the unablated "
              "embedding of the unmasked input: how much a head helps recover the sentence embedding from a "
              "corrupted input; any encoder with a mask token gives it (a model and its fine-tuned copy alike)",
              _check_masked_embedding, _prepare_masked_embedding, _loss_embedding, base=True),
    Objective("classification", "the *ForSequenceClassification model's own task loss (cross-entropy, or MSE for one "
              "output) against given labels, or against its own unablated predictions when none are given",
              _check_classification, _prepare_classification, _loss_classification),
)
OBJECTIVES: dict[str, Objective] = {o.name: o for o in _REGISTRY}


def get_objective(name: str, lm: LoadedModel | None = None) -> Objective:
    """The objective `name`, checked against `lm` when given."""
    if isinstance(name, Objective):
        objective = name
    elif name not in OBJECTIVES:
        raise AttnlensError(f"unknown objective {name!r}: use one of {', '.join(OBJECTIVES)}")
    else:
        objective = OBJECTIVES[name]
    if lm is not None:
        objective.check(lm)
    return objective
