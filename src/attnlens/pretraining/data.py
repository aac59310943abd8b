"""Pretraining data: documents -> token segments -> NSP sentence pairs -> masked-LM batches.

Pairs follow BERT's recipe: sentences of one document are packed into a chunk up to a
target length (with probability `short_seq_prob` a shorter random target), the chunk is
split into A and B; half the time B is replaced by text from another document (NotNext).
Over-long pairs are truncated one token at a time from the longer side, at a random end.

Everything is a pure function of (seed, epoch) or (seed, step), so a resumed or
distributed run sees exactly the batches an uninterrupted single-process run would.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import AttnlensError

IS_NEXT, NOT_NEXT = 0, 1  # transformers' next_sentence_label convention


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (seed, epoch, step, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def split_documents(documents: list[list[str]], seed: int, fraction: float = 0.05):
    """(train, held-out): a seeded held-out split of whole documents (at least one when there are
    more than two), for a corpus given without a held-out part. The trainer and emergence share it."""
    order = np.random.default_rng(seed_for(seed, 5)).permutation(len(documents))
    n_held = max(1, int(round(len(documents) * fraction))) if len(documents) > 2 else 0
    held = set(order[:n_held].tolist())
    return ([d for i, d in enumerate(documents) if i not in held], [d for i, d in enumerate(documents) if i in held])


def fingerprint(documents: list[list[str]]) -> str:
    """SHA-1 of documents' text (a run records its splits' so that a test can check them against the corpus)."""
    return hashlib.sha1("\n\n".join("\n".join(d) for d in documents).encode("utf-8")).hexdigest()


def tokenize_documents(documents: list[list[str]], tokenizer) -> list[list[np.ndarray]]:
    """Each document as a list of sentences of token ids (no special tokens); empty ones dropped."""
    flat = [s for doc in documents for s in doc]
    if not flat:
        return []
    ids = tokenizer(flat, add_special_tokens=False)["input_ids"]  # list of lists, batched in Rust
    out, cursor = [], 0
    for doc in documents:
        sentences = [np.asarray(x, dtype=np.int32) for x in ids[cursor:cursor + len(doc)] if len(x)]
        cursor += len(doc)
        if sentences:
            out.append(sentences)
    return out


def check_documents(docs: list[list[np.ndarray]], what: str = "corpus") -> None:
    """NSP needs a second document to draw NotNext sentences from."""
    if len(docs) < 2:
        raise AttnlensError(
            f"the {what} has {len(docs)} non-empty document(s); next-sentence prediction needs at least 2 "
            "(documents are separated by blank lines)")


@dataclass
class PairSet:
    """Sentence pairs `[CLS] A [SEP] B [SEP]`, padded to `seq_len`."""

    input_ids: np.ndarray  # [N, seq_len] int64, padded with pad id
    token_type_ids: np.ndarray  # [N, seq_len] int64 (0 = A incl. [CLS] and first [SEP], 1 = B)
    lengths: np.ndarray  # [N] real tokens per pair
    next_sentence_label: np.ndarray  # [N] IS_NEXT / NOT_NEXT

    def __len__(self) -> int:
        return len(self.lengths)

    def take(self, index: np.ndarray) -> "PairSet":
        return PairSet(self.input_ids[index], self.token_type_ids[index], self.lengths[index],
                       self.next_sentence_label[index])


def _truncate(a: np.ndarray, b: np.ndarray, max_tokens: int, rng: np.random.Generator):
    """Remove tokens from the longer side (front or back at random) until the pair fits."""
    a0, a1, b0, b1 = 0, len(a), 0, len(b)
    while (a1 - a0) + (b1 - b0) > max_tokens:
        if (a1 - a0) > (b1 - b0):
            if rng.random() < 0.5:
                a0 += 1
            else:
                a1 -= 1
        elif rng.random() < 0.5:
            b0 += 1
        else:
            b1 -= 1
    return a[a0:a1], b[b0:b1]


def make_pairs(docs: list[list[np.ndarray]], seq_len: int, ids: dict[str, int], rng: np.random.Generator,
               short_seq_prob: float = 0.1) -> PairSet:
    """One pass over every document, BERT-style; `ids` holds the cls/sep/pad token ids."""
    check_documents(docs)
    max_tokens = seq_len - 3  # [CLS], [SEP], [SEP]
    if max_tokens < 2:
        raise AttnlensError(f"sequence length {seq_len} is too short for a sentence pair (need at least 5)")
    rows_a, rows_b, labels = [], [], []
    for d, doc in enumerate(docs):
        target = max_tokens if rng.random() >= short_seq_prob else int(rng.integers(2, max_tokens + 1))
        chunk, length, i = [], 0, 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            if i == len(doc) - 1 or length >= target:
                is_next = rng.random() < 0.5
                if is_next and len(chunk) == 1 and i + 1 < len(doc):
                    i += 1  # a true next segment needs two sentences: take the following one
                    chunk.append(doc[i])
                a_end = 1 if len(chunk) < 2 else int(rng.integers(1, len(chunk)))
                a = np.concatenate(chunk[:a_end])
                if is_next and len(chunk) >= 2:
                    b, label = np.concatenate(chunk[a_end:]), IS_NEXT
                else:
                    other = int(rng.integers(0, len(docs) - 1))
                    other += other >= d  # any document but this one
                    odoc = docs[other]
                    start = int(rng.integers(0, len(odoc)))
                    parts, need = [], max(1, target - len(a))
                    for s in odoc[start:]:
                        parts.append(s)
                        if sum(len(p) for p in parts) >= need:
                            break
                    b, label = np.concatenate(parts), NOT_NEXT
                    i -= len(chunk) - a_end  # the unused sentences start the next chunk
                a, b = _truncate(a, b, max_tokens, rng)
                if len(a) and len(b):
                    rows_a.append(a)
                    rows_b.append(b)
                    labels.append(label)
                chunk, length = [], 0
            i += 1
    n = len(labels)
    input_ids = np.full((n, seq_len), ids["pad"], dtype=np.int64)  # [N, T]
    token_type_ids = np.zeros((n, seq_len), dtype=np.int64)  # [N, T]
    lengths = np.zeros(n, dtype=np.int64)
    for r, (a, b) in enumerate(zip(rows_a, rows_b)):
        la, lb = len(a), len(b)
        input_ids[r, 0] = ids["cls"]
        input_ids[r, 1:1 + la] = a
        input_ids[r, 1 + la] = ids["sep"]
        input_ids[r, 2 + la:2 + la + lb] = b
        input_ids[r, 2 + la + lb] = ids["sep"]
        token_type_ids[r, 2 + la:3 + la + lb] = 1
        lengths[r] = 3 + la + lb
    return PairSet(input_ids, token_type_ids, lengths, np.asarray(labels, dtype=np.int64))


def packed_text_pairs(documents: list[list[str]], tokenizer, seq_len: int, limit: int,
                      seed: int = 0) -> list[tuple[str, str]]:
    """Up to `limit` held-out (A, B) text pairs packed BERT-style like the training inputs (see make_pairs;
    IsNext and NotNext), decoded back to text so that the atlas can score heads on them; pairs whose text
    re-tokenizes to more than `seq_len` tokens are left out."""
    docs = tokenize_documents(documents, tokenizer)
    if len(docs) < 2 or limit <= 0:
        return []
    ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id}
    rng = np.random.default_rng(seed_for(seed, 7))
    pairs = make_pairs(docs, seq_len, ids, rng)
    out = []
    for row in rng.permutation(len(pairs)):
        tokens = pairs.input_ids[row, :pairs.lengths[row]]
        sep = np.flatnonzero(tokens == ids["sep"])
        a, b = tokenizer.decode(tokens[1:sep[0]]), tokenizer.decode(tokens[sep[0] + 1:sep[1]])
        if len(tokenizer(a, b)["input_ids"]) <= seq_len:
            out.append((a, b))
            if len(out) == limit:
                break
    return out


@dataclass
class Batch:
    """Tensors of one masked-LM + NSP batch."""

    input_ids: torch.Tensor  # [B, T] after masking
    token_type_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T] 1 = real token
    labels: torch.Tensor  # [B, T] original id at chosen positions, -100 elsewhere
    next_sentence_label: torch.Tensor  # [B]

    def rows(self, index) -> "Batch":
        return Batch(*(t[index] for t in (self.input_ids, self.token_type_ids, self.attention_mask,
                                           self.labels, self.next_sentence_label)))

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device, non_blocking=True) for t in (self.input_ids, self.token_type_ids,
                                                                  self.attention_mask, self.labels,
                                                                  self.next_sentence_label)))


@dataclass(frozen=True)
class Masker:
    """BERT's masking: choose `prob` of the non-special tokens; 80% [MASK], 10% random, 10% kept."""

    mask_id: int
    special_ids: tuple[int, ...]
    vocab_size: int
    prob: float = 0.15

    def __call__(self, input_ids: torch.Tensor, generator: torch.Generator):
        """(masked ids, labels, chosen) for `input_ids` [B, T]; pads must be among the special ids.

        Each row gets floor(prob * n) or that + 1 chosen tokens (stochastic rounding, so the
        expected rate is exactly `prob`), at uniformly random non-special positions.
        """
        special = torch.isin(input_ids, torch.tensor(self.special_ids))  # [B, T]
        n = (~special).sum(1).double()  # [B] candidate tokens per row
        expected = n * self.prob
        count = expected.floor() + (torch.rand(n.shape, generator=generator, dtype=torch.float64)
                                    < expected - expected.floor()).double()  # [B]
        scores = torch.rand(input_ids.shape, generator=generator)  # [B, T]
        scores[special] = 2.0  # never chosen: they sort last
        ranks = scores.argsort(1).argsort(1)  # [B, T] rank of each position in its row
        chosen = ranks < count[:, None]  # [B, T]
        action = torch.rand(input_ids.shape, generator=generator)  # [B, T]
        replace_mask = chosen & (action < 0.8)
        replace_random = chosen & (action >= 0.8) & (action < 0.9)
        allowed = torch.tensor([i for i in range(self.vocab_size) if i not in set(self.special_ids)])
        random_ids = allowed[torch.randint(len(allowed), input_ids.shape, generator=generator)]  # [B, T]
        masked = input_ids.clone()
        masked[replace_mask] = self.mask_id
        masked[replace_random] = random_ids[replace_random]
        labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))  # [B, T]
        return masked, labels, chosen


def make_batch(pairs: PairSet, masker: Masker, generator: torch.Generator) -> Batch:
    """Mask a set of pairs (fresh masks from `generator`) into a Batch."""
    input_ids = torch.from_numpy(pairs.input_ids)  # [B, T]
    masked, labels, _ = masker(input_ids, generator)
    attention_mask = (torch.arange(input_ids.shape[1])[None, :] < torch.from_numpy(pairs.lengths)[:, None]).long()
    return Batch(masked, torch.from_numpy(pairs.token_type_ids), attention_mask, labels,
                 torch.from_numpy(pairs.next_sentence_label))


def make_lm_batch(pairs: PairSet, masker=None, generator=None) -> Batch:
    """The pairs unmasked, as a next-token (causal LM) Batch: labels are the input ids at real tokens and
    -100 at padding; the objective shifts them (position t predicts token t + 1). Same signature as
    make_batch; it draws nothing."""
    input_ids = torch.from_numpy(pairs.input_ids)  # [B, T]
    attention_mask = (torch.arange(input_ids.shape[1])[None, :] < torch.from_numpy(pairs.lengths)[:, None]).long()
    labels = torch.where(attention_mask.bool(), input_ids, torch.full_like(input_ids, -100))  # [B, T]
    return Batch(input_ids, torch.from_numpy(pairs.token_type_ids), attention_mask, labels,
                 torch.from_numpy(pairs.next_sentence_label))


def eval_batch(held_ids: list[list[np.ndarray]], config, ids: dict[str, int], masker: Masker, make=make_batch):
    """(pairs, Batch): the fixed held-out evaluation set of a run with TrainConfig `config`
    (`config.eval_pairs` pairs drawn and masked with seeds derived from `config.seed`); `make` turns
    pairs into a batch (make_batch: BERT's masking; make_lm_batch: next-token labels)."""
    rng = np.random.default_rng(seed_for(config.seed, 3))
    pairs = make_pairs(held_ids, config.seq_len, ids, rng, config.short_seq_prob)
    pairs = pairs.take(rng.permutation(len(pairs))[: config.eval_pairs])
    return pairs, make(pairs, masker, torch.Generator().manual_seed(seed_for(config.seed, 4)))


class PairStream:
    """Global batch `step` of an endless, reshuffled-every-epoch stream of pairs: a pure function of (seed, step).

    Epoch e re-draws the pairs (new split points, new NotNext partners) with seed (seed, e)
    and visits them in a random order; masks are drawn per step with seed (seed, step).
    `make` turns a step's pairs into its batch (make_batch, or make_lm_batch for next-token training).
    """

    def __init__(self, docs, seq_len: int, ids: dict[str, int], masker: Masker, batch_size: int, seed: int,
                 short_seq_prob: float = 0.1, make=make_batch):
        check_documents(docs, "training corpus")
        self.make = make
        self.docs, self.seq_len, self.ids, self.masker = docs, seq_len, ids, masker
        self.batch_size, self.seed, self.short_seq_prob = batch_size, seed, short_seq_prob
        self._epochs: dict[int, PairSet] = {}

    def epoch(self, e: int) -> PairSet:
        """The shuffled pairs of epoch `e`, cut or wrapped to epoch 0's size so steps map to epochs by arithmetic."""
        if e not in self._epochs:
            rng = np.random.default_rng(seed_for(self.seed, 1, e))
            pairs = make_pairs(self.docs, self.seq_len, self.ids, rng, self.short_seq_prob)
            if len(pairs) == 0:
                raise AttnlensError("the training corpus produced no sentence pairs")
            order = rng.permutation(len(pairs))
            size = len(pairs) if e == 0 else self.epoch_size
            self._epochs = {k: v for k, v in self._epochs.items() if k == 0 or k >= e - 1}
            self._epochs[e] = pairs.take(np.resize(order, size))
        return self._epochs[e]

    @property
    def epoch_size(self) -> int:
        return len(self.epoch(0))

    def pairs_for_step(self, step: int) -> PairSet:
        """The `batch_size` pairs of global step `step` (crossing into the next epoch when needed)."""
        size = self.epoch_size
        index = step * self.batch_size + np.arange(self.batch_size)  # global sample numbers
        epochs, offsets = index // size, index % size
        parts = [self.epoch(int(e)).take(offsets[epochs == e]) for e in np.unique(epochs)]
        return PairSet(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                         ("input_ids", "token_type_ids", "lengths", "next_sentence_label")))

    def batch(self, step: int) -> Batch:
        generator = torch.Generator().manual_seed(seed_for(self.seed, 2, step))
        return self.make(self.pairs_for_step(step), self.masker, generator)
