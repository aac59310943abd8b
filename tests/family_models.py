"""Tiny random models of DeBERTa-v2/v3, MPNet and of families with no entry (the eager fallback),
built with transformers' own config classes, saved with the default model's WordPiece tokenizer
and loaded by path like a user's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attnlens.capturing import model_inputs
from conftest import PAIR, default_tokenizer

PEAKED = dict(initializer_range=0.3)  # large random weights: peaked attention, so a wrong term or mask shows
INPUTS = [PAIR, ("Short one.", None), ("a b c d e f g h i j k l m n o p", "q r s")]  # 20+ tokens: beyond spans of 6
COMMON = dict(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
              **PEAKED)

# DeBERTa configurations as the hub's configs set them: v3 (shared keys, log buckets, no absolute positions,
# no segments), v2-xlarge (the "p2c|c2p" string form, a conv layer), and the unshared / one-term / no-bucket ones.
DEBERTA = {
    "v3": dict(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=8, share_att_key=True,
               norm_rel_ebd="layer_norm", position_biased_input=False, type_vocab_size=0, max_relative_positions=-1),
    "v2-xlarge": dict(relative_attention=True, pos_att_type="p2c|c2p", position_buckets=8, share_att_key=True,
                      norm_rel_ebd="layer_norm", position_biased_input=False, conv_kernel_size=3, type_vocab_size=0),
    "unshared-c2p": dict(relative_attention=True, pos_att_type=["c2p"], position_buckets=0, share_att_key=False,
                         max_relative_positions=6, position_biased_input=True, type_vocab_size=2),
    "unshared-p2c": dict(relative_attention=True, pos_att_type=["p2c"], position_buckets=0, share_att_key=False,
                         max_relative_positions=6, position_biased_input=True, type_vocab_size=2),
    "no-relative": dict(relative_attention=False, pos_att_type=None, type_vocab_size=2),
}


def deberta_config(variant: str = "v3", **overrides):
    from transformers import DebertaV2Config

    return DebertaV2Config(**{**COMMON, "max_position_embeddings": 64, **DEBERTA[variant], **overrides})


def mpnet_config(**overrides):
    from transformers import MPNetConfig

    return MPNetConfig(**{**COMMON, "max_position_embeddings": 66, **overrides})


def xlm_config(**overrides):
    """XLM: a family with no attnlens entry, whose modules compute attention their own way."""
    from transformers import XLMConfig

    return XLMConfig(**{**dict(vocab_size=30522, emb_dim=32, n_layers=2, n_heads=4, max_position_embeddings=64,
                               init_std=0.3, pad_index=0), **overrides})


def ernie_config(**overrides):
    """ERNIE: a family with no attnlens entry that runs sdpa through transformers' attention interface."""
    from transformers import ErnieConfig

    return ErnieConfig(**{**COMMON, "max_position_embeddings": 64, **overrides})


def save_model(folder: Path, config, seed: int = 0) -> Path:
    """A random AutoModel of `config` saved with the default model's tokenizer into `folder`."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    AutoModel.from_config(config).save_pretrained(folder)
    default_tokenizer().save_pretrained(folder)
    return folder


def eager_model(folder: Path):
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()


def eager_attentions(model, text_a, text_b=None) -> np.ndarray:
    """The model's own eager `output_attentions` of one unpadded input: [L, H, T, T]."""
    enc = default_tokenizer()(text_a, text_b, return_tensors="pt")
    with torch.no_grad():
        out = model(**model_inputs(model, enc, "cpu"), output_attentions=True)
    return torch.stack(out.attentions, dim=1)[0].numpy()


def worst_difference(captures, model, inputs=INPUTS) -> float:
    """Largest |capture - eager attention| over the inputs (each capture unpadded)."""
    worst = 0.0
    for cap, (a, b) in zip(captures, inputs):
        ref = eager_attentions(model, a, b)  # [L, H, T, T]
        assert cap.attentions.shape == ref.shape
        worst = max(worst, float(np.abs(cap.attentions - ref).max()))
    return worst
