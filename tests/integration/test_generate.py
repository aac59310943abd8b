"""`attnlens predict generate`: a decoder continues a text, greedy (the argmax of its own logits) or seeded top-k."""

from __future__ import annotations

import pytest
import torch

from attnlens import AttnlensError
from attnlens.pretraining.generate import generate, load_causal_lm
from interface_models import bpe_tokenizer, interface_config, saved_model

PROMPT = "I went to the"


@pytest.fixture(scope="module")
def gpt2_lm(tmp_path_factory):
    """A tiny random GPT-2 with its LM head, saved with a BPE tokenizer."""
    from transformers import GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("gpt2-lm")
    torch.manual_seed(0)
    GPT2LMHeadModel(interface_config("gpt2", initializer_range=0.1)).save_pretrained(folder)
    bpe_tokenizer().save_pretrained(folder)
    return folder


def cli(*args):
    from typer.testing import CliRunner

    from attnlens.cli import (
        app,
        commands,  # noqa: F401  (registers the commands)
    )

    return CliRunner().invoke(app, list(args))


def test_greedy_is_the_argmax_continuation_of_the_models_logits(gpt2_lm):
    result = generate(PROMPT, gpt2_lm, max_new_tokens=8)
    lm = load_causal_lm(gpt2_lm)
    prompt = lm.tokenizer(PROMPT)["input_ids"]
    ids = torch.tensor([prompt + result.token_ids])
    with torch.no_grad():
        logits = lm.model(input_ids=ids).logits[0]  # [T, V]: one forward over the whole text
    n = len(prompt)
    assert 1 <= len(result.token_ids) <= 8
    assert result.token_ids == logits[n - 1:n - 1 + len(result.token_ids)].argmax(-1).tolist()
    assert result.text == PROMPT + result.continuation and result.continuation
    assert result.tokens == lm.tokenizer.convert_ids_to_tokens(result.token_ids)


def test_sampling_is_reproducible_by_seed(gpt2_lm):
    runs = {seed: generate(PROMPT, gpt2_lm, max_new_tokens=10, top_k=50, seed=seed).text for seed in range(4)}
    assert generate(PROMPT, gpt2_lm, max_new_tokens=10, top_k=50, seed=2).text == runs[2]
    assert len(set(runs.values())) > 1  # different seeds sample different texts
    greedy = generate(PROMPT, gpt2_lm, max_new_tokens=10).text
    assert any(text != greedy for text in runs.values())


def test_cli_generate_prints_the_continued_text(gpt2_lm):
    result = cli("predict", "generate", PROMPT, "--model", str(gpt2_lm), "--max-new-tokens", "5", "--top-k", "5",
                 "--seed", "7")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == generate(PROMPT, gpt2_lm, max_new_tokens=5, top_k=5, seed=7).text


def test_a_model_without_lm_head_is_a_one_line_error(tmp_path, gpt2_lm):
    folder = saved_model(tmp_path, "gpt2")  # a bare GPT2Model: no LM head
    result = cli("predict", "generate", PROMPT, "--model", str(folder))
    assert result.exit_code == 2 and "no language-model head" in result.output
    assert "Traceback" not in result.output
    bad = cli("predict", "generate", PROMPT, "--model", str(gpt2_lm), "--top-k", "0")
    assert bad.exit_code == 2 and "top-k must be at least 1" in bad.output
    with pytest.raises(AttnlensError, match="empty"):
        generate("  ", gpt2_lm)
