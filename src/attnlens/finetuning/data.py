"""Fine-tuning data: examples -> token ids (BERT's inputs) -> padded batches, and the seeded batch stream.

Sequence tasks are `[CLS] A [SEP]`, pair tasks `[CLS] A [SEP] B [SEP]` with segment ids 0 / 1 (the
tokenizer's own pair encoding, truncated longest-first to `max_length`); token tasks label the first
piece of each word with its tag and every other piece and special token with -100 (no loss), as in the
BERT paper. The stream is a pure function of (seed, step), so a resumed or distributed run sees exactly
the batches of an uninterrupted single-process run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AttnlensError
from ..pretraining.data import seed_for
from .tasks import Task

IGNORE = -100  # label of positions without a loss (cross_entropy's ignore_index)


@dataclass
class Encoded:
    """Examples as token ids: one array per example (different lengths)."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: list  # int per example, or an int64 array [T] per example (token tasks)

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_examples(task: Task, examples, tokenizer, max_length: int) -> Encoded:
    """Token ids, segment ids and label ids of `examples` (a list of tasks.Example) of `task`."""
    if not examples:
        raise AttnlensError(f"task {task.name}: no examples to encode")
    label_ids = task.label_ids(examples)
    if task.kind == "token":
        enc = tokenizer([list(ex.a) for ex in examples], is_split_into_words=True, truncation=True,
                        max_length=max_length)
        labels = []
        for row, tags in enumerate(label_ids):
            row_labels = np.full(len(enc["input_ids"][row]), IGNORE, dtype=np.int64)  # [T]
            previous = None
            for position, word in enumerate(enc.word_ids(row)):
                if word is not None and word != previous:  # the first piece of each word
                    row_labels[position] = tags[word]
                previous = word
            labels.append(row_labels)
    else:
        enc = tokenizer([ex.a for ex in examples], [ex.b for ex in examples] if task.kind == "pair" else None,
                        truncation=True, max_length=max_length)
        labels = list(label_ids)
    ids = [np.asarray(x, dtype=np.int64) for x in enc["input_ids"]]
    types = enc.get("token_type_ids") or [[0] * len(x) for x in ids]  # RoBERTa-style tokenizers have none
    return Encoded(ids, [np.asarray(x, dtype=np.int64) for x in types], labels)


@dataclass
class ClassificationBatch:
    """Tensors of one batch, right-padded to its longest input."""

    input_ids: torch.Tensor  # [B, T]
    token_type_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T] 1 = real token
    labels: torch.Tensor  # [B] class ids, or [B, T] tag ids with IGNORE (token tasks)

    def rows(self, index) -> "ClassificationBatch":
        return ClassificationBatch(*(t[index] for t in (self.input_ids, self.token_type_ids, self.attention_mask,
                                                        self.labels)))

    def to(self, device) -> "ClassificationBatch":
        return ClassificationBatch(*(t.to(device, non_blocking=True) for t in (
            self.input_ids, self.token_type_ids, self.attention_mask, self.labels)))


def collate(encoded: Encoded, index, pad_id: int) -> ClassificationBatch:
    """The examples `index` of `encoded` as one right-padded batch."""
    index = [int(i) for i in index]
    width = max(len(encoded.input_ids[i]) for i in index)
    input_ids = np.full((len(index), width), pad_id, dtype=np.int64)  # [B, T]
    token_type_ids = np.zeros((len(index), width), dtype=np.int64)  # [B, T]
    attention_mask = np.zeros((len(index), width), dtype=np.int64)  # [B, T]
    token_level = isinstance(encoded.labels[index[0]], np.ndarray)
    labels = np.full((len(index), width), IGNORE, dtype=np.int64) if token_level else np.zeros(len(index), np.int64)
    for row, i in enumerate(index):
        n = len(encoded.input_ids[i])
        input_ids[row, :n] = encoded.input_ids[i]
        token_type_ids[row, :n] = encoded.token_type_ids[i]
        attention_mask[row, :n] = 1
        if token_level:
            labels[row, :n] = encoded.labels[i]
        else:
            labels[row] = encoded.labels[i]
    return ClassificationBatch(*(torch.from_numpy(a) for a in (input_ids, token_type_ids, attention_mask, labels)))


class ExampleStream:
    """Global batch `step` of an endless stream of the training examples, reshuffled every epoch:
    epoch e visits them in the order of a permutation seeded by (seed, e)."""

    def __init__(self, encoded: Encoded, batch_size: int, seed: int, pad_id: int):
        if len(encoded) == 0:
            raise AttnlensError("the task has no training examples")
        self.encoded, self.batch_size, self.seed, self.pad_id = encoded, batch_size, seed, pad_id
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k >= epoch - 1}
            self._orders[epoch] = np.random.default_rng(seed_for(self.seed, 11, epoch)).permutation(len(self.encoded))
        return self._orders[epoch]

    def indices(self, step: int) -> np.ndarray:
        """The example numbers of global batch `step` (crossing into the next epoch when needed)."""
        size = len(self.encoded)
        sample = step * self.batch_size + np.arange(self.batch_size)  # global sample numbers
        return np.array([self.order(int(s // size))[s % size] for s in sample])

    def batch(self, step: int) -> ClassificationBatch:
        return collate(self.encoded, self.indices(step), self.pad_id)
