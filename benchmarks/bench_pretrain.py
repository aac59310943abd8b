"""Training throughput: `attnlens pretrain`'s trainer vs Hugging Face Trainer + DataCollatorForLanguageModeling.

Same BertForPreTraining config (size tiny), same sentence pairs, same batch and sequence length,
same optimizer settings, same process and threads; both mask 15% (80/10/10) on the fly.
Counts real (non-padding) tokens per second over the timed steps, after warm-up steps.
Prints both rates and the ratio (target >= 1.0x). Needs `accelerate` (pip install 'attnlens[bench]').

    python benchmarks/bench_pretrain.py [--steps 20] [--warmup 3] [--docs 400] [--rounds 2]
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

import torch  # noqa: E402


def ours(docs, workdir: Path, steps: int, warmup: int, vocab: str) -> float:
    from attnlens.pretraining.config import TrainConfig
    from attnlens.pretraining.trainer import Trainer

    out = workdir / "ours"
    shutil.rmtree(out, ignore_errors=True)
    trainer = Trainer(docs, None, out, TrainConfig(size="tiny", steps=warmup + steps, eval_every=10**9,
                                                   save_every=10**9), vocab=vocab, device="cpu", progress=False)
    trainer.config.steps = warmup
    trainer.train()
    tokens = sum(int(trainer.stream.batch(s).attention_mask.sum()) for s in range(warmup, warmup + steps))
    trainer.config.steps = warmup + steps
    start = time.perf_counter()
    trainer.train()
    return tokens / (time.perf_counter() - start), trainer


def huggingface(trainer_ours, workdir: Path, steps: int, warmup: int) -> float:
    from transformers import (BertForPreTraining, DataCollatorForLanguageModeling, Trainer, TrainerCallback,
                              TrainingArguments)

    from attnlens.pretraining.config import bert_config

    cfg = trainer_ours.config
    tok = trainer_ours.tokenizer
    examples, tokens = [], 0
    for s in range(warmup + steps):  # the very same pairs, unmasked and unpadded
        pairs = trainer_ours.stream.pairs_for_step(s)
        for ids, types, n, label in zip(pairs.input_ids, pairs.token_type_ids, pairs.lengths,
                                        pairs.next_sentence_label):
            examples.append({"input_ids": ids[:n].tolist(), "token_type_ids": types[:n].tolist(),
                             "next_sentence_label": int(label)})
            tokens += int(n) if s >= warmup else 0
    torch.manual_seed(cfg.seed)
    model = BertForPreTraining(bert_config(cfg.size, len(tok), tok.pad_token_id))
    collator = DataCollatorForLanguageModeling(tok, mlm=True, mlm_probability=cfg.mask_prob)
    marks: dict[int, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks[state.global_step] = time.perf_counter()

    args = TrainingArguments(
        output_dir=str(workdir / "hf"), per_device_train_batch_size=cfg.batch_size, max_steps=warmup + steps,
        learning_rate=cfg.lr, adam_epsilon=cfg.adam_eps, weight_decay=cfg.weight_decay, max_grad_norm=cfg.clip_norm,
        warmup_steps=cfg.warmup_steps, lr_scheduler_type="linear", logging_strategy="no", save_strategy="no",
        report_to=[], use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=cfg.seed,
        remove_unused_columns=False)
    hf = Trainer(model=model, args=args, train_dataset=examples, data_collator=collator, callbacks=[Clock()])
    from torch.utils.data import SequentialSampler

    hf._get_train_sampler = lambda *a, **k: SequentialSampler(examples)  # same order as ours
    hf.train()
    return tokens / (marks[warmup + steps] - marks[warmup])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=2, help="alternate the two trainers this many times; best kept")
    opts = parser.parse_args()
    try:
        import accelerate  # noqa: F401
    except ImportError:
        sys.exit("bench_pretrain needs accelerate for the Hugging Face Trainer: pip install 'attnlens[bench]'")
    from attnlens.corpus import load_documents
    from attnlens.pretraining.vocab import save_tokenizer, train_wordpiece

    docs = load_documents("default", split="train")[: opts.docs]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        save_tokenizer(train_wordpiece((s for d in docs for s in d), 8000), work / "tok")
        best_ours = best_hf = 0.0
        for _ in range(opts.rounds):
            rate, trainer = ours(docs, work, opts.steps, opts.warmup, str(work / "tok" / "vocab.txt"))
            best_ours = max(best_ours, rate)
            best_hf = max(best_hf, huggingface(trainer, work, opts.steps, opts.warmup))
    print(f"threads {torch.get_num_threads()}, size tiny, batch 64 x seq 64, {opts.steps} timed steps")
    print(f"attnlens trainer          : {best_ours:10,.0f} tokens/s")
    print(f"HF Trainer + MLM collator : {best_hf:10,.0f} tokens/s")
    print(f"ratio                     : {best_ours / best_hf:.2f}x (target >= 1.0x)")


if __name__ == "__main__":
    main()
