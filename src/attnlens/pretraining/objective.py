"""The pretraining losses: masked-LM cross-entropy at the chosen positions + NSP cross-entropy (BERT,
`--objective mlm-nsp`), or next-token cross-entropy (a GPT-2-style decoder, `--objective clm`); the
registry PRETRAINING_OBJECTIVES names what the Trainer builds, feeds and optimises for each.

The MLM head runs only on the chosen (masked) positions, ~15% of the tokens, which saves
most of its vocabulary-sized matmul. Sums are divided by counts over the *global* batch
(times the world size, as DDP averages gradients), so torchrun processes compute the gradient
of the global batch: with dropout 0 (`tiny`) they reproduce a single process up to float
summation order. With dropout (`mini` and up) they do not: each process draws its own dropout
masks for its rows from its own RNG, so a DDP run is another random draw of the same training
(on the tests' small corpus `mini` weights differ by up to ~5e-3 after 6 steps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import bert_config, gpt2_config
from .data import make_batch, make_lm_batch

# order of the entries of the statistics vector the objective returns
STATS = ("mlm_loss_sum", "mlm_correct", "mlm_count", "nsp_loss_sum", "nsp_correct", "nsp_count",
         "mask_correct", "mask_count", "random_correct", "random_count", "kept_correct", "kept_count")
# the chosen positions split by what the input shows there: [MASK], a random token, the original token
MLM_KINDS = ("mask", "random", "kept")


class Objective(nn.Module):
    """What the training loop (pretraining/trainer.py TrainLoop) optimises: the pluggable loss.

    An objective wraps the model (DDP wraps the objective) and defines:
      stats                       names of the statistics vector forward returns (summed over batches);
      norms(batch, world)         the divisors of the summed losses, from the *global* batch (divided by the
                                  world size, as DDP averages gradients), so processes compute the global
                                  batch's gradient;
      forward(batch, *norms)      (loss, stats [len(stats)]) on this process's rows of the batch;
      summarize(stats)            {name: mean} for metrics.jsonl;
      postfix(summary)            {name: text} for the progress bar.
    """

    stats: tuple[str, ...] = ()

    def norms(self, batch, world: int) -> tuple[float, ...]:
        raise NotImplementedError

    def summarize(self, stats) -> dict[str, float]:
        raise NotImplementedError

    def postfix(self, summary: dict) -> dict[str, str]:
        return {"loss": f"{summary['loss']:.3f}"}


class PretrainingObjective(Objective):
    """Wraps a BertForPreTraining; forward(batch, mlm_norm, nsp_norm) returns (loss, statistics [12], see STATS)
    for a pretraining/data.py Batch.

    `mask_id` splits the MLM accuracy by what the input holds at a chosen position: `[MASK]`, a
    random token, or the original token (a random draw equal to the original counts as kept).
    """

    stats = STATS
    # what `attnlens pretrain --objective mlm-nsp` trains (see PRETRAINING_OBJECTIVES)
    model_class = "BertForPreTraining"
    batcher = staticmethod(make_batch)

    def __init__(self, model, mask_id: int = -1):
        super().__init__()
        self.model = model
        self.mask_id = int(mask_id)

    @staticmethod
    def model_config(size: str, tokenizer):
        return bert_config(size, len(tokenizer), tokenizer.pad_token_id)

    @classmethod
    def for_tokenizer(cls, model, tokenizer) -> "PretrainingObjective":
        return cls(model, tokenizer.mask_token_id)

    @staticmethod
    def baseline(pairs, batch, top: int) -> dict[str, float]:
        """Accuracies of always predicting the most frequent training token (MLM) and the majority NSP label."""
        chosen = batch.labels[batch.labels != -100]
        return {"mlm_acc": float((chosen == top).float().mean()) if len(chosen) else 0.0,
                "nsp_acc": float(max(pairs.next_sentence_label.mean(), 1 - pairs.next_sentence_label.mean()))}

    @staticmethod
    def describe(result: dict, baseline: dict) -> str:
        return (f"held-out MLM acc at [MASK] {result['mlm_acc_mask']:.3f} (all chosen {result['mlm_acc']:.3f}, "
                f"baseline {baseline['mlm_acc']:.3f}), NSP acc {result['nsp_acc']:.3f}")

    def norms(self, batch, world: int) -> tuple[float, float]:
        """(masked positions, pairs) of the global batch, each over the world size."""
        return float((batch.labels != -100).sum().clamp(min=1)) / world, len(batch.labels) / world

    def summarize(self, stats) -> dict[str, float]:
        return summarize_stats(stats)

    def postfix(self, summary: dict) -> dict[str, str]:
        return {"loss": f"{summary['mlm_loss'] + summary['nsp_loss']:.3f}", "mlm_acc": f"{summary['mlm_acc']:.3f}"}

    def forward(self, batch, mlm_norm: float, nsp_norm: float):
        input_ids, token_type_ids, attention_mask = batch.input_ids, batch.token_type_ids, batch.attention_mask
        labels, next_sentence_label = batch.labels, batch.next_sentence_label
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


CLM_STATS = ("lm_loss_sum", "lm_correct", "lm_count")


class CausalLMObjective(Objective):
    """Next-token loss of a GPT-2-style decoder (a transformers *LMHeadModel): position t predicts token t + 1.

    It trains on the very inputs the MLM + NSP objective sees (the same packed `[CLS] A [SEP] B [SEP]`
    pairs of pretraining/data.py, IsNext and NotNext, unmasked), so the two objectives can be compared on
    one token budget. Every real token but the first is a target (the [SEP]s too); padding is not.
    forward(batch, lm_norm) returns (loss, statistics [3], see CLM_STATS); like the MLM head, the LM head
    runs only on the target positions.
    """

    stats = CLM_STATS
    # what `attnlens pretrain --objective clm` trains (see PRETRAINING_OBJECTIVES)
    model_class = "GPT2LMHeadModel"
    batcher = staticmethod(make_lm_batch)

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def model_config(size: str, tokenizer):
        return gpt2_config(size, len(tokenizer), tokenizer.pad_token_id, tokenizer.cls_token_id,
                           tokenizer.sep_token_id)

    @classmethod
    def for_tokenizer(cls, model, tokenizer) -> "CausalLMObjective":
        return cls(model)

    @staticmethod
    def targets(labels: torch.Tensor) -> torch.Tensor:
        """[B, T - 1]: the token each position up to the last-but-one predicts (-100: none)."""
        return labels[:, 1:]

    def norms(self, batch, world: int) -> tuple[float]:
        """Predicted positions of the global batch over the world size."""
        return (float((self.targets(batch.labels) != -100).sum().clamp(min=1)) / world,)

    def summarize(self, stats) -> dict[str, float]:
        s = dict(zip(CLM_STATS, [float(x) for x in stats]))
        loss = s["lm_loss_sum"] / max(1.0, s["lm_count"])
        return {"lm_loss": loss, "lm_acc": s["lm_correct"] / max(1.0, s["lm_count"]),
                "lm_perplexity": math.exp(min(loss, 50.0))}

    def postfix(self, summary: dict) -> dict[str, str]:
        return {"loss": f"{summary['lm_loss']:.3f}", "lm_acc": f"{summary['lm_acc']:.3f}"}

    @staticmethod
    def baseline(pairs, batch, top: int) -> dict[str, float]:
        """Accuracy of always predicting the most frequent training token."""
        targets = CausalLMObjective.targets(batch.labels)
        chosen = targets[targets != -100]
        return {"lm_acc": float((chosen == top).float().mean()) if len(chosen) else 0.0}

    @staticmethod
    def describe(result: dict, baseline: dict) -> str:
        return (f"held-out next-token acc {result['lm_acc']:.3f} (baseline {baseline['lm_acc']:.3f}), "
                f"loss {result['lm_loss']:.3f}")

    def forward(self, batch, lm_norm: float):
        out = self.model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
        hidden = out.last_hidden_state[:, :-1]  # [B, T-1, hidden] position t reads tokens 0..t
        targets = self.targets(batch.labels)  # [B, T-1] token t + 1
        chosen = targets != -100  # [B, T-1]
        wanted = targets[chosen]  # [M]
        logits = self.model.get_output_embeddings()(hidden[chosen]).float()  # [M, vocab]
        loss_sum = F.cross_entropy(logits, wanted, reduction="sum")
        with torch.no_grad():
            stats = torch.stack([loss_sum.detach(), (logits.argmax(-1) == wanted).sum().float(),
                                 torch.tensor(float(wanted.numel()), device=logits.device)])  # [3]
        return loss_sum / lm_norm, stats


# `attnlens pretrain --objective NAME`: what the Trainer builds, feeds and optimises for each objective
PRETRAINING_OBJECTIVES: dict[str, type[Objective]] = {"mlm-nsp": PretrainingObjective, "clm": CausalLMObjective}
