"""Pretraining: pairs, masking statistics, training, checkpoints, resume after kill, DDP, predictions, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from attnlens import AttnlensError
from attnlens.pretraining.config import TrainConfig
from attnlens.pretraining.data import IS_NEXT, NOT_NEXT, Masker, PairStream, make_pairs

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
WORDS = ("the a store went bought fresh strawberries man dog cat ran to at of in on is was big small red "
         "house tree river walked saw green old new").split()


def synth_documents(n_docs=40, seed=0):
    rng = random.Random(seed)
    return [[" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))) + " ." for _ in range(rng.randint(3, 10))]
            for _ in range(n_docs)]


def write_corpus(path: Path, docs) -> Path:
    path.write_text("\n\n".join("\n".join(d) for d in docs) + "\n", encoding="utf-8")
    return path


def small_config(**kw):
    base = dict(size="tiny", steps=6, batch_size=8, seq_len=32, vocab_size=120, eval_every=1000, save_every=1000,
                eval_pairs=32, head_score_pairs=8, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def cli(*args, check=True):
    """Run an attnlens command in-process (Typer's test runner): exit code, one-line error on stderr."""
    from typer.testing import CliRunner

    from attnlens.cli import (
        app,
        commands,  # noqa: F401  (registers the commands)
    )

    result = CliRunner().invoke(app, list(args))
    if check and result.exit_code != 0:
        raise AssertionError(f"attnlens {' '.join(args)} failed ({result.exit_code}): {result.output[-2000:]}"
                             f" {result.exception!r}")
    result.returncode = result.exit_code
    return result


def vocab_file(folder: Path, docs) -> Path:
    """A fixed vocab.txt: WordPiece training breaks ties in hash order, so runs compared for equality share one."""
    from attnlens.pretraining.vocab import save_tokenizer, train_wordpiece

    save_tokenizer(train_wordpiece((s for d in docs for s in d), 120), folder)
    return folder / "vocab.txt"


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    from attnlens.pretraining.checkpoint import list_checkpoints

    return load_file(str(list_checkpoints(run_dir)[-1][1] / "model.safetensors"))


def assert_same_final_weights(run_a: Path, run_b: Path) -> dict[str, torch.Tensor]:
    """Both runs' newest checkpoints hold bit-identical weights; returns run_a's."""
    a, b = final_weights(run_a), final_weights(run_b)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    return a


@contextmanager
def one_torch_thread():
    """torch on one thread while the block runs, as in the subprocesses (OMP_NUM_THREADS=1): float sums depend on
    the thread split, so a run in this process matches one in a subprocess only then."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# --- pairs and masking ----------------------------------------------------------------------------------

IDS = {"cls": 1, "sep": 2, "pad": 0}


def id_documents(n_docs=30, seed=0):
    """Documents of token ids that tell their document and order: doc d uses ids 1000*(d+1) + running number."""
    rng = np.random.default_rng(seed)
    docs = []
    for d in range(n_docs):
        counter = 1000 * (d + 1)
        doc = []
        for _ in range(rng.integers(2, 12)):
            n = int(rng.integers(2, 15))
            doc.append(np.arange(counter, counter + n, dtype=np.int32))
            counter += n
        docs.append(doc)
    return docs


def test_pairs_follow_bert_recipe():
    pairs = make_pairs(id_documents(), 48, IDS, np.random.default_rng(0))
    assert len(pairs) > 50
    assert 0.4 < (pairs.next_sentence_label == IS_NEXT).mean() < 0.6
    for ids, types, n, label in zip(pairs.input_ids, pairs.token_type_ids, pairs.lengths, pairs.next_sentence_label):
        assert n <= 48 and ids[0] == IDS["cls"] and ids[n - 1] == IDS["sep"] and (ids[n:] == IDS["pad"]).all()
        seps = np.flatnonzero(ids == IDS["sep"])
        assert len(seps) == 2
        a, b = ids[1:seps[0]], ids[seps[0] + 1:seps[1]]
        assert len(a) and len(b)
        assert (types[:seps[0] + 1] == 0).all() and (types[seps[0] + 1:n] == 1).all() and (types[n:] == 0).all()
        assert len(set(a // 1000)) == 1 and len(set(b // 1000)) == 1  # each side is one document's text
        assert (np.diff(a) == 1).all() or len(a) == 1  # contiguous text (truncation only trims the ends)
        if label == IS_NEXT:
            assert a[0] // 1000 == b[0] // 1000 and b.min() > a.max()  # B follows A in the same document
        else:
            assert label == NOT_NEXT and a[0] // 1000 != b[0] // 1000
    assert (pairs.lengths < 48).mean() > 0.05  # some shorter sequences


def test_masking_statistics_over_many_batches():
    vocab, special = 500, (0, 1, 2, 3, 4)
    masker = Masker(mask_id=4, special_ids=special, vocab_size=vocab)
    gen = torch.Generator().manual_seed(0)
    chosen_total = candidates = n_mask = n_random = n_kept = 0
    for _ in range(200):
        ids = torch.randint(5, vocab, (32, 64), generator=gen)
        lengths = torch.randint(8, 65, (32,), generator=gen)
        ids[torch.arange(64)[None] >= lengths[:, None]] = 0  # padding
        ids[:, 0] = 2
        ids[torch.arange(32), lengths - 1] = 3
        masked, labels, chosen = masker(ids, gen)
        special_pos = torch.isin(ids, torch.tensor(special))
        assert not (chosen & special_pos).any()  # [CLS], [SEP], [PAD] are never chosen
        assert (masked[special_pos] == ids[special_pos]).all()
        assert ((labels != -100) == chosen).all() and (labels[chosen] == ids[chosen]).all()
        assert (masked[~chosen] == ids[~chosen]).all()  # only chosen positions change
        chosen_total += int(chosen.sum())
        candidates += int((~special_pos).sum())
        n_mask += int((masked[chosen] == 4).sum())
        changed = chosen & (masked != ids) & (masked != 4)
        assert not torch.isin(masked[changed], torch.tensor(special)).any()  # random tokens are real tokens
        n_random += int(changed.sum())
        n_kept += int((chosen & (masked == ids)).sum())
    rate = chosen_total / candidates
    assert abs(rate - 0.15) < 0.002, rate  # ~210k candidates: the sampling error is ~0.0003
    # a random replacement equal to the original counts as kept: expected 0.1 * 1/495 of chosen
    assert abs(n_mask / chosen_total - 0.8) < 0.01
    assert abs(n_random / chosen_total - 0.1) < 0.008
    assert abs(n_kept / chosen_total - 0.1) < 0.008


def test_masks_are_fresh_per_step_and_reproducible():
    masker = Masker(mask_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=5000)
    docs = id_documents()
    a = PairStream(docs, 48, IDS, masker, batch_size=16, seed=7)
    b = PairStream(docs, 48, IDS, masker, batch_size=16, seed=7)
    assert torch.equal(a.batch(5).input_ids, b.batch(5).input_ids)
    assert torch.equal(a.batch(5).labels, b.batch(5).labels)
    # an epoch later the same pairs get new masks (and new pair boundaries)
    steps_per_epoch = a.epoch_size // 16
    assert not torch.equal(a.batch(0).labels, a.batch(steps_per_epoch * 16 // 16 + steps_per_epoch).labels)


def test_lr_schedule_warmup_flat_decay():
    cfg = TrainConfig(steps=100, warmup_steps=10, decay_fraction=0.3)
    f = [cfg.lr_factor(s) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[69] == 1.0
    assert f[70] == 1.0 and f[85] == pytest.approx(0.5) and f[99] == pytest.approx(1 / 30)


# --- training, checkpoints, loading -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from attnlens.pretraining import pretrain

    out = tmp_path_factory.mktemp("run") / "r"
    pretrain(synth_documents(), None, out, small_config(steps=8, eval_every=4, save_every=4), device="cpu",
             progress=False)
    return out


def test_training_writes_loadable_checkpoints_and_metrics(trained_run):
    from transformers import BertForPreTraining

    from attnlens import capture, load_model
    from attnlens.pretraining.checkpoint import list_checkpoints

    steps = [s for s, _ in list_checkpoints(trained_run)]
    assert steps == [4, 8]
    folder = list_checkpoints(trained_run)[-1][1]
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    model = BertForPreTraining.from_pretrained(str(folder))  # plain transformers
    assert model.config.num_hidden_layers == 2
    lm = load_model(str(folder), model_class=BertForPreTraining)
    cap = capture("the man went to the store .", "he bought a red tree .", model=lm)
    assert cap.attentions.shape[:2] == (2, 4)
    np.testing.assert_allclose(cap.attentions.sum(-1), 1.0, atol=1e-5)
    records = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8]
    for r in evals:
        assert 0 <= r["mlm_acc"] <= 1 and 0 <= r["nsp_acc"] <= 1
        assert np.array(r["previous_token_scores"]).shape == (2, 4)
    run = json.loads((trained_run / "run.json").read_text())
    assert run["baseline"]["eval_pairs"] > 0 and run["corpus"]["train_documents"] > 0


def test_predictions_match_the_models_own_heads(trained_run):
    from attnlens.pretraining import fill_mask, load_pretrained, next_sentence_probability

    lm = load_pretrained(trained_run)
    preds = fill_mask("the man [MASK] to the [MASK] .", model=trained_run, top_k=3)
    assert len(preds) == 2
    enc = lm.tokenizer("the man [MASK] to the [MASK] .", return_tensors="pt")
    with torch.no_grad():
        out = lm.model(**enc)
    probs = torch.softmax(out.prediction_logits[0], -1)  # [T, vocab]
    for pred in preds:
        assert enc["input_ids"][0, pred.position] == lm.tokenizer.mask_token_id
        top = probs[pred.position].topk(3)
        assert pred.tokens == lm.tokenizer.convert_ids_to_tokens(top.indices.tolist())
        np.testing.assert_allclose(pred.probabilities, top.values.numpy(), rtol=1e-5)
    p = next_sentence_probability("the dog ran .", "a cat saw a tree .", model=trained_run)
    enc = lm.tokenizer("the dog ran .", "a cat saw a tree .", return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(lm.model(**enc).seq_relationship_logits[0], -1)[0]
    assert p == pytest.approx(float(expected), rel=1e-5)


def test_logged_head_scores_are_the_atlas_scores(trained_run):
    from attnlens import atlas
    from attnlens.pretraining import load_pretrained
    from attnlens.pretraining.head_scores import model_head_scores

    lm = load_pretrained(trained_run)
    pairs = [("the man went to the store .", "a dog ran ."), ("a cat saw a tree .", "the tree was tall .")]
    logged = model_head_scores(lm, pairs)
    reference = atlas(pairs, model=lm, progress=False).scores
    assert set(logged) == {"previous_token", "next_token"}
    for name, scores in logged.items():
        assert scores.shape == (lm.num_layers, lm.num_heads)
        np.testing.assert_array_equal(scores, reference[name])


def test_resume_after_kill_continues_exactly(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", synth_documents(60))
    args = ["--corpus", str(corpus), "--size", "tiny", "--steps", "150", "--batch-size", "8", "--seq-len", "32",
            "--vocab", str(vocab_file(tmp_path / "vocab", synth_documents(60))), "--save-every", "4",
            "--eval-every", "1000", "--seed", "5", "--device", "cpu", "--no-progress"]
    with one_torch_thread():
        cli("pretrain", "--out", str(tmp_path / "straight"), *args)
        _kill_and_resume(tmp_path, args)
    assert_same_final_weights(tmp_path / "straight", tmp_path / "killed")
    steps = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 150


class Killed(Exception):
    """Stands for a SIGKILL right after a checkpoint was written."""


@contextmanager
def dies_after_checkpoint(step: int):
    """Within the block, a run raises Killed right after writing checkpoint `step` (an in-process kill)."""
    from attnlens.pretraining import checkpoint as ckpt

    real_save = ckpt.save_checkpoint

    def save_then_die(run_dir, saved_step, *args, **kwargs):
        path = real_save(run_dir, saved_step, *args, **kwargs)
        if saved_step == step:
            raise Killed
        return path

    ckpt.save_checkpoint = save_then_die
    try:
        with pytest.raises(Killed):
            yield
    finally:
        ckpt.save_checkpoint = real_save


def kill_after_checkpoint(command: str, run_dir, args, *, step: int = 12, timeout: float = 120) -> list:
    """Start `attnlens COMMAND --out RUN_DIR ARGS` in a subprocess and SIGKILL it once checkpoint `step` exists;
    returns the checkpoints it left, (step, folder) oldest first."""
    from attnlens.pretraining.checkpoint import list_checkpoints

    proc = subprocess.Popen([sys.executable, "-m", "attnlens", command, "--out", str(run_dir), *args], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not (run_dir / "checkpoints" / f"step-{step:06d}").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = list_checkpoints(run_dir)
    assert saved, f"the {command} run left no checkpoint within {timeout} s"
    return saved


def _kill_and_resume(tmp_path, args):
    """Start the run in a subprocess, SIGKILL it after a checkpoint, check what it left, resume in-process."""
    from transformers import BertForPreTraining

    killed = tmp_path / "killed"
    saved = kill_after_checkpoint("pretrain", killed, args)
    assert saved[-1][0] < 150, "the run was not killed mid-way"
    for _, folder in saved:  # every checkpoint left behind is complete and loads
        BertForPreTraining.from_pretrained(str(folder))
    stamps = {folder: (folder / "model.safetensors").stat().st_mtime_ns for _, folder in saved}
    metrics = killed / "metrics.jsonl"
    logged = [line for line in (metrics.read_text().splitlines() if metrics.exists() else [])
              if json.loads(line)["step"] <= saved[-1][0]]
    cli("pretrain", "--out", str(killed), "--resume", "--no-progress")
    # a resume continues after the newest checkpoint: it does not retrain (and rewrite) the steps before it
    for folder, stamp in stamps.items():
        assert (folder / "model.safetensors").stat().st_mtime_ns == stamp, f"{folder.name} was written again"
    assert metrics.read_text().splitlines()[:len(logged)] == logged


def test_two_process_ddp_equals_one_process(tmp_path):
    corpus = write_corpus(tmp_path / "corpus.txt", synth_documents(60))
    args = ["--corpus", str(corpus), "--size", "tiny", "--steps", "6", "--batch-size", "8", "--seq-len", "32",
            "--vocab", str(vocab_file(tmp_path / "vocab", synth_documents(60))), "--eval-every", "1000", "--seed", "2",
            "--device", "cpu", "--no-progress"]
    assert_two_processes_train_like_one(tmp_path, args, steps=6)


def assert_two_processes_train_like_one(tmp_path, args: list[str], steps: int, command: str = "pretrain") -> None:
    """`attnlens COMMAND ARGS` (pretrain, finetune) under torchrun with 2 processes ends with one process's weights
    (DDP averages the global batch's gradients)."""
    cli(command, "--out", str(tmp_path / "one"), *args)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "attnlens", command, "--out", str(tmp_path / "two"), *args],
                          env=ENV, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = json.loads((tmp_path / "two" / "checkpoints" / f"step-{steps:06d}" / "trainer_state.json").read_text())
    assert state["world_size"] == 2
    a, b = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=2e-5, msg=name)


# --- bad input ------------------------------------------------------------------------------------------

def test_too_few_documents_is_a_clear_error(tmp_path):
    from attnlens.pretraining import pretrain

    with pytest.raises(AttnlensError, match="at least 2"):
        pretrain([["one lonely document .", "with two sentences ."]], None, tmp_path / "r", small_config(),
                 device="cpu", progress=False)
    with pytest.raises(AttnlensError, match="at least 2"):
        make_pairs([[np.arange(5)]], 32, IDS, np.random.default_rng(0))


def test_config_errors():
    with pytest.raises(AttnlensError, match="position embeddings"):
        TrainConfig(size="tiny", seq_len=100)
    with pytest.raises(AttnlensError, match="unknown size"):
        TrainConfig(size="huge")
    with pytest.raises(AttnlensError, match="steps"):
        TrainConfig(steps=0)


def test_cli_bad_inputs(tmp_path, trained_run):
    one_doc = write_corpus(tmp_path / "one.txt", [["a single document .", "no second one ."]])
    proc = cli("pretrain", "--corpus", str(one_doc), "--out", str(tmp_path / "x"), "--vocab-size", "50",
               "--device", "cpu", check=False)
    assert proc.returncode == 2 and "at least 2" in proc.stderr and "Traceback" not in proc.stderr

    binary = tmp_path / "bad.txt"
    binary.write_bytes(b"caf\xe9 au lait\n\nsecond doc\n")
    proc = cli("pretrain", "--corpus", str(binary), "--out", str(tmp_path / "y"), check=False)
    assert proc.returncode == 2 and "UTF-8" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

    proc = cli("pretrain", "--corpus", str(one_doc), "--out", str(tmp_path / "z"), "--seq-len", "200", check=False)
    assert proc.returncode == 2 and "position embeddings" in proc.stderr

    proc = cli("pretrain", "--corpus", str(one_doc), "--out", str(trained_run), check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr

    proc = cli("pretrain", "--out", str(trained_run), "--resume", "--steps", "99", check=False)
    assert proc.returncode == 2 and "differ" in proc.stderr

    proc = cli("predict", "fill-mask", "no mask here", "--model", str(trained_run), check=False)
    assert proc.returncode == 2 and "[MASK]" in proc.stderr

    proc = cli("predict", "nsp", "only one", "", "--model", str(trained_run), check=False)
    assert proc.returncode == 2 and "empty" in proc.stderr

    proc = cli("predict", "fill-mask", "a [MASK] .", "--model", str(tmp_path), check=False)
    assert proc.returncode == 2 and "neither" in proc.stderr


def test_predictions_need_pretraining_heads(default_model):
    from attnlens.capturing import default_model_path
    from attnlens.pretraining import fill_mask, next_sentence_probability

    with pytest.raises(AttnlensError, match="pretraining heads"):
        fill_mask("a [MASK] .", model=str(default_model_path()))
    with pytest.raises(AttnlensError, match="no masked-LM head"):
        fill_mask("a [MASK] .", model=default_model)  # a LoadedModel without the head
    with pytest.raises(AttnlensError, match="empty"):
        next_sentence_probability("a cat .", "  ")


def test_fill_mask_works_with_any_masked_lm_head_and_nsp_needs_bert_pretraining(tmp_path):
    from attnlens.capturing import resolve_model
    from attnlens.pretraining import fill_mask, load_pretrained, next_sentence_probability
    from server_helpers import save_tiny_mlm

    folder = save_tiny_mlm(tmp_path / "mlm")
    lm = load_pretrained(folder)
    assert type(lm.model).__name__ == "BertForMaskedLM"
    from transformers import AutoModelForMaskedLM

    assert resolve_model(str(folder), model_class=AutoModelForMaskedLM) is lm  # the one model cache
    [pred] = fill_mask("I went to the [MASK].", model=folder, top_k=3)
    enc = lm.tokenizer("I went to the [MASK].", return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(lm.model(**enc).logits[0, pred.position], -1)  # [vocab]
    top = probs.topk(3)
    assert pred.tokens == lm.tokenizer.convert_ids_to_tokens(top.indices.tolist())
    np.testing.assert_allclose(pred.probabilities, top.values.numpy(), rtol=1e-5)
    with pytest.raises(AttnlensError, match="needs a BertForPreTraining"):
        next_sentence_probability("a cat .", "a dog .", model=folder)


def test_checkpoint_discovery_is_one_rule(tmp_path):
    from attnlens.pretraining.checkpoint import latest_checkpoint, list_checkpoints, model_folder

    run = tmp_path / "run"
    for name, complete in (("step-000004", True), ("step-000012", True), ("step-000020", False),
                           (".tmp-step-000030", True), ("step-x", True)):
        (run / "checkpoints" / name).mkdir(parents=True)
        if complete:
            (run / "checkpoints" / name / "config.json").write_text("{}")
    assert [s for s, _ in list_checkpoints(run)] == [4, 12]  # loadable model folders only
    assert latest_checkpoint(run) == model_folder(run) == run / "checkpoints" / "step-000012"
    assert model_folder(run / "checkpoints" / "step-000004") == run / "checkpoints" / "step-000004"
    assert latest_checkpoint(tmp_path) is None and list_checkpoints(tmp_path / "nothing") == []
    with pytest.raises(AttnlensError, match="does not exist"):
        model_folder(tmp_path / "nothing")
    with pytest.raises(AttnlensError, match="neither a model folder"):
        model_folder(run / "checkpoints")


def test_emergence_runs_the_atlas_on_every_checkpoint(trained_run, tmp_path):
    from transformers import BertForPreTraining

    from attnlens import atlas, load_model
    from attnlens.pretraining.checkpoint import list_checkpoints
    from attnlens.pretraining.emergence import emergence, write_emergence

    result = emergence(trained_run, limit=12, progress=False)
    assert result.steps == [4, 8] and len(result.minutes) == 2
    assert {"next_token", "previous_token", "sep", "cls", "bag_of_words"} <= set(result.best)
    # the recorded best score is the atlas's own maximum for that checkpoint
    from attnlens.pretraining.emergence import heldout_pairs

    lm = load_model(str(list_checkpoints(trained_run)[-1][1]), model_class=BertForPreTraining)
    pairs = heldout_pairs(trained_run, None)
    fitting = [p for p in pairs if len(lm.tokenizer(*p)["input_ids"]) <= lm.max_length]
    chosen = [fitting[i] for i in np.linspace(0, len(fitting) - 1, min(12, len(fitting))).astype(int)]
    direct = atlas(chosen, model=lm, progress=False)
    assert result.best["previous_token"][-1] == pytest.approx(float(np.nanmax(direct.scores["previous_token"])),
                                                              abs=1e-4)
    paths = write_emergence(result, tmp_path)
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"
    page = paths["html"].read_text()
    assert "data:image/png;base64," in page and "<script" not in page
    assert json.loads(paths["json"].read_text())["steps"] == [4, 8]
    assert cli("emergence", str(tmp_path / "nothing-here"), check=False).returncode == 2


def test_shipped_checkpoint_predicts_without_model_option():
    from transformers import BertForPreTraining

    from attnlens.pretraining import shipped_checkpoint

    folder = shipped_checkpoint()
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 25e6
    assert (folder / "README.md").is_file() and (folder / "model.safetensors").is_file()
    BertForPreTraining.from_pretrained(str(folder))
    out = cli("predict", "fill-mask", "the [MASK] module provides functions for working with [MASK] .", "-k", "3")
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(f"[MASK] {i}") for i, line in enumerate(lines, 1))
    out = cli("predict", "nsp", "I went to the store.", "At the store, I bought fresh strawberries.")
    p_next, p_not = (float(x) for x in out.stdout.split()[1::2])
    assert p_next + p_not == pytest.approx(1.0, abs=2e-3)
