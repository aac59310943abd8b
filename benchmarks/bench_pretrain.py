"""Training throughput: `attnlens pretrain`'s trainer vs the Hugging Face Trainer, with like-for-like baselines.

Same BertForPreTraining config (size tiny), same sentence pairs, same batch and sequence length,
same optimizer settings (AdamW, lr, eps, weight decay, clipping), same process and threads.
Counts real (non-padding) tokens per second over the timed steps, after warm-up steps.

Most of the trainer's lead over the stock HF setup comes from one choice: its loss runs the
MLM head (a vocabulary-sized matmul) only at the ~15% masked positions, where the stock
`BertForPreTraining` loss runs it at every position. So this prints, side by side:

  attnlens trainer, old window : train() timed from the first timed step to its return, which
                                 includes the final held-out evaluation and checkpoint save (old row)
  attnlens trainer, steps only : the same run up to the end of its last step (before the final evaluation
                                 and save): every step's batch (pairs + masking), forward, backward, clip,
                                 AdamW, lr step
  HF stock + MLM collator      : HF Trainer, stock BertForPreTraining loss (MLM head at every position),
                                 DataCollatorForLanguageModeling masking the same pairs (old baseline)
  HF stock, attnlens batches   : HF Trainer, stock loss, fed attnlens's own batches (the same masks and
                                 padding, made by the same code inside the timed loop)
  HF masked-positions loss     : HF Trainer whose compute_loss runs the encoder, gathers the masked
                                 positions and applies the MLM head only there (plus NSP), on attnlens's
                                 batches: the same computation as attnlens's trainer
  bare loop (the limit)        : the same model (config and init seed) in a plain loop of forward (the
                                 masked-positions loss) + backward + AdamW step + zero_grad over the very
                                 same batches, all made before the clock starts: no data work, clipping,
                                 lr schedule or logging; what this machine can do for this model

Timed windows: attnlens's from the start of its timed train() call to the end of the last timed step
(marked at the optimizer's zero_grad, its last call of a step), HF's from the end of the last warm-up
step to the end of the last timed step (on_step_end): data loading + collation, forward, backward,
clipping, optimizer and scheduler on both sides, no evaluation or saving (HF has none configured).
Each rate is given over the whole window and at the median step time (robust to bursts of load from
other processes). Rounds alternate the order (attnlens first, then last). Also prints forward+backward
of the two losses on one batch. The HF optimizer is its default (adamw_torch_fused); attnlens uses
torch.optim.AdamW (single-tensor on CPU), a few ms a step apart at size tiny.
Needs `accelerate` (pip install 'attnlens[bench]'). On a busy machine --threads 1 gives steadier ratios.

    python benchmarks/bench_pretrain.py [--steps 20] [--warmup 3] [--docs 400] [--rounds 2] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch
import torch.nn.functional as F


def rates(tokens: int, start: float, ends: list[float], steps: int) -> tuple[float, float]:
    """(tokens/s over the window start..ends[-1], tokens/s at the median step duration).

    The median step is robust to a burst of load from other processes during the window.
    """
    durations = [b - a for a, b in zip([start, *ends[:-1]], ends, strict=True)]
    assert len(durations) == steps, (len(durations), steps)
    return tokens / (ends[-1] - start), (tokens / steps) / statistics.median(durations)


def prepare_ours(docs, workdir: Path, steps: int, warmup: int, vocab: str):
    """attnlens's trainer for warmup + steps steps, after its warm-up steps (untimed)."""
    from attnlens.pretraining.config import TrainConfig
    from attnlens.pretraining.trainer import Trainer

    out = workdir / "ours"
    shutil.rmtree(out, ignore_errors=True)
    trainer = Trainer(docs, None, out, TrainConfig(size="tiny", steps=warmup + steps, eval_every=10**9,
                                                   save_every=10**9), vocab=vocab, device="cpu", progress=False)
    trainer.config.steps = warmup
    trainer.train()
    trainer.config.steps = warmup + steps
    return trainer


def ours(trainer, steps: int, warmup: int):
    """(tokens/s over the old window incl. final eval + save, (window, median-step) tokens/s of the steps).

    Step ends are marked at the optimizer's zero_grad (the last thing of each step), as the HF side marks
    on_step_end; the final evaluation and save come after the last mark, so only the old window has them.
    """
    tokens = sum(int(trainer.stream.batch(s).attention_mask.sum()) for s in range(warmup, warmup + steps))
    ends: list[float] = []
    zero_grad = trainer.optimizer.zero_grad

    def marked_zero_grad(*args, **kwargs):
        result = zero_grad(*args, **kwargs)
        ends.append(time.perf_counter())
        return result

    trainer.optimizer.zero_grad = marked_zero_grad
    start = time.perf_counter()
    try:
        trainer.train()
    finally:
        trainer.optimizer.zero_grad = zero_grad
    wall = time.perf_counter() - start
    return tokens / wall, rates(tokens, start, ends, steps)


def masked_positions_loss(model, inputs):
    """attnlens's objective in HF terms: MLM head only at the masked positions, + NSP; both means."""
    labels = inputs["labels"]
    out = model.bert(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"],
                     attention_mask=inputs["attention_mask"])
    chosen = labels != -100  # [B, T]
    mlm_logits = model.cls.predictions(out.last_hidden_state[chosen])  # [M, vocab]
    nsp_logits = model.cls.seq_relationship(out.pooler_output)  # [B, 2]
    return (F.cross_entropy(mlm_logits.float(), labels[chosen])
            + F.cross_entropy(nsp_logits.float(), inputs["next_sentence_label"]))


def _batch_dict(batch) -> dict:
    return {"input_ids": batch.input_ids, "token_type_ids": batch.token_type_ids,
            "attention_mask": batch.attention_mask, "labels": batch.labels,
            "next_sentence_label": batch.next_sentence_label}


def huggingface(trainer_ours, workdir: Path, steps: int, warmup: int, variant: str) -> tuple[float, float]:
    """(window, median-step) tokens/s of the HF Trainer.

    variant: "stock" (MLM collator), "stock-ours" (stock loss, attnlens batches) or "masked" (masked-positions
    loss, attnlens batches).
    """
    from transformers import BertForPreTraining, DataCollatorForLanguageModeling, Trainer

    from attnlens.pretraining.config import bert_config

    cfg = trainer_ours.config
    tok = trainer_ours.tokenizer
    stream = trainer_ours.stream
    examples, tokens = [], 0
    if variant == "stock":
        for s in range(warmup + steps):  # the very same pairs, unmasked and unpadded
            pairs = stream.pairs_for_step(s)
            for ids, types, n, label in zip(pairs.input_ids, pairs.token_type_ids, pairs.lengths,
                                            pairs.next_sentence_label, strict=True):
                examples.append({"input_ids": ids[:n].tolist(), "token_type_ids": types[:n].tolist(),
                                 "next_sentence_label": int(label)})
                tokens += int(n) if s >= warmup else 0
        collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=cfg.mask_prob)
    else:
        # one placeholder row per example; the collator builds attnlens's batch of that step (pairs,
        # masks, padding), the same code attnlens's trainer runs inside its timed steps
        examples = [{"step": s} for s in range(warmup + steps) for _ in range(cfg.batch_size)]
        tokens = sum(int(stream.pairs_for_step(s).lengths.sum()) for s in range(warmup, warmup + steps))

        def collator(rows):
            step = rows[0]["step"]
            assert len(rows) == cfg.batch_size and all(r["step"] == step for r in rows)
            return _batch_dict(stream.batch(step))

    class HFTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if variant != "masked":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = masked_positions_loss(model, inputs)
            return (loss, None) if return_outputs else loss

    torch.manual_seed(cfg.seed)
    model = BertForPreTraining(bert_config(cfg.size, len(tok), tok.pad_token_id))
    return timed_hf_trainer(HFTrainer, model, cfg, workdir, examples, collator, tokens, steps, warmup,
                            remove_unused_columns=False)


def timed_hf_trainer(trainer_class, model, cfg, workdir: Path, examples, collator, tokens: int, steps: int,
                     warmup: int, **arguments) -> tuple[float, float]:
    """(window, median-step) tokens/s of `trainer_class` (transformers.Trainer or a subclass) training `model` on
    `examples` in their order with our config's batch, optimizer settings, schedule and clipping; the clock
    starts at the end of the last warm-up step. `arguments`: more TrainingArguments."""
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback, TrainingArguments

    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks[state.global_step] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=cfg.batch_size, max_steps=warmup + steps,
        learning_rate=cfg.lr, adam_epsilon=cfg.adam_eps, weight_decay=cfg.weight_decay, max_grad_norm=cfg.clip_norm,
        warmup_steps=cfg.warmup_steps, lr_scheduler_type="linear", logging_strategy="no", save_strategy="no",
        report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=cfg.seed, **arguments)
    hf = trainer_class(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=[Clock()])
    hf._get_train_sampler = lambda *a, **k: SequentialSampler(examples)  # same order as ours
    with contextlib.redirect_stdout(io.StringIO()):  # its end-of-training summary dict
        hf.train()
    return rates(tokens, marks[warmup], [marks[s] for s in range(warmup + 1, warmup + steps + 1)], steps)


def bare_loop(trainer_ours, steps: int, warmup: int) -> tuple[float, float]:
    """(window, median-step) tokens/s of forward + backward + optimizer step alone, on attnlens's batches."""
    from transformers import BertForPreTraining

    from attnlens.pretraining.config import bert_config

    cfg, tok = trainer_ours.config, trainer_ours.tokenizer
    torch.manual_seed(cfg.seed)
    model = BertForPreTraining(bert_config(cfg.size, len(tok), tok.pad_token_id)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=cfg.adam_eps,
                                  weight_decay=cfg.weight_decay)
    batches = [_batch_dict(trainer_ours.stream.batch(s)) for s in range(warmup + steps)]  # before the clock
    tokens = sum(int(b["attention_mask"].sum()) for b in batches[warmup:])
    start, ends = 0.0, []
    for i, inputs in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        masked_positions_loss(model, inputs).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            ends.append(time.perf_counter())
    return rates(tokens, start, ends, steps)


def loss_only(trainer_ours, repeats: int) -> tuple[float, float]:
    """Median ms of forward + backward on one attnlens batch: stock loss vs masked-positions loss."""
    from transformers import BertForPreTraining

    from attnlens.pretraining.config import bert_config

    cfg, tok = trainer_ours.config, trainer_ours.tokenizer
    torch.manual_seed(cfg.seed)
    model = BertForPreTraining(bert_config(cfg.size, len(tok), tok.pad_token_id)).train()
    inputs = _batch_dict(trainer_ours.stream.batch(0))

    def stock():
        model(**inputs).loss.backward()

    def masked():
        masked_positions_loss(model, inputs).backward()

    times: dict = {stock: [], masked: []}
    for fn in times:
        fn()  # warm-up
    for _ in range(repeats):
        for fn, store in times.items():  # interleaved, so machine load hits both alike
            model.zero_grad(set_to_none=True)
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[stock]), 1000 * statistics.median(times[masked])


def add_trainer_options(parser: argparse.ArgumentParser, quick: str) -> None:
    """The options every trainer-vs-HF benchmark shares: --rounds, --threads and --quick (`quick`: what it sets)."""
    parser.add_argument("--rounds", type=int, default=2,
                        help="run every trainer this many times, in alternating order; best kept")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help=quick)


def start_trainer_bench(opts, script: str) -> None:
    """Torch threads as asked, accelerate present (the HF Trainer needs it), transformers' logging quiet."""
    if opts.threads:
        torch.set_num_threads(opts.threads)
    try:
        import accelerate  # noqa: F401  (only: is accelerate installed?)
    except ImportError:
        sys.exit(f"{script} needs accelerate for the Hugging Face Trainer: pip install 'attnlens[bench]'")
    import transformers

    transformers.logging.set_verbosity_error()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--docs", type=int, default=400)
    add_trainer_options(parser, "--steps 8 --warmup 2 --docs 200 --rounds 2")
    opts = parser.parse_args()
    if opts.quick:
        opts.steps, opts.warmup, opts.docs, opts.rounds = 8, 2, 200, 2
    start_trainer_bench(opts, "bench_pretrain")

    from attnlens.corpus import load_documents
    from attnlens.pretraining.vocab import save_tokenizer, train_wordpiece

    docs = load_documents("default", split="train")[: opts.docs]
    variants = ("stock", "stock-ours", "masked", "bare")
    best = {k: (0.0, 0.0) for k in ("steps", *variants)}
    best_old = 0.0

    def keep(key, rate):
        best[key] = (max(best[key][0], rate[0]), max(best[key][1], rate[1]))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_tokenizer(train_wordpiece((s for d in docs for s in d), 8000), work / "tok")
        for r in range(opts.rounds):  # ours first in even rounds, last in odd ones (order effects even out)
            trainer = prepare_ours(docs, work, opts.steps, opts.warmup, str(work / "tok" / "vocab.txt"))
            order = ["ours", *variants] if r % 2 == 0 else [*reversed(variants), "ours"]
            for what in order:
                if what == "ours":
                    old, steps_only = ours(trainer, opts.steps, opts.warmup)
                    best_old = max(best_old, old)
                    keep("steps", steps_only)
                elif what == "bare":
                    keep(what, bare_loop(trainer, opts.steps, opts.warmup))
                else:
                    keep(what, huggingface(trainer, work, opts.steps, opts.warmup, what))
        stock_ms, masked_ms = loss_only(trainer, 5 if opts.quick else 10)
    print(f"threads {torch.get_num_threads()}, size tiny, batch 64 x seq 64, {opts.steps} timed steps after "
          f"{opts.warmup} warm-up, best of {opts.rounds} round(s); real (non-padding) tokens per second over the "
          "timed window, and at the median step time (robust to bursts of load from other processes)")
    print(f"{'':<58}  {'window':>10}  {'median step':>11}")
    print(f"{'attnlens trainer, old window (steps + final eval + save)':<58}: {best_old:10,.0f}  {'-':>11}")
    labels = {"steps": "attnlens trainer, steps only",
              "stock": "HF Trainer, stock loss + MLM collator (old baseline)",
              "stock-ours": "HF Trainer, stock loss, attnlens batches",
              "masked": "HF Trainer, masked-positions loss, attnlens batches",
              "bare": "bare forward+backward+AdamW loop, same batches (limit)"}
    for key, label in labels.items():
        print(f"{label:<58}: {best[key][0]:10,.0f}  {best[key][1]:11,.0f}")
    ours_w, ours_m = best["steps"]

    def ratio(label, key, note=""):
        w, m = best[key]
        print(f"{label:<66}: {ours_w / w:5.2f}x window, {ours_m / m:5.2f}x median step{note}")

    print(f"{'old ratio   (attnlens old window / HF stock + collator, windows)':<66}: "
          f"{best_old / best['stock'][0]:5.2f}x")
    ratio("ratio       (attnlens steps only / HF stock + collator)", "stock")
    ratio("ratio       (attnlens steps only / HF stock, attnlens batches)", "stock-ours")
    ratio("fair ratio  (attnlens steps only / HF masked-positions loss)", "masked",
          " (same batches, same loss; target >= 1.0x)")
    ratio("limit ratio (attnlens steps only / bare fwd+bwd+optimizer loop)", "bare",
          " (1.0x = the trainer costs nothing beyond the model's own step)")
    print(f"forward+backward on one batch (model only, no optimizer; median of {5 if opts.quick else 10}): "
          f"stock loss {stock_ms:.0f} ms, masked-positions loss {masked_ms:.0f} ms ({stock_ms / masked_ms:.2f}x)")


if __name__ == "__main__":
    main()
