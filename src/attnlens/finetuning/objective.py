"""The fine-tuning loss: cross-entropy of the classification head, for the TrainLoop (an Objective).

One rule covers every task kind: the loss is summed over the labelled positions (one per sequence or
pair; the first piece of each word in a token task, finetuning/data.py) and divided by their count in
the global batch, so torchrun processes compute the global batch's gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..capturing.attention import model_inputs
from ..pretraining.objective import Objective
from .data import IGNORE

STATS = ("loss_sum", "correct", "count")


def logits_of(model, batch) -> torch.Tensor:
    """The classifier's logits of a ClassificationBatch: [B, classes] or [B, T, classes] (token tasks)."""
    inputs = {"input_ids": batch.input_ids, "token_type_ids": batch.token_type_ids,
              "attention_mask": batch.attention_mask}
    return model(**model_inputs(model, inputs, batch.input_ids.device)).logits


class ClassificationObjective(Objective):
    """Wraps an *ForSequenceClassification / *ForTokenClassification; forward(batch, norm) -> (loss, stats [3])."""

    stats = STATS

    def __init__(self, model):
        super().__init__()
        self.model = model

    def norms(self, batch, world: int) -> tuple[float]:
        """The labelled positions of the global batch, over the world size."""
        return (float((batch.labels != IGNORE).sum().clamp(min=1)) / world,)

    def forward(self, batch, norm: float):
        logits = logits_of(self.model, batch).float()  # [B, C] or [B, T, C]
        chosen = batch.labels != IGNORE  # [B] or [B, T]
        targets = batch.labels[chosen]  # [M]
        picked = logits[chosen]  # [M, C]
        loss_sum = F.cross_entropy(picked, targets, reduction="sum")
        with torch.no_grad():
            stats = torch.stack([loss_sum.detach(), (picked.argmax(-1) == targets).sum().float(),
                                 torch.tensor(float(targets.numel()), device=logits.device)])  # [3]
        return loss_sum / norm, stats

    def summarize(self, stats) -> dict[str, float]:
        s = dict(zip(STATS, [float(x) for x in stats]))
        return {"loss": s["loss_sum"] / max(1.0, s["count"]), "acc": s["correct"] / max(1.0, s["count"])}

    def postfix(self, summary: dict) -> dict[str, str]:
        return {"loss": f"{summary['loss']:.3f}", "acc": f"{summary['acc']:.3f}"}
