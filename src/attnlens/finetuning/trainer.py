"""Fine-tuning: the pretraining loop (pretraining/trainer.py TrainLoop) with a classification objective.

`finetune(model, task, out)` loads any supported encoder (the default model, a pretraining run or
checkpoint, a BERT-family folder or hub name) with a freshly initialised classification head and trains
every weight on the task. The run folder is a pretraining-style one (run.json, metrics.jsonl,
checkpoints/step-*); each checkpoint loads with transformers' AutoModelFor{Sequence,Token}Classification,
with the class names in its config's id2label, and `--resume` continues exactly.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..capturing import spec_for_config
from ..errors import AttnlensError
from ..pretraining.checkpoint import OPTIMIZER_FILE, TRAINER_STATE, latest_checkpoint
from ..pretraining.data import seed_for
from ..pretraining.trainer import RUN_FILE, TrainLoop
from .config import FinetuneConfig
from .data import ExampleStream, encode_examples
from .objective import ClassificationObjective
from .predict import TASK_CLASS, TASK_KIND_KEY, auto_class, evaluate_encoded, model_source
from .tasks import Task, load_task

LINK_SKIP = (OPTIMIZER_FILE, TRAINER_STATE)  # checkpoint files the run folder does not link


def eval_subset(examples: list, limit: int) -> list:
    """A fixed sample of `limit` held-out examples in their order (all when limit is 0 or not smaller);
    the same whatever the run's seed, so runs are compared on the same examples."""
    if not limit or len(examples) <= limit:
        return list(examples)
    keep = np.sort(np.random.default_rng(seed_for(19)).permutation(len(examples))[:limit])
    return [examples[i] for i in keep]


def link_newest(run_dir: Path) -> None:
    """Point RUN_DIR/config.json, model.safetensors and the tokenizer files at the newest checkpoint
    (relative symlinks, each replaced atomically), so the run folder itself loads with from_pretrained."""
    newest = latest_checkpoint(run_dir)
    for path in sorted(newest.iterdir()):
        if path.is_file() and path.name not in LINK_SKIP:
            link = run_dir / path.name
            tmp = run_dir / f".tmp-link-{path.name}"
            tmp.unlink(missing_ok=True)
            os.symlink(os.path.relpath(path, run_dir), tmp)
            os.replace(tmp, link)


class FinetuneTrainer(TrainLoop):
    """One fine-tuning run of `config.model` on `task` in `run_dir` (create it, or resume it)."""

    config_class = FinetuneConfig

    def __init__(self, task: Task, run_dir, config: FinetuneConfig | None = None, *, resume: bool = False,
                 device: str = "auto", progress: bool = True):
        from transformers import AutoConfig, AutoTokenizer  # noqa: PLC0415  (heavy: imported on first use)

        self.config = self._start(run_dir, config, device, resume, progress)
        self.task = task
        self.source = model_source(self.config.model)
        newest = latest_checkpoint(self.run_dir) if resume else None
        try:
            model_config = AutoConfig.from_pretrained(self.source)
            self.tokenizer = AutoTokenizer.from_pretrained(str(newest) if newest else self.source)
        except (OSError, ValueError) as exc:
            raise AttnlensError(f"could not load model {self.source!r}: {str(exc).strip().splitlines()[0]}") from None
        self.max_length = min(self.config.max_length, spec_for_config(model_config).max_length(model_config))
        train = encode_examples(task, task.train, self.tokenizer, self.max_length)
        self.eval_examples = eval_subset(task.heldout, self.config.eval_limit)
        self.eval_set = encode_examples(task, self.eval_examples, self.tokenizer, self.max_length)
        self.stream = ExampleStream(train, self.config.batch_size, self.config.seed, self.tokenizer.pad_token_id)
        self.baseline = replace(task, heldout=self.eval_examples).majority_baseline()
        self._build(resume)

    def new_model(self):
        labels = self.task.labels
        model = auto_class(TASK_CLASS[self.task.kind]).from_pretrained(
            self.source, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)})
        setattr(model.config, TASK_KIND_KEY, self.task.kind)  # saved in config.json: a copied checkpoint keeps it
        return model

    def load_model(self, folder: Path):
        return auto_class(TASK_CLASS[self.task.kind]).from_pretrained(str(folder))

    def make_objective(self, model) -> ClassificationObjective:
        return ClassificationObjective(model)

    def run_record(self) -> dict:
        t = self.task
        return {"config": self.config.to_dict(), "source": self.source, "max_length": self.max_length,
                "task": {"name": t.name, "kind": t.kind, "labels": list(t.labels), "train_examples": len(t.train),
                         "heldout_examples": len(t.heldout), "eval_examples": len(self.eval_examples), **t.info},
                "baseline": {"majority": self.baseline}, "model": self.model.config.to_dict(),
                "command": " ".join(sys.argv)}

    def _save(self):
        """A checkpoint, then the run folder's links to its model files (so `from_pretrained(RUN_DIR)` loads it)."""
        super()._save()
        if self.dist.main:
            link_newest(self.run_dir)

    def evaluate(self) -> dict:
        """Held-out accuracy, macro-F1 and loss (the fixed eval sample)."""
        return evaluate_encoded(self.model, self.eval_set, len(self.task.labels), self.tokenizer.pad_token_id)

    def eval_message(self, result: dict) -> str:
        return (f"step {self.step} ({self.train_seconds / 60:.1f} min): held-out accuracy {result['accuracy']:.3f}, "
                f"macro-F1 {result['macro_f1']:.3f} (majority baseline {self.baseline['accuracy']:.3f} / "
                f"{self.baseline['macro_f1']:.3f}), loss {result['loss']:.3f}")


def finetune(model=None, task: str | None = None, out="runs/finetune", *, resume: bool = False,
             device: str = "auto", progress: bool = True, **settings) -> Path:
    """Fine-tune `model` (None = the default model; a model / run / checkpoint folder or a hub name) on `task`
    (a built-in task name, a CSV/TSV/JSONL file or datasets:FORMAT:PATH) into the run folder `out`.

    settings: FinetuneConfig fields (steps or epochs, batch_size, lr, seed, heldout, max_length, ...).
    With `resume`, the run continues from its newest checkpoint with its own settings (any given must match).
    Returns the run folder; its newest checkpoint loads with AutoModelFor{Sequence,Token}Classification.
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    if model is not None:
        settings["model"] = str(model)
    if task is not None:
        settings["task"] = str(task)
    if "steps" in settings and "epochs" in settings:
        raise AttnlensError("give --steps or --epochs, not both")
    run_dir = Path(out).expanduser()
    if resume:
        run_file = run_dir / RUN_FILE
        if not run_file.is_file():
            raise AttnlensError(f"cannot resume: {run_dir} is not a run folder (no {RUN_FILE})")
        saved = json.loads(run_file.read_text(encoding="utf-8"))["config"]
        differ = [k for k, v in settings.items() if saved.get(k) != v]
        if differ:
            raise AttnlensError(f"--resume with settings that differ from the run's: {', '.join(differ)}")
        config = FinetuneConfig.from_dict(saved)
        the_task = load_task(config.task, config.heldout, config.seed)
        return FinetuneTrainer(the_task, run_dir, None, resume=True, device=device, progress=progress).train()
    if "task" not in settings:
        raise AttnlensError("--task is required: a built-in task (source, order, boundary) or a task file")
    config = FinetuneConfig(**settings)
    the_task = load_task(config.task, config.heldout, config.seed)
    config = config.with_steps_for(len(the_task.train))
    return FinetuneTrainer(the_task, run_dir, config, device=device, progress=progress).train()
