"""Continuing a text with a decoder's own language-model head (`attnlens predict generate`).

Greedy decoding (top_k 1, the default) or top-k sampling from the model's next-token
distribution, drawn with a private generator seeded by `seed`, so the same seed gives the same
text. The prompt is encoded with the tokenizer's own template, minus the special tokens it puts
at the end (a WordPiece [SEP]), so the model continues the text itself; generation stops at the
end-of-text token, after `max_new_tokens`, or at the model's longest input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..capturing import LoadedModel, check_text, resolve_model
from ..errors import AttnlensError
from .checkpoint import model_folder
from .predict import architectures

CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")


@dataclass
class Generation:
    """A prompt and its continuation: the whole text, the new part, and the new tokens with their ids."""

    text: str
    continuation: str
    tokens: list[str]
    token_ids: list[int]

    def as_dict(self) -> dict:
        return {"text": self.text, "continuation": self.continuation, "tokens": self.tokens,
                "token_ids": self.token_ids}


def has_lm_head(lm: LoadedModel) -> bool:
    return type(lm.model).__name__.endswith(CAUSAL_LM_SUFFIXES)


def load_causal_lm(model: str | Path | LoadedModel, device: str = "cpu") -> LoadedModel:
    """A decoder with its language-model head: a LoadedModel as given, or a model / run folder (its newest
    checkpoint) or hub name whose config names a *ForCausalLM / *LMHeadModel."""
    if isinstance(model, LoadedModel):
        if not has_lm_head(model):
            raise AttnlensError(f"model {model.name} has no language-model head (it is a "
                                f"{type(model.model).__name__}, not a *ForCausalLM / *LMHeadModel)")
        return model
    path = Path(str(model)).expanduser()
    source = str(model_folder(path)) if path.exists() else str(model)
    archs = architectures(source)
    if not any(name.endswith(CAUSAL_LM_SUFFIXES) for name in archs):
        raise AttnlensError(f"{source} has no language-model head (architectures: {', '.join(archs) or 'none'}); "
                            "generation needs a decoder such as a checkpoint of `attnlens pretrain --objective clm`")
    from transformers import AutoModelForCausalLM  # noqa: PLC0415  (heavy: imported on first use)

    return resolve_model(source, device=device, model_class=AutoModelForCausalLM)


def _prompt_ids(lm: LoadedModel, text: str) -> list[int]:
    """The prompt's ids with the tokenizer's template, minus the special tokens it appends."""
    enc = lm.tokenizer(text, return_special_tokens_mask=True)
    ids, special = list(enc["input_ids"]), list(enc["special_tokens_mask"])
    while ids and special[-1] and len(ids) > 1:
        ids.pop()
        special.pop()
    return ids


def generate(text: str, model: str | Path | LoadedModel, *, max_new_tokens: int = 20, top_k: int = 1,
             seed: int = 0) -> Generation:
    """Continue `text` by up to `max_new_tokens` tokens: greedy when top_k is 1, else sampled among the k most
    likely next tokens (seeded)."""
    text = check_text(text)
    if max_new_tokens < 1:
        raise AttnlensError(f"max-new-tokens must be at least 1, got {max_new_tokens}")
    if top_k < 1:
        raise AttnlensError(f"top-k must be at least 1, got {top_k}")
    lm = load_causal_lm(model)
    ids = _prompt_ids(lm, text)
    room = lm.max_length - len(ids)
    if room < 1:
        raise AttnlensError(f"the text is {len(ids)} tokens; the model takes at most {lm.max_length}, "
                            "which leaves no room to continue it")
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    eos = lm.tokenizer.eos_token_id
    new: list[int] = []
    with torch.inference_mode():
        for _ in range(min(max_new_tokens, room)):  # the whole text each step: no cache API to depend on
            out = lm.model(input_ids=torch.tensor([ids + new], device=lm.device), use_cache=False)
            logits = out.logits[0, -1].float().cpu()  # [V]: the next-token scores
            if top_k == 1:
                token = int(logits.argmax())
            else:
                top = logits.topk(min(top_k, logits.shape[-1]))
                pick = torch.multinomial(torch.softmax(top.values, dim=-1), 1, generator=generator)
                token = int(top.indices[pick])
            new.append(token)
            if token == eos:
                break
    tok = lm.tokenizer
    prompt = tok.decode(ids, skip_special_tokens=True)
    full = tok.decode(ids + new, skip_special_tokens=True)
    continuation = full[len(prompt):] if full.startswith(prompt) else tok.decode(new, skip_special_tokens=True)
    return Generation(text + continuation, continuation, tok.convert_ids_to_tokens(new), new)
