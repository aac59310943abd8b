"""The training loop: AdamW with the config's lr schedule, clipping, held-out evaluation, atomic
checkpoints, exact resume, metrics.jsonl, a progress bar, and DDP through torchrun (gloo on CPU, nccl on GPU).

`TrainLoop` is the loop every objective shares; what it trains is pluggable: an `Objective` (the loss
and its statistics, pretraining/objective.py) and a `BatchStream` (global batch `step`, a pure function
of (seed, step), so a resumed or distributed run sees the batches of an uninterrupted one). `Trainer`
is pretraining from scratch (objective.PRETRAINING_OBJECTIVES: MLM + NSP, or next-token CLM on the same
inputs); attnlens.finetuning.trainer is the second stage.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..capturing import LoadedModel
from ..errors import AttnlensError
from ..io import atomic_write_text
from . import checkpoint as ckpt
from .config import TrainConfig
from .data import (
    Masker,
    PairStream,
    check_documents,
    eval_batch,
    fingerprint,
    packed_text_pairs,
    split_documents,
    tokenize_documents,
)
from .head_scores import model_head_scores, sentence_pairs
from .objective import PRETRAINING_OBJECTIVES, Objective
from .vocab import load_vocab, save_tokenizer, train_wordpiece

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
TOKENIZER_DIR = "tokenizer"


@dataclass
class Dist:
    """This process's place in a torchrun job (world 1 when run directly)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def _init_distributed(device: torch.device) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size())


def resolve_device(name: str) -> torch.device:
    """cpu, cuda (cuda:N) or auto (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AttnlensError("--device cuda was asked for but no CUDA GPU is available")
        if name == "cuda" and "LOCAL_RANK" in os.environ:
            name = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    elif name != "cpu":
        raise AttnlensError(f"unknown device {name!r}: use cpu, cuda or auto")
    return torch.device(name)


def _param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume:
        if not (run_dir / RUN_FILE).is_file():
            raise AttnlensError(f"cannot resume: {run_dir} is not a run folder (no {RUN_FILE})")
    elif run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise AttnlensError(f"{run_dir} already exists; pass --resume to continue that run or choose a new --out")


class BatchStream(Protocol):
    """The batches a TrainLoop trains on: `batch(step)` is global batch `step` (all processes' rows), a pure
    function of (seed, step); the batch has `.attention_mask` [B, T], `.rows(index)` and `.to(device)`."""

    def batch(self, step: int): ...


class TrainLoop:
    """The loop every objective shares, in `run_dir` (create it, or resume it from its newest checkpoint).

    A subclass's __init__ calls `_start`, sets `config` (a dataclass with to_dict/from_dict, steps, seed,
    batch_size, lr, lr_factor(step), weight_decay, adam_eps, clip_norm, eval_every, save_every),
    `tokenizer` and `stream` (a BatchStream), then calls `_build`. It defines new_model() (fresh weights,
    called after torch.manual_seed(config.seed)), load_model(folder) (a checkpoint), make_objective(model)
    (an Objective), run_record() (run.json), evaluate() (held-out metrics) and eval_message(result).
    """

    config_class = None  # the config dataclass (from_dict reads run.json's "config" on --resume)

    def _start(self, run_dir, config, device: str, resume: bool, progress: bool):
        """Device, torchrun processes, the run folder check; returns the config (the run's own on resume)."""
        import transformers  # noqa: PLC0415  (heavy: imported on first use, so `import attnlens` stays fast)

        transformers.logging.disable_progress_bar()
        transformers.logging.set_verbosity_error()
        self.run_dir = Path(run_dir)
        self.device = resolve_device(device)
        self.dist = _init_distributed(self.device)
        _check_run_dir(self.run_dir, resume)
        self.dist.barrier()  # every process checked before the first one creates the folder
        if resume:
            saved = self.config_class.from_dict(json.loads((self.run_dir / RUN_FILE).read_text())["config"])
            if config is not None and config.to_dict() != saved.to_dict():
                diff = [k for k, v in config.to_dict().items() if saved.to_dict()[k] != v]
                raise AttnlensError(f"--resume with settings that differ from the run's ({', '.join(diff)})")
            config = saved
        config = config or self.config_class()
        self.progress = progress and self.dist.main
        if config.batch_size % self.dist.world:
            raise AttnlensError(f"batch size {config.batch_size} does not split over {self.dist.world} processes")
        return config

    # --- what a subclass defines ----------------------------------------------------------------
    def new_model(self):
        raise NotImplementedError

    def load_model(self, folder: Path):
        raise NotImplementedError

    def make_objective(self, model) -> Objective:
        raise NotImplementedError

    def run_record(self) -> dict:
        raise NotImplementedError

    def evaluate(self) -> dict:
        raise NotImplementedError

    def eval_message(self, result: dict) -> str:
        return f"step {self.step} ({self.train_seconds / 60:.1f} min): " + ", ".join(
            f"{k} {v:.3f}" for k, v in result.items() if isinstance(v, float))

    # --- set-up -------------------------------------------------------------------------------
    def _build(self, resume: bool):
        cfg = self.config
        self.step, self.train_seconds, self.tokens_seen = 0, 0.0, 0
        resume_from = None
        if resume:
            ckpt.clean_partial(self.run_dir) if self.dist.main else None
            found = [c for c in ckpt.list_checkpoints(self.run_dir) if (c[1] / ckpt.OPTIMIZER_FILE).is_file()]
            resume_from = found[-1][1] if found else None
        if resume_from is not None:
            model = self.load_model(resume_from)
        else:
            torch.manual_seed(cfg.seed)
            model = self.new_model()
        self.model = model.to(self.device)
        self.model.train()
        self.optimizer = torch.optim.AdamW(_param_groups(self.model, cfg.weight_decay), lr=cfg.lr,
                                           betas=(0.9, 0.999), eps=cfg.adam_eps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, cfg.lr_factor)
        if resume_from is not None:
            state, optim_state = ckpt.load_resume_state(resume_from)
            self.optimizer.load_state_dict(optim_state)
            self.scheduler.load_state_dict(state["scheduler"])
            self.step, self.train_seconds, self.tokens_seen = (state["step"], state["train_seconds"],
                                                               state["tokens_seen"])
            torch.set_rng_state(torch.tensor(state["rng"]["torch"], dtype=torch.uint8))
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["rng"]["cuda"]])
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not resume:
                ckpt.write_json_atomic(self.run_dir / RUN_FILE, self.run_record())
            self._trim_metrics()
        self.loss = self.make_objective(self.model)  # the Objective itself (its norms, summarize, postfix)
        self.objective = self.loss
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.objective = DistributedDataParallel(self.loss, device_ids=ids)

    def _trim_metrics(self):
        """Drop log lines past the step being resumed from (they will be written again)."""
        path = self.run_dir / METRICS_FILE
        if path.exists():
            keep = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= self.step]
            atomic_write_text(path, "".join(line + "\n" for line in keep))

    def _log(self, record: dict):
        if self.dist.main:
            with open(self.run_dir / METRICS_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # --- training -----------------------------------------------------------------------------
    def _save(self):
        if self.dist.main:
            ckpt.save_checkpoint(self.run_dir, self.step, self.model, self.tokenizer, self.optimizer, {
                "scheduler": self.scheduler.state_dict(), "train_seconds": self.train_seconds,
                "tokens_seen": self.tokens_seen, "world_size": self.dist.world})
        self.dist.barrier()

    def train(self) -> Path:
        """Train up to config.steps; returns the run folder."""
        cfg = self.config
        per_rank = cfg.batch_size // self.dist.world
        rows = slice(self.dist.rank * per_rank, (self.dist.rank + 1) * per_rank)
        bar = None
        if self.progress:
            bar = tqdm(total=cfg.steps, initial=self.step, unit="step", dynamic_ncols=True, file=sys.stderr,
                       mininterval=1.0 if sys.stderr.isatty() else 30.0)
        window = torch.zeros(len(self.loss.stats))
        window_tokens, window_start = 0, time.perf_counter()
        try:
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                batch = self.stream.batch(self.step)
                norms = self.loss.norms(batch, self.dist.world)  # from the global batch
                tokens = int(batch.attention_mask.sum())
                local = batch.rows(rows).to(self.device)
                with self._autocast():
                    loss, stats = self.objective(local, *norms)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if self.device.type == "cuda":
                    torch.cuda.synchronize()
                self.train_seconds += time.perf_counter() - t0
                self.tokens_seen += tokens
                window += stats.detach().float().cpu()
                window_tokens += tokens
                if bar is not None:
                    bar.update(1)
                if self.step % 50 == 0 or self.step == cfg.steps:
                    elapsed = time.perf_counter() - window_start
                    train = self.loss.summarize(window)  # this process's share of the batches
                    rate = window_tokens / max(elapsed, 1e-9)
                    if bar is not None:
                        bar.set_postfix(**self.loss.postfix(train), tok_s=f"{rate:,.0f}", refresh=False)
                    self._log({"step": self.step, "kind": "train", "minutes": self.train_seconds / 60,
                               "lr": self.scheduler.get_last_lr()[0], "tokens_per_s": rate, **train})
                    window.zero_()
                    window_tokens, window_start = 0, time.perf_counter()
                if self.dist.main and (self.step % cfg.eval_every == 0 or self.step == cfg.steps):
                    result = self.evaluate()
                    self._log({"step": self.step, "kind": "eval", "minutes": self.train_seconds / 60,
                               "tokens_seen": self.tokens_seen, **result})
                    if bar is not None:
                        bar.write(self.eval_message(result))
                if self.step % cfg.save_every == 0 or self.step == cfg.steps:
                    self._save()
        finally:
            if bar is not None:
                bar.close()
        return self.run_dir


class Trainer(TrainLoop):
    """One pretraining run from scratch in `run_dir` (create it, or resume it): config.objective picks the model
    and the loss from PRETRAINING_OBJECTIVES (mlm-nsp: a BertForPreTraining; clm: a GPT2LMHeadModel)."""

    config_class = TrainConfig

    def __init__(self, train_documents, heldout_documents, run_dir, config: TrainConfig | None = None, *,
                 resume: bool = False, vocab: str | None = None, device: str = "auto",
                 corpus_info: dict | None = None, progress: bool = True):
        self.config = self._start(run_dir, config, device, resume, progress)
        self.kind = PRETRAINING_OBJECTIVES[self.config.objective]
        if heldout_documents is None:
            train_documents, heldout_documents = split_documents(train_documents, self.config.seed)
        self.tokenizer = self._tokenizer(train_documents, vocab, resume)
        tok = self.tokenizer
        self.ids = {"cls": tok.cls_token_id, "sep": tok.sep_token_id, "pad": tok.pad_token_id}
        self.masker = Masker(tok.mask_token_id, tuple(sorted(set(tok.all_special_ids))), len(tok),
                             self.config.mask_prob)
        train_ids = tokenize_documents(train_documents, tok)
        check_documents(train_ids, "training corpus")
        held_ids = tokenize_documents(heldout_documents, tok)
        check_documents(held_ids, "held-out split")
        self.stream = PairStream(train_ids, self.config.seq_len, self.ids, self.masker, self.config.batch_size,
                                 self.config.seed, self.config.short_seq_prob, make=self.kind.batcher)
        self.eval_batch, self.baseline = self._eval_set(train_ids, held_ids)
        self.score_pairs = {  # head scores on both kinds of held-out inputs (they differ)
            "": sentence_pairs(heldout_documents, self.config.head_score_pairs),
            "packed_": packed_text_pairs(heldout_documents, tok, self.config.seq_len, self.config.head_score_pairs,
                                         self.config.seed)}
        self.corpus_info = dict(corpus_info or {}, train_documents=len(train_ids), heldout_documents=len(held_ids),
                                train_sentences=sum(len(d) for d in train_documents),
                                heldout_sentences=sum(len(d) for d in heldout_documents),
                                train_sha1=fingerprint(train_documents), heldout_sha1=fingerprint(heldout_documents),
                                train_tokens=int(sum(len(s) for d in train_ids for s in d)),
                                pairs_per_epoch=self.stream.epoch_size)
        self._build(resume)

    # --- set-up -------------------------------------------------------------------------------
    def _tokenizer(self, train_documents, vocab, resume):
        from transformers import AutoTokenizer  # noqa: PLC0415  (heavy: see __init__)

        folder = self.run_dir / TOKENIZER_DIR
        if resume:
            return AutoTokenizer.from_pretrained(str(folder))
        if self.dist.main:
            if vocab:
                tok = load_vocab(vocab)
            else:
                tok = train_wordpiece((s for d in train_documents for s in d), self.config.vocab_size)
            folder.mkdir(parents=True, exist_ok=True)
            save_tokenizer(tok, folder)
        self.dist.barrier()
        return AutoTokenizer.from_pretrained(str(folder))

    def _eval_set(self, train_ids, held_ids):
        """A fixed batch of held-out pairs, and the most-frequent-token baseline on it."""
        pairs, batch = eval_batch(held_ids, self.config, self.ids, self.masker, make=self.kind.batcher)
        counts = np.bincount(np.concatenate([s for d in train_ids for s in d]), minlength=len(self.tokenizer))
        counts[list(self.masker.special_ids)] = 0
        top = int(counts.argmax())
        baseline = {"most_frequent_token": self.tokenizer.convert_ids_to_tokens(top),
                    **self.kind.baseline(pairs, batch, top), "eval_pairs": len(pairs)}
        return batch, baseline

    def _model_class(self):
        import transformers  # noqa: PLC0415  (heavy: see TrainLoop._start)

        return getattr(transformers, self.kind.model_class)

    def new_model(self):
        return self._model_class()(self.kind.model_config(self.config.size, self.tokenizer))

    def load_model(self, folder: Path):
        return self._model_class().from_pretrained(str(folder))

    def make_objective(self, model) -> Objective:
        return self.kind.for_tokenizer(model, self.tokenizer)

    def run_record(self) -> dict:
        return {"config": self.config.to_dict(), "corpus": self.corpus_info, "baseline": self.baseline,
                "model": self.model.config.to_dict(), "command": " ".join(sys.argv)}

    # --- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        """The objective's loss and accuracy on the fixed held-out batch, and the positional head scores
        (a pattern the model's attention cannot show, such as next-token in a decoder, is left out)."""
        self.model.eval()
        objective = self.make_objective(self.model)
        total = torch.zeros(len(objective.stats))
        try:
            for start in range(0, len(self.eval_batch.labels), 128):
                part = self.eval_batch.rows(slice(start, start + 128)).to(self.device)
                with self._autocast():
                    _, stats = objective(part, *objective.norms(part, 1))
                total += stats.float().cpu()
            result = objective.summarize(total)
            for prefix, pairs in self.score_pairs.items():
                if not pairs:
                    continue
                scores = model_head_scores(LoadedModel(self.model, self.tokenizer, name=str(self.run_dir)), pairs)
                for name, arr in scores.items():
                    if np.isnan(arr).all():
                        continue
                    result[prefix + name] = float(arr.max())
                    result[prefix + name + "_head"] = [int(x) for x in np.unravel_index(arr.argmax(), arr.shape)]
                    result[prefix + name + "_scores"] = np.round(arr, 4).tolist()
        finally:
            self.model.train()
        return result

    def eval_message(self, result: dict) -> str:
        return (f"step {self.step} ({self.train_seconds / 60:.1f} min): "
                f"{self.kind.describe(result, self.baseline)}, "
                f"prev-token {result.get('previous_token', math.nan):.2f}, next-token "
                + (f"{result['next_token']:.2f}" if "next_token" in result else "n/a"))  # n/a: a decoder


def pretrain(train_documents, heldout_documents=None, out="runs/bert", config: TrainConfig | None = None, *,
             resume: bool = False, vocab: str | None = None, device: str = "auto", corpus_info: dict | None = None,
             progress: bool = True) -> Path:
    """Pretrain a model from scratch on documents (lists of sentences): a BertForPreTraining (MLM + NSP, the
    default config.objective) or a GPT2LMHeadModel (config.objective "clm": next-token loss).

    Without `heldout_documents`, 5% of the documents are held out for evaluation.
    Returns the run folder; its newest checkpoint loads with the model class's `from_pretrained`.
    """
    trainer = Trainer(train_documents, heldout_documents, out, config, resume=resume, vocab=vocab, device=device,
                      corpus_info=corpus_info, progress=progress)
    return trainer.train()
