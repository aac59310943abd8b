"""The architecture table: a new family is one register_arch call, and then captures exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnlens import ArchSpec, AttnlensError, LoadedModel, capture, register_arch
from attnlens.capturing import arch
from conftest import PAIR, default_tokenizer

MEGATRON = ArchSpec(
    "megatron-bert", ("megatron-bert",),
    query=r"encoder\.layer\.\d+\.attention\.self\.query",
    key=r"encoder\.layer\.\d+\.attention\.self\.key",
    position_embeddings=r"embeddings\.position_embeddings",
    segment_embeddings=r"embeddings\.token_type_embeddings",
)


@pytest.fixture
def table(monkeypatch):
    """The architecture table, restored after the test."""
    monkeypatch.setattr(arch, "_SPECS", list(arch._SPECS))
    return arch


def _megatron(attn_implementation="eager"):
    from transformers import AutoModel, MegatronBertConfig

    torch.manual_seed(0)
    config = MegatronBertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=64)
    return AutoModel.from_config(config, attn_implementation=attn_implementation)


def test_an_unregistered_family_falls_back_to_the_models_own_attention(table):
    lm = LoadedModel(_megatron(), default_tokenizer(), name="megatron")
    assert lm.spec.recorder == "output_attentions"  # no q/k until it is registered
    cap = capture(*PAIR, model=lm)
    assert cap.queries is None
    enc = lm.tokenizer(*PAIR, return_tensors="pt")
    with torch.no_grad():
        own = lm.model(**enc, output_attentions=True).attentions  # L x [1, H, T, T]
    np.testing.assert_allclose(cap.attentions, torch.stack(own, 1)[0].numpy(), atol=1e-5)


def test_a_registered_family_captures_the_models_own_attention(table):
    register_arch(MEGATRON)
    model = _megatron("eager")
    lm = LoadedModel(model, default_tokenizer(), name="megatron")
    cap = capture(*PAIR, model=lm)
    enc = lm.tokenizer(*PAIR, return_tensors="pt")
    with torch.no_grad():
        eager = model(**enc, output_attentions=True).attentions  # L x [1, H, T, T]
    np.testing.assert_allclose(cap.attentions, torch.stack(eager, 1)[0].numpy(), atol=1e-5)
    assert lm.d_head == 8 and lm.max_length == 64


def test_register_arch_refuses_what_it_cannot_use(table):
    with pytest.raises(AttnlensError, match="already handled by family 'bert'"):
        register_arch(ArchSpec("mine", ("bert",), query="q", key="k", position_embeddings=None,
                               segment_embeddings=None))
    with pytest.raises(AttnlensError, match="not a regular expression"):
        register_arch(ArchSpec("mine", ("mine",), query="(", key="k", position_embeddings=None,
                               segment_embeddings=None))
    with pytest.raises(AttnlensError, match="names no model_type"):
        register_arch(ArchSpec("mine", (), query="q", key="k", position_embeddings=None, segment_embeddings=None))


def test_family_quirks_live_in_the_table():
    from transformers import DistilBertConfig, RobertaConfig

    roberta = arch.spec_for_config(RobertaConfig(max_position_embeddings=514, pad_token_id=1))
    assert roberta.max_length(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    distil = DistilBertConfig(dim=64, n_heads=4)
    assert arch.spec_for_config(distil).d_head(distil) == 16
