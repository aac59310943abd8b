"""`attnlens pretrain --objective clm`: a GPT-2-style decoder on the pretraining loop (checkpoints, exact
resume after a kill, the same inputs as MLM + NSP), and its checkpoints in emergence and the views."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_pretraining import (
    assert_same_final_weights,
    assert_two_processes_train_like_one,
    cli,
    kill_after_checkpoint,
    one_torch_thread,
    synth_documents,
    vocab_file,
    write_corpus,
)

from attnlens import AttnlensError
from attnlens.pretraining.config import SIZES


def _args(tmp_path, steps: int, save_every: int, seed: int = 5, objective: str = "clm"):
    corpus = write_corpus(tmp_path / "corpus.txt", synth_documents(60))
    return ["--corpus", str(corpus), "--size", "tiny", "--steps", str(steps), "--batch-size", "8", "--seq-len", "32",
            "--vocab", str(vocab_file(tmp_path / "vocab", synth_documents(60))), "--save-every", str(save_every),
            "--eval-every", "1000", "--seed", str(seed), "--device", "cpu", "--no-progress", "--objective", objective]


def test_clm_run_is_a_gpt2_of_the_size_preset_trained_on_next_token_loss(tmp_path):
    from transformers import GPT2LMHeadModel

    from attnlens.pretraining.checkpoint import list_checkpoints

    cli("pretrain", "--out", str(tmp_path / "run"), *_args(tmp_path, steps=30, save_every=15))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["config"]["objective"] == "clm" and run["model"]["model_type"] == "gpt2"
    preset = SIZES["tiny"]
    assert (run["model"]["n_layer"], run["model"]["n_head"], run["model"]["n_embd"], run["model"]["n_inner"],
            run["model"]["n_positions"]) == (preset["layers"], preset["heads"], preset["hidden"],
                                             preset["intermediate"], preset["max_positions"])
    assert set(run["baseline"]) >= {"most_frequent_token", "lm_acc"}
    found = list_checkpoints(tmp_path / "run")
    assert [step for step, _ in found] == [15, 30]
    model = GPT2LMHeadModel.from_pretrained(str(found[-1][1]))
    assert model.config.vocab_size == len(json.loads((found[-1][1] / "tokenizer.json").read_text())["model"]["vocab"])
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in lines if r["kind"] == "eval"]
    assert evals[-1]["step"] == 30 and evals[-1]["lm_loss"] < np.log(model.config.vocab_size)  # learned something
    assert evals[-1]["lm_acc"] > run["baseline"]["lm_acc"]
    assert "next_token" not in evals[-1]  # a decoder's attention cannot show it: not logged (no 0 either)
    assert 0 <= evals[-1]["previous_token"] <= 1
    # emergence over its checkpoints: next_token n/a (null, not 0) at every step, the other patterns scored
    from attnlens import capture
    from attnlens.pretraining.emergence import emergence, write_emergence

    result = emergence(tmp_path / "run", limit=8, progress=False)
    assert result.steps == [15, 30] and result.causal and "later tokens" in result.undefined["next_token"]
    assert result.best["next_token"] == [None, None] and all(v is not None for v in result.best["previous_token"])
    paths = write_emergence(result, tmp_path / "emergence")
    saved = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert saved["best"]["next_token"] == [None, None] and saved["chance"]["next_token"] is None
    assert "n/a" in paths["html"].read_text() and "   n/a" in result.summary()
    # and the checkpoint is a causal model everywhere attnlens captures it
    cap = capture("the cat ran .", model=str(found[-1][1]))
    assert cap.causal and np.abs(np.triu(cap.attentions, 1)).max() == 0


def test_clm_and_mlm_runs_see_the_same_tokens(tmp_path):
    """Same seed and settings: the two objectives are fed the very same pairs (one token budget)."""
    from attnlens.pretraining.data import Masker, PairStream, make_batch, make_lm_batch

    docs = [[np.arange(10 * d + s, 10 * d + s + 5, dtype=np.int32) for s in range(4)] for d in range(1, 12)]
    ids = {"cls": 1, "sep": 2, "pad": 0}
    masker = Masker(3, (0, 1, 2, 3), 200)
    mlm = PairStream(docs, 24, ids, masker, 4, seed=1, make=make_batch)
    clm = PairStream(docs, 24, ids, masker, 4, seed=1, make=make_lm_batch)
    for step in (0, 7):
        a, b = mlm.batch(step), clm.batch(step)
        torch.testing.assert_close(a.attention_mask, b.attention_mask)
        torch.testing.assert_close(torch.where(a.labels != -100, a.labels, a.input_ids), b.input_ids)  # unmasked
        assert (b.labels[b.attention_mask.bool()] == b.input_ids[b.attention_mask.bool()]).all()


def test_clm_resume_after_kill_continues_exactly(tmp_path):
    from transformers import GPT2LMHeadModel

    args = _args(tmp_path, steps=150, save_every=4)
    killed = tmp_path / "killed"
    with one_torch_thread():
        cli("pretrain", "--out", str(tmp_path / "straight"), *args)
        saved = kill_after_checkpoint("pretrain", killed, args)
        assert saved[-1][0] < 150, "the run was not killed mid-way"
        for _, folder in saved:  # every checkpoint left behind is complete and loads
            GPT2LMHeadModel.from_pretrained(str(folder))
        cli("pretrain", "--out", str(killed), "--resume", "--no-progress")
    a = assert_same_final_weights(tmp_path / "straight", killed)
    assert any(name.startswith("transformer.h.") for name in a)
    steps = [json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 150


def test_clm_two_process_ddp_equals_one_process(tmp_path):
    args = _args(tmp_path, steps=6, save_every=1000, seed=2)
    assert_two_processes_train_like_one(tmp_path, args, steps=6)


def test_objective_errors(tmp_path):
    result = cli("pretrain", "--out", str(tmp_path / "x"), "--objective", "gpt", "--steps", "1", check=False)
    assert result.returncode == 2 and "unknown objective 'gpt'" in result.output
    cli("pretrain", "--out", str(tmp_path / "run"), *_args(tmp_path, steps=2, save_every=2))
    result = cli("pretrain", "--out", str(tmp_path / "run"), "--resume", "--objective", "mlm-nsp", check=False)
    assert result.returncode == 2 and "objective" in result.output
    with pytest.raises(AttnlensError, match="unknown objective"):
        from attnlens.pretraining.config import TrainConfig

        TrainConfig(objective="MLM")
