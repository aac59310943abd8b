"""Fine-tuning throughput: `attnlens finetune`'s trainer vs the Hugging Face Trainer, and the bare loop.

Same model (default: the shipped tiny checkpoint; `--model default` = all-MiniLM-L6-v2, or any model / run
folder), same task (the built-in `source`: which shipped source a sentence comes from, 3 classes), same
freshly initialised classification head (`AutoModelForSequenceClassification.from_pretrained` after
`torch.manual_seed(seed)`), same examples in the same order (attnlens's seeded stream), same batch and max
length, same optimizer (torch AdamW: HF's `adamw_torch`, with the same lr, eps and weight decay, which
neither side applies to biases and LayerNorm weights), same warm-up + linear decay schedule, same gradient
clipping, same process and threads. Counts real (non-padding) tokens per second over
the timed steps, after warm-up steps:

  attnlens trainer, steps only : FinetuneTrainer.train() from the start of its timed call to the end of its
                                 last step (marked at the optimizer's zero_grad); the held-out evaluation
                                 and checkpoint save after the last step are not in the window
  HF Trainer                   : transformers.Trainer + AutoModelForSequenceClassification, fed the same
                                 encoded examples in the same order, DataCollatorWithPadding (pads to the
                                 batch's longest input, as ours), optim adamw_torch; timed from the end of
                                 the last warm-up step to the end of the last timed step (on_step_end)
  bare loop (the limit)        : the same model and head (same seed) in a plain loop of forward (the
                                 model's own loss) + backward + AdamW step + zero_grad over attnlens's
                                 batches of the same steps, all made before the clock starts

Each rate is given over the whole window and at the median step (robust to bursts of load from other
processes); rounds alternate the order and the best of each is kept. The timing helpers (`rates`, `ours`)
are bench_pretrain.py's. Needs `accelerate` (pip install 'attnlens[bench]').

    python benchmarks/bench_finetune.py [--model default|PATH] [--steps 20] [--warmup 3] [--batch-size 32]
                                        [--max-length 64] [--rounds 2] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from bench_pretrain import add_trainer_options, ours, rates, start_trainer_bench, timed_hf_trainer

EVAL_LIMIT = 32  # held-out examples the trainer evaluates after its last step (outside the timed window)


def prepare_ours(task, model: str | None, workdir: Path, opts):
    """attnlens's fine-tuning trainer, run through its warm-up steps (untimed)."""
    from attnlens.finetuning.config import FinetuneConfig
    from attnlens.finetuning.trainer import FinetuneTrainer

    out = workdir / "ours"
    shutil.rmtree(out, ignore_errors=True)
    config = FinetuneConfig(model=model, task="source", steps=opts.warmup + opts.steps, batch_size=opts.batch_size,
                            lr=opts.lr, max_length=opts.max_length, seed=opts.seed, eval_every=10**9,
                            save_every=10**9, eval_limit=EVAL_LIMIT)
    trainer = FinetuneTrainer(task, out, config, device="cpu", progress=False)
    trainer.config.steps = opts.warmup
    trainer.train()
    trainer.config.steps = opts.warmup + opts.steps
    return trainer


def fresh_classifier(trainer):
    """The model ours started from: the same source and head, initialised after the same seed."""
    torch.manual_seed(trainer.config.seed)
    return trainer.new_model()


def huggingface(trainer_ours, workdir: Path, steps: int, warmup: int) -> tuple[float, float]:
    """(window, median-step) tokens/s of transformers.Trainer on the same examples, order and settings."""
    from transformers import DataCollatorWithPadding, Trainer

    cfg, stream = trainer_ours.config, trainer_ours.stream
    enc = stream.encoded
    examples = [{"input_ids": enc.input_ids[i].tolist(), "token_type_ids": enc.token_type_ids[i].tolist(),
                 "labels": int(enc.labels[i])} for s in range(warmup + steps) for i in stream.indices(s)]
    tokens = sum(len(examples[i]["input_ids"]) for i in range(warmup * cfg.batch_size, len(examples)))
    return timed_hf_trainer(Trainer, fresh_classifier(trainer_ours), cfg, workdir, examples,
                            DataCollatorWithPadding(trainer_ours.tokenizer), tokens, steps, warmup,
                            optim="adamw_torch")


def bare_loop(trainer_ours, steps: int, warmup: int) -> tuple[float, float]:
    """(window, median-step) tokens/s of forward + backward + AdamW step alone, on attnlens's batches."""
    cfg = trainer_ours.config
    model = fresh_classifier(trainer_ours).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=cfg.adam_eps,
                                  weight_decay=cfg.weight_decay)
    batches = [trainer_ours.stream.batch(s) for s in range(warmup + steps)]  # before the clock
    tokens = sum(int(b.attention_mask.sum()) for b in batches[warmup:])
    start, ends = 0.0, []
    for i, b in enumerate(batches):
        if i == warmup:
            start = time.perf_counter()
        model(input_ids=b.input_ids, token_type_ids=b.token_type_ids, attention_mask=b.attention_mask,
              labels=b.labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            ends.append(time.perf_counter())
    return rates(tokens, start, ends, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="default (all-MiniLM-L6-v2), or a model / run folder (default: the shipped checkpoint)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    add_trainer_options(parser, "--steps 6 --warmup 2 --rounds 1")
    opts = parser.parse_args()
    if opts.quick:
        opts.steps, opts.warmup, opts.rounds = 6, 2, 1
    start_trainer_bench(opts, "bench_finetune")

    from attnlens.finetuning.tasks import load_task
    from attnlens.pretraining.predict import shipped_checkpoint

    model = {None: str(shipped_checkpoint()), "default": None}.get(opts.model, opts.model)
    task = load_task("source", None, opts.seed)
    best = {k: (0.0, 0.0) for k in ("ours", "hf", "bare")}

    def keep(key, rate):
        best[key] = (max(best[key][0], rate[0]), max(best[key][1], rate[1]))

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(opts.rounds):  # ours first in even rounds, last in odd ones (order effects even out)
            trainer = prepare_ours(task, model, work, opts)
            order = ["ours", "hf", "bare"] if r % 2 == 0 else ["bare", "hf", "ours"]
            for what in order:
                if what == "ours":
                    keep(what, ours(trainer, opts.steps, opts.warmup)[1])
                elif what == "hf":
                    keep(what, huggingface(trainer, work, opts.steps, opts.warmup))
                else:
                    keep(what, bare_loop(trainer, opts.steps, opts.warmup))
    name = "all-MiniLM-L6-v2" if model is None else model
    print(f"model {name}, task source ({len(task.train)} training sentences, 3 classes), threads "
          f"{torch.get_num_threads()}, batch {opts.batch_size}, max length {opts.max_length}, {opts.steps} timed "
          f"steps after {opts.warmup} warm-up, best of {opts.rounds} round(s); real (non-padding) tokens per "
          "second over the timed window, and at the median step time")
    print(f"{'':<54}  {'window':>10}  {'median step':>11}")
    labels = {"ours": "attnlens finetune trainer, steps only",
              "hf": "HF Trainer + AutoModelForSequenceClassification",
              "bare": "bare forward+backward+AdamW loop, same batches (limit)"}
    for key, label in labels.items():
        print(f"{label:<54}: {best[key][0]:10,.0f}  {best[key][1]:11,.0f}")
    ours_w, ours_m = best["ours"]
    for label, key, note in (("ratio       (attnlens / HF Trainer)", "hf", " (target >= 1.0x)"),
                             ("limit ratio (attnlens / bare loop)", "bare",
                              " (1.0x = the trainer costs nothing beyond the model's own step)")):
        w, m = best[key]
        print(f"{label:<40}: {ours_w / w:5.2f}x window, {ours_m / m:5.2f}x median step{note}")


if __name__ == "__main__":
    main()
