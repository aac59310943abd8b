"""The pretraining loss: masked-LM cross-entropy at the chosen positions + NSP cross-entropy.

The MLM head runs only on the chosen (masked) positions, ~15% of the tokens, which saves
most of its vocabulary-sized matmul. Sums are divided by counts over the *global* batch
(times the world size, as DDP averages gradients), so torchrun processes compute the gradient
of the global batch: with dropout 0 (`tiny`) they reproduce a single process up to float
summation order. With dropout (`mini` and up) they do not: each process draws its own dropout
masks for its rows from its own RNG, so a DDP run is another random draw of the same training
(on the tests' small corpus `mini` weights differ by up to ~5e-3 after 6 steps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# order of the entries of the statistics vector the objective returns
STATS = ("mlm_loss_sum", "mlm_correct", "mlm_count", "nsp_loss_sum", "nsp_correct", "nsp_count",
         "mask_correct", "mask_count", "random_correct", "random_count", "kept_correct", "kept_count")
# the chosen positions split by what the input shows there: [MASK], a random token, the original token
MLM_KINDS = ("mask", "random", "kept")


class PretrainingObjective(nn.Module):
    """Wraps a BertForPreTraining; forward returns (loss, statistics [12], see STATS).

    `mask_id` splits the MLM accuracy by what the input holds at a chosen position: `[MASK]`, a
    random token, or the original token (a random draw equal to the original counts as kept).
    """

    def __init__(self, model, mask_id: int = -1):
        super().__init__()
        self.model = model
        self.mask_id = int(mask_id)

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
            correct = mlm_logits.argmax(-1) == targets  # [M]
            shown = input_ids[chosen]  # [M] what the model saw at each chosen position
            kinds = (shown == self.mask_id, (shown != self.mask_id) & (shown != targets), shown == targets)
            stats = torch.stack([
                mlm_sum.detach(), correct.sum().float(), torch.tensor(float(targets.numel()), device=hidden.device),
                nsp_sum.detach(), (nsp_logits.argmax(-1) == next_sentence_label).sum().float(),
                torch.tensor(float(next_sentence_label.numel()), device=hidden.device),
                *(x for kind in kinds for x in ((correct & kind).sum().float(), kind.sum().float())),
            ])  # [12]
        return loss, stats


def summarize_stats(stats) -> dict[str, float]:
    """Mean losses and accuracies from summed statistics."""
    s = dict(zip(STATS, [float(x) for x in stats]))
    return {
        "mlm_loss": s["mlm_loss_sum"] / max(1.0, s["mlm_count"]),
        "mlm_acc": s["mlm_correct"] / max(1.0, s["mlm_count"]),  # all chosen positions (BERT's usual figure)
        **{f"mlm_acc_{k}": s[f"{k}_correct"] / max(1.0, s[f"{k}_count"]) for k in MLM_KINDS},
        "nsp_loss": s["nsp_loss_sum"] / max(1.0, s["nsp_count"]),
        "nsp_acc": s["nsp_correct"] / max(1.0, s["nsp_count"]),
    }
