"""The configuration of a fine-tuning run (saved in run.json; `--resume` must match it)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from ..errors import AttnlensError

DEFAULT_STEPS = 1000


@dataclass
class FinetuneConfig:
    """Everything that determines a fine-tuning run. `epochs` (if given) sets `steps` from the training set's
    size (finetune() does it); the lr warms up linearly over `warmup_fraction` of the steps, then decays
    linearly to 0 (BERT's fine-tuning schedule)."""

    model: str | None = None  # model folder, run folder or hub name; None = the default model
    task: str = "source"
    heldout: str | None = None  # a held-out file / datasets source for a file task
    steps: int = DEFAULT_STEPS
    epochs: float | None = None  # when given, finetune() sets steps from it (kept as a record)
    batch_size: int = 32
    lr: float = 5e-5
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    adam_eps: float = 1e-8
    clip_norm: float = 1.0
    max_length: int = 128
    seed: int = 0
    eval_every: int = 100
    save_every: int = 100
    eval_limit: int = 2000  # held-out examples evaluated during training (a fixed seeded sample; 0 = all)

    def __post_init__(self):
        if self.steps < 1:
            raise AttnlensError(f"--steps must be at least 1, got {self.steps}")
        if self.epochs is not None and not self.epochs > 0:
            raise AttnlensError(f"--epochs must be above 0, got {self.epochs}")
        if self.batch_size < 1:
            raise AttnlensError(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0:
            raise AttnlensError(f"learning rate must be above 0, got {self.lr}")
        if self.max_length < 4:
            raise AttnlensError(f"max length {self.max_length} is too short (need at least 4)")
        if self.eval_every < 1 or self.save_every < 1:
            raise AttnlensError("eval/save intervals must be at least 1 step")
        if self.eval_limit < 0:
            raise AttnlensError(f"eval limit must be 0 (all) or more, got {self.eval_limit}")

    def with_steps_for(self, train_examples: int) -> "FinetuneConfig":
        """This config with `steps` set from `epochs` for a training set of `train_examples` (as is without)."""
        if self.epochs is None:
            return self
        return replace(self, steps=max(1, math.ceil(self.epochs * train_examples / self.batch_size)))

    @property
    def warmup_steps(self) -> int:
        return max(1, int(round(self.steps * self.warmup_fraction)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak lr at optimizer step `step` (0-based): linear warmup, then linear decay to 0."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        return max(0.0, (self.steps - step) / max(1, self.steps - self.warmup_steps))
