"""Tiny random models of the families captured through transformers' attention interface
(GPT-2, Llama, Qwen2, ModernBERT), saved with a tokenizer and loaded by path like a user's model.

Decoders get a small GPT-2-style byte-level BPE tokenizer trained here with `tokenizers` (no
[CLS]/[SEP], no pair template, no pad token), ModernBERT the default model's WordPiece tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from conftest import PAIR, default_tokenizer

PEAKED = dict(initializer_range=0.3)  # large random weights: peaked attention, so a wrong mask shows
BPE_CORPUS = [*PAIR, "The cat sat on the mat, and the dog slept by the door.",
              "She said that the results were not what anyone had expected."]
EOT = "<|endoftext|>"
LOCAL_WINDOW = 8  # ModernBERT's local_attention (a token sees 4 tokens each side on local layers)


def bpe_tokenizer():
    """A GPT-2-style byte-level BPE tokenizer of 300 tokens, trained in-process."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(BPE_CORPUS * 3, trainer=trainer)
    return GPT2TokenizerFast(tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT)


def interface_config(family: str, **overrides):
    """A small random config of `family` built with transformers' own config class."""
    from transformers import GPT2Config, LlamaConfig, ModernBertConfig, Qwen2Config

    kw = dict(PEAKED)
    if family == "gpt2":
        kw.update(vocab_size=300, n_positions=128, n_embd=32, n_layer=3, n_head=4, bos_token_id=0, eos_token_id=0)
        return GPT2Config(**{**kw, **overrides})
    if family == "modernbert":
        kw.update(vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=256, local_attention=LOCAL_WINDOW, global_attn_every_n_layers=2,
                  pad_token_id=0, bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)
        return ModernBertConfig(**{**kw, **overrides})
    kw.update(vocab_size=300, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
              intermediate_size=64, max_position_embeddings=128, bos_token_id=0, eos_token_id=0, pad_token_id=None)
    if family == "llama":
        return LlamaConfig(**{**kw, **overrides})
    if family == "qwen2":  # a sliding window on the layers from max_window_layers on
        kw.update(num_key_value_heads=1, use_sliding_window=True, sliding_window=4, max_window_layers=1)
        return Qwen2Config(**{**kw, **overrides})
    raise ValueError(family)


def saved_model(folder: Path, family: str, seed: int = 0, **overrides) -> Path:
    """Save a random `family` model (sdpa attention) and its tokenizer in `folder`; returns the folder."""
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = AutoModel.from_config(interface_config(family, **overrides), attn_implementation="sdpa")
    model.save_pretrained(folder)
    (default_tokenizer() if family == "modernbert" else bpe_tokenizer()).save_pretrained(folder)
    return folder


def eager_model(folder: Path):
    """The same saved weights loaded with eager attention: the reference `output_attentions`."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(folder, attn_implementation="eager").eval()


def eager_attentions(model, tokenizer, text_a, text_b=None) -> np.ndarray:
    """The model's own eager attention for one unpadded input: [L, H, T, T]."""
    enc = tokenizer(text_a, text_b, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    return torch.stack(out.attentions, dim=1)[0].numpy()


def softmax_rows(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Row softmax of scores [..., T, T] over the allowed keys only (allowed [T, T] bool)."""
    s = np.where(allowed, scores, -np.inf)
    s = np.exp(s - s.max(-1, keepdims=True))
    return s / s.sum(-1, keepdims=True)
