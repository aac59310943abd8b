"""The one batcher: every pass over many inputs (capture_batch, the atlas, causal checks,
explanations, later corpus passes) tokenizes, groups by length, right-pads and runs through here.

Inputs are read ahead in windows of `batch_size * READ_AHEAD_BATCHES`, sorted by length
within a window, and cut into batches of at most `batch_size` inputs and MAX_BATCH_CELLS
inputs x tokens^2, so one batch's attention (and memory) stays bounded whatever the lengths.
Padding is always on the right: BERT-style absolute positions count from the first token,
so left padding would shift them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import AttnlensError
from .attention import forward_attention
from .data import Capture
from .inputs import Pair, check_pair
from .loading import LoadedModel

READ_AHEAD_BATCHES = 16  # batches of inputs read ahead and sorted by length together
MAX_BATCH_CELLS = 32 * 64 * 64  # inputs x tokens x tokens per batch: long inputs go in smaller batches


@dataclass(frozen=True)
class TokenInfo:
    """The token metadata of one encoded input (the non-array fields of a Capture's input).

    tokens [T] str; token_ids, segment_ids, word_ids int64 [T]; special_mask bool [T]
    (see Capture for their meaning). Patterns build their Layout from it (patterns.layout_of).
    """

    tokens: list[str]
    token_ids: np.ndarray
    segment_ids: np.ndarray
    word_ids: np.ndarray
    special_mask: np.ndarray


def encode(lm: LoadedModel, pair: Pair, *, truncate: bool = False):
    """Tokenize one checked input with the tokenizer's own (pair) encoding; checks the length."""
    limit = lm.max_length
    enc = lm.tokenizer(pair[0], pair[1], truncation=bool(truncate), max_length=limit if truncate else None)
    n = len(enc["input_ids"])
    if n > limit:
        raise AttnlensError(f"input is {n} tokens but the model takes at most {limit}; "
                            "pass truncate=True (--truncate) to cut it")
    return enc


def token_info(lm: LoadedModel, enc) -> TokenInfo:
    """Tokens, segment ids, global word ids (B's words numbered after A's) and specials of one encoding."""
    ids = list(enc["input_ids"])
    sequence_ids = enc.sequence_ids()
    word_ids = enc.word_ids()
    special = np.array([s is None for s in sequence_ids], dtype=bool)  # [T]
    segments = np.zeros(len(ids), dtype=np.int64)  # [T]
    current = 0
    for i, s in enumerate(sequence_ids):
        current = s if s is not None else current  # a special token belongs to the sentence before it
        segments[i] = current
    first_b_word = 1 + max((w for w, s in zip(word_ids, sequence_ids) if s == 0 and w is not None), default=-1)
    words = np.array([
        -1 if w is None else w + (first_b_word if s == 1 else 0) for w, s in zip(word_ids, sequence_ids)
    ], dtype=np.int64)  # [T]
    tokens = lm.tokenizer.convert_ids_to_tokens(ids)
    return TokenInfo(tokens, np.array(ids, dtype=np.int64), segments, words, special)


@dataclass
class Batch:
    """One forward pass over several inputs, right-padded to the longest.

    index [B]: position of each row's input in the stream given to `batches`.
    attentions [B, L, H, T, T], queries / keys [B, L, H, T, D] float32; mask [B, T] (1 = real token).
    """

    lm: LoadedModel
    index: list[int]
    pairs: list[Pair]
    encodings: list
    attentions: np.ndarray
    queries: np.ndarray
    keys: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.index)

    def length(self, row: int) -> int:
        return int(self.mask[row].sum())  # real tokens come first (right padding)

    def token_info(self, row: int) -> TokenInfo:
        return token_info(self.lm, self.encodings[row])

    def capture(self, row: int) -> Capture:
        """The Capture of one row: only its real tokens, arrays copied out of the batch."""
        n = self.length(row)
        info = self.token_info(row)
        own = np.ascontiguousarray if len(self) == 1 else np.array  # copy out of the shared batch buffer
        return Capture(
            tokens=info.tokens, token_ids=info.token_ids, segment_ids=info.segment_ids, word_ids=info.word_ids,
            special_mask=info.special_mask,
            attentions=own(self.attentions[row, :, :, :n, :n]),  # [L, H, T, T]
            queries=own(self.queries[row, :, :, :n]),  # [L, H, T, D]
            keys=own(self.keys[row, :, :, :n]),  # [L, H, T, D]
            text_a=self.pairs[row][0], text_b=self.pairs[row][1], model_name=self.lm.name,
        )


def length_groups(lengths: list[int], batch_size: int, max_cells: int | None = None) -> list[list[int]]:
    """Positions of `lengths` sorted by length and cut into batches (<= batch_size inputs, <= max_cells cells)."""
    max_cells = MAX_BATCH_CELLS if max_cells is None else max_cells
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    group: list[int] = []
    for i in order:
        n = lengths[i]  # the longest so far: the order is sorted
        if group and (len(group) >= batch_size or (len(group) + 1) * n * n > max_cells):
            groups.append(group)
            group = []
        group.append(i)
    if group:
        groups.append(group)
    return groups


def run_batch(lm: LoadedModel, index: list[int], pairs: list[Pair], encodings: list) -> Batch:
    """Pad `encodings` on the right and forward them with the q/k hooks."""
    names = [k for k in lm.tokenizer.model_input_names if k in encodings[0]]
    padded = lm.tokenizer.pad([{k: enc[k] for k in names} for enc in encodings], return_tensors="pt",
                              padding_side="right")
    attn, q, k, mask = forward_attention(lm, padded)
    return Batch(lm, index, pairs, encodings, attn, q, k, mask)


def batches(lm: LoadedModel, items: Iterable, *, batch_size: int = 32, truncate: bool = False,
            skip: Callable[[str], None] | None = None, read_ahead: int = READ_AHEAD_BATCHES) -> Iterator[Batch]:
    """Check, encode, group by length and run `items` (sentences or (A, B) pairs), consumed once.

    skip None: an unusable or too-long input is an AttnlensError. Otherwise it is passed over
    and `skip(reason)` is called, so a corpus pass can count what it left out.
    """
    if batch_size < 1:
        raise AttnlensError(f"batch_size must be at least 1, got {batch_size}")
    window = batch_size * max(1, read_ahead)
    buffer: list[tuple[int, Pair, object]] = []

    def flush():
        groups = length_groups([len(enc["input_ids"]) for _, _, enc in buffer], batch_size)
        for group in groups:
            rows = [buffer[i] for i in group]
            yield run_batch(lm, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
        buffer.clear()

    for position, item in enumerate(items):
        try:
            pair = check_pair(item)
        except AttnlensError:
            if skip is None:
                raise
            skip("empty or not text")
            continue
        try:
            enc = encode(lm, pair, truncate=truncate)
        except AttnlensError:
            if skip is None:
                raise
            skip(f"longer than {lm.max_length} tokens")
            continue
        buffer.append((position, pair, enc))
        if len(buffer) >= window:
            yield from flush()
    yield from flush()
