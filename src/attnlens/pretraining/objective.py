"""The pretraining loss: masked-LM cross-entropy at the chosen positions + NSP cross-entropy.

The MLM head runs only on the chosen (masked) positions, ~15% of the tokens, which saves
most of its vocabulary-sized matmul. Sums are divided by counts over the *global* batch,
so torchrun processes averaging their gradients reproduce a single process exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# order of the entries of the statistics vector the objective returns
STATS = ("mlm_loss_sum", "mlm_correct", "mlm_count", "nsp_loss_sum", "nsp_correct", "nsp_count")


class PretrainingObjective(nn.Module):
    """Wraps a BertForPreTraining; forward returns (loss, statistics [6])."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask, labels, next_sentence_label,
                mlm_norm: float, nsp_norm: float):
        out = self.model.bert(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state  # [B, T, hidden]
        chosen = labels != -100  # [B, T]
        targets = labels[chosen]  # [M]
        mlm_logits = self.model.cls.predictions(hidden[chosen]).float()  # [M, vocab]
        nsp_logits = self.model.cls.seq_relationship(out.pooler_output).float()  # [B, 2]
        mlm_sum = F.cross_entropy(mlm_logits, targets, reduction="sum")
        nsp_sum = F.cross_entropy(nsp_logits, next_sentence_label, reduction="sum")
        loss = mlm_sum / mlm_norm + nsp_sum / nsp_norm
        with torch.no_grad():
            stats = torch.stack([
                mlm_sum.detach(), (mlm_logits.argmax(-1) == targets).sum().float(), torch.tensor(
                    float(targets.numel()), device=hidden.device),
                nsp_sum.detach(), (nsp_logits.argmax(-1) == next_sentence_label).sum().float(),
                torch.tensor(float(next_sentence_label.numel()), device=hidden.device),
            ])  # [6]
        return loss, stats


def summarize_stats(stats) -> dict[str, float]:
    """Mean losses and accuracies from summed statistics."""
    s = dict(zip(STATS, [float(x) for x in stats]))
    return {
        "mlm_loss": s["mlm_loss_sum"] / max(1.0, s["mlm_count"]),
        "mlm_acc": s["mlm_correct"] / max(1.0, s["mlm_count"]),
        "nsp_loss": s["nsp_loss_sum"] / max(1.0, s["nsp_count"]),
        "nsp_acc": s["nsp_correct"] / max(1.0, s["nsp_count"]),
    }
