"""Pretraining checks that a wrong trainer fails: resume from the checkpoint (not a restart), RNG restored
(dropout on), masking through the trainer's own batches, DDP gradient scale, evaluation accuracies against an
independent computation, and the shipped checkpoint's files and README figures against a fresh evaluation."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlens.pretraining.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pretraining import ENV, dies_after_checkpoint, final_weights, synth_documents, vocab_file, write_corpus


def _config(**kw):
    base = dict(size="tiny", steps=10, batch_size=8, seq_len=32, vocab_size=120, eval_every=1000, save_every=4,
                eval_pairs=32, head_score_pairs=0, seed=4)
    base.update(kw)
    return TrainConfig(**base)


def _metrics(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.jsonl").read_text().splitlines()


@pytest.mark.parametrize("size", ["tiny", "mini"])  # mini has dropout 0.1: only a restored RNG repeats its masks
def test_resume_starts_at_the_checkpoint_and_restores_the_rng(tmp_path, size):
    from attnlens.pretraining import pretrain
    from attnlens.pretraining.trainer import Trainer

    docs = synth_documents(50)
    vocab = str(vocab_file(tmp_path / "vocab", docs))
    cfg = _config(size=size, eval_every=2)  # a metrics line every 2 steps
    pretrain(docs, None, tmp_path / "straight", cfg, vocab=vocab, device="cpu", progress=False)

    with dies_after_checkpoint(8):
        pretrain(docs, None, tmp_path / "killed", cfg, vocab=vocab, device="cpu", progress=False)
    before = _metrics(tmp_path / "killed")
    stamps = {p.name: (p / "model.safetensors").stat().st_mtime_ns
              for p in (tmp_path / "killed" / "checkpoints").iterdir()}

    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter: the checkpoint's is restored
    trainer = Trainer(docs, None, tmp_path / "killed", None, resume=True, device="cpu", progress=False)
    assert trainer.step == 8 and trainer.tokens_seen > 0  # it continues at the checkpoint, not from step 0
    trainer.train()

    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    after = _metrics(tmp_path / "killed")
    assert after[:len(before)] == before  # lines up to step 8 were written by the first process, kept as they were
    records = [(json.loads(line)["step"], json.loads(line)["kind"]) for line in after]
    assert len(records) == len(set(records)) and records[-1][0] == 10  # each (step, kind) once
    assert [r[0] for r in records] == sorted(r[0] for r in records)
    for name, stamp in stamps.items():  # checkpoints up to the resume point are not written again
        assert (tmp_path / "killed" / "checkpoints" / name / "model.safetensors").stat().st_mtime_ns == stamp, name


def test_trainer_batches_mask_at_the_configured_rate_never_specials_fresh_every_step(tmp_path):
    from attnlens.pretraining.trainer import Trainer

    docs = synth_documents(40, seed=2)
    for d, doc in enumerate(docs[:20]):  # literal special tokens in the text: [MASK] and [UNK] must never be chosen
        doc[d % len(doc)] = doc[d % len(doc)].replace(" ", " [MASK] ", 1).replace(" .", " [UNK] .")
    trainer = Trainer(docs, None, tmp_path / "r", _config(mask_prob=0.25, seed=9), device="cpu", progress=False)
    tok = trainer.tokenizer
    specials = torch.tensor([tok.pad_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id,
                             tok.unk_token_id])
    chosen_total = candidates = 0
    overlaps, text_specials = [], 0
    previous = None
    for step in range(60):
        batch = trainer.stream.batch(step)
        chosen = batch.labels != -100  # [B, T]
        original = torch.where(chosen, batch.labels, batch.input_ids)  # [B, T]
        is_special = torch.isin(original, specials)
        real = batch.attention_mask.bool()
        assert not (chosen & is_special).any(), "a special token ([PAD]/[CLS]/[SEP]/[MASK]/[UNK]) was chosen"
        assert not (chosen & ~real).any()
        text_specials += int((real & torch.isin(original, specials[3:])).sum())
        chosen_total += int(chosen.sum())
        candidates += int((real & ~is_special).sum())
        if previous is not None:  # independent masks: a position chosen at step s is chosen at s+1 at the base rate
            both = chosen & previous & real
            overlaps.append(int(both.sum()) / max(1, int((previous & real).sum())))
        previous = chosen
    assert text_specials > 20  # the corpus really puts [MASK] / [UNK] into the batches
    assert abs(chosen_total / candidates - 0.25) < 0.01, chosen_total / candidates  # the config's rate
    assert np.mean(overlaps) < 0.3, np.mean(overlaps)  # ~0.25 x share of candidates; one fixed seed gives ~0.6+


_DRIVER = """
import json, sys, torch
torch.set_num_threads(1)
from attnlens.corpus import read_documents
from attnlens.pretraining import TrainConfig, pretrain
pretrain(read_documents(sys.argv[1]), None, sys.argv[2], TrainConfig(**json.loads(sys.argv[3])), vocab=sys.argv[4],
         device="cpu", progress=False)
"""


def _run_one_and_ddp(tmp_path, settings: dict):
    docs = synth_documents(60)
    corpus = write_corpus(tmp_path / "corpus.txt", docs)
    vocab = str(vocab_file(tmp_path / "vocab", docs))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    for out, launcher in (("one", [sys.executable]),
                          ("two", [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                   "--nproc_per_node", "2"])):
        proc = subprocess.run([*launcher, str(driver), str(corpus), str(tmp_path / out), json.dumps(settings), vocab],
                              env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "two" / "checkpoints" / f"step-{settings['steps']:06d}" /
                        "trainer_state.json").read_text())
    assert state["world_size"] == 2
    return final_weights(tmp_path / "one"), final_weights(tmp_path / "two")


def test_ddp_averages_gradients_of_the_global_batch(tmp_path):
    # Adam ignores a global gradient scale; with eps 1 (far above sqrt(v)) and no clipping its update is
    # ~lr * gradient, so a DDP loss that is not divided by the world size shows as a halved update.
    settings = dict(size="tiny", steps=4, batch_size=8, seq_len=32, vocab_size=120, eval_every=1000,
                    save_every=1000, eval_pairs=16, head_score_pairs=0, seed=2, lr=1.0, warmup_steps=1,
                    adam_eps=1.0, clip_norm=1e9, weight_decay=0.0)
    a, b = _run_one_and_ddp(tmp_path, settings)
    moved = max(float((a[n] - b[n]).abs().max()) for n in a)
    assert moved < 1e-5, moved


def test_ddp_with_dropout_stays_within_the_documented_bound(tmp_path):
    # with dropout each process draws its own masks: not bit-equal to one process (see objective.py's docstring)
    settings = dict(size="mini", steps=6, batch_size=8, seq_len=32, vocab_size=120, eval_every=1000,
                    save_every=1000, eval_pairs=16, head_score_pairs=0, seed=2)
    a, b = _run_one_and_ddp(tmp_path, settings)
    diff = max(float((a[n] - b[n]).abs().max()) for n in a)
    assert diff < 1.5e-2, diff


def _independent_eval(model, batch, mask_id):
    """Accuracies from the model's full forward (every position's logits), computed here, not by the trainer."""
    with torch.no_grad():
        out = model(input_ids=batch.input_ids, token_type_ids=batch.token_type_ids,
                    attention_mask=batch.attention_mask)
    chosen = batch.labels != -100
    shown, target = batch.input_ids[chosen], batch.labels[chosen]
    right = out.prediction_logits[chosen].argmax(-1) == target
    kinds = {"mask": shown == mask_id, "random": (shown != mask_id) & (shown != target), "kept": shown == target}
    result = {"mlm_acc": float(right.float().mean())}
    result.update({f"mlm_acc_{k}": float(right[m].float().mean()) for k, m in kinds.items()})
    result["nsp_acc"] = float((out.seq_relationship_logits.argmax(-1) == batch.next_sentence_label).float().mean())
    result["kind_counts"] = {k: int(m.sum()) for k, m in kinds.items()}
    return result


def test_evaluation_accuracies_match_an_independent_computation(tmp_path):
    from attnlens.pretraining import pretrain
    from attnlens.pretraining.trainer import Trainer

    docs = synth_documents(200, seed=1)  # 5% held out: ~10 documents
    cfg = _config(steps=30, eval_every=30, save_every=30, eval_pairs=200)
    run = pretrain(docs, None, tmp_path / "r", cfg, device="cpu", progress=False)
    logged = [json.loads(line) for line in _metrics(run) if '"eval"' in line][-1]
    trainer = Trainer(docs, None, run, None, resume=True, device="cpu", progress=False)  # the final weights
    trainer.model.eval()
    mine = _independent_eval(trainer.model, trainer.eval_batch, trainer.tokenizer.mask_token_id)
    counts = mine.pop("kind_counts")
    assert counts["mask"] > 3 * counts["random"] > 0 and counts["kept"] > 0  # 80/10/10
    assert 0.05 < mine["mlm_acc_mask"] < 0.95  # not trivially 0 or 1 after 30 steps on this corpus
    for name, value in mine.items():
        assert logged[name] == pytest.approx(value, abs=1e-6), name


# --- the shipped checkpoint ---------------------------------------------------------------------------------

def _shipped():
    from attnlens.pretraining import shipped_checkpoint

    folder = shipped_checkpoint()
    run = json.loads((folder / "run.json").read_text())
    evals = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines() if '"eval"' in line]
    return folder, run, evals


def test_shipped_run_json_split_matches_the_corpus():
    from attnlens import corpus as corpora
    from attnlens.pretraining.data import fingerprint

    _, run, _ = _shipped()
    info = run["corpus"]
    held = corpora.load_documents(info["dataset"], split="heldout")
    train = corpora.load_documents(info["dataset"], split="train")
    assert info["heldout_sha1"] == fingerprint(held) and info["train_sha1"] == fingerprint(train)
    assert info["heldout_documents"] == len(held) and info["train_documents"] == len(train)
    assert info["heldout_sentences"] == sum(len(d) for d in held)


def _section(text: str, title: str) -> str:
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:] if end < 0 else text[start:end]


def _headline(text: str) -> str:
    """The one paragraph or list item that starts with 'Headline', joined into one line."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.lstrip("-* ").startswith("Headline")]
    assert len(starts) == 1, "one 'Headline ...' paragraph expected"
    out = [lines[starts[0]]]
    for line in lines[starts[0] + 1:]:
        if not line.strip() or line.lstrip().startswith(("- ", "* ", "|", "#")):
            break
        out.append(line.strip())
    return " ".join(out)


def test_shipped_checkpoint_headline_figures_are_a_fresh_evaluation():
    """The README's headline figures = the shipped weights evaluated now on today's held-out split (the trainer's
    evaluation batch built from run.json's settings; the atlas over 300 consecutive-sentence pairs)."""
    from transformers import BertForPreTraining

    from attnlens import atlas, load_model
    from attnlens import corpus as corpora
    from attnlens.pretraining.data import Masker, eval_batch, tokenize_documents
    from attnlens.pretraining.emergence import heldout_pairs

    folder, run, evals = _shipped()
    cfg = TrainConfig.from_dict(run["config"])
    assert evals[-1]["step"] == cfg.steps
    lm = load_model(str(folder), model_class=BertForPreTraining)
    tok, model = lm.tokenizer, lm.model.eval()
    held = corpora.load_documents(run["corpus"]["dataset"], split="heldout")
    masker = Masker(tok.mask_token_id, tuple(sorted(set(tok.all_special_ids))), len(tok), cfg.mask_prob)
    ids = {"cls": tok.cls_token_id, "sep": tok.sep_token_id, "pad": tok.pad_token_id}
    _, batch = eval_batch(tokenize_documents(held, tok), cfg, ids, masker)
    fresh = _independent_eval(model, batch, tok.mask_token_id)
    pairs = heldout_pairs(folder, None)
    fitting = [p for p in pairs if len(tok(*p)["input_ids"]) <= lm.max_length]
    chosen = [fitting[i] for i in np.linspace(0, len(fitting) - 1, min(300, len(fitting))).astype(int)]
    scores = atlas(chosen, model=lm, progress=False).scores
    expected = {"MLM accuracy at `[MASK]`": fresh["mlm_acc_mask"], "NSP accuracy": fresh["nsp_acc"],
                "previous-token head": float(np.nanmax(scores["previous_token"])),
                "next-token head": float(np.nanmax(scores["next_token"]))}
    if "heldout_sha1" in run["corpus"]:  # trained on today's split: the run's own last evaluation is the same
        for name in ("mlm_acc_mask", "mlm_acc", "nsp_acc"):
            assert evals[-1][name] == pytest.approx(fresh[name], abs=0.004), name  # thread count: rare argmax ties
    readme = _section((ROOT / "README.md").read_text(encoding="utf-8"), "## Pretraining")
    local = (folder / "README.md").read_text(encoding="utf-8")
    for text in (readme, local):
        line = _headline(text)
        for label, value in expected.items():
            found = re.search(re.escape(label) + r"[^0-9\n]{0,60}?([01]\.[0-9]{3})", line)
            assert found, (label, line)
            assert float(found.group(1)) == pytest.approx(value, abs=0.002), (label, value)
        assert f"{len(held)} held-out documents" in line
    assert f"{evals[-1]['tokens_seen'] / 1e6:.1f}M tokens" in readme
