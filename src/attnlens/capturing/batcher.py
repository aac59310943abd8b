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
from .attention import Forward, forward_attention
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
    forward: what the pass recorded (see capturing.attention.Forward); `attentions`
    [B, L, H, T, T] is recomputed from it on first access, queries / keys [B, L, H, T, D]
    float32, mask [B, T] (1 = real token).
    """

    lm: LoadedModel
    index: list[int]
    pairs: list[Pair]
    encodings: list
    forward: Forward | None  # None when the pass asked for no recording (record=False)
    inputs: dict  # the right-padded input tensors (CPU), what the model was (or would be) fed

    def __len__(self) -> int:
        return len(self.index)

    def recorded(self) -> Forward:
        if self.forward is None:
            raise AttnlensError("this batch was made with record=False: it holds inputs, not attention")
        return self.forward

    @property
    def attentions(self) -> np.ndarray:
        return self.recorded().attentions()  # [B, L, H, T, T]

    @property
    def queries(self) -> np.ndarray | None:
        return self.recorded().queries  # [B, L, H, T, D]

    @property
    def keys(self) -> np.ndarray | None:
        return self.recorded().keys  # [B, L, H, T, D]

    @property
    def mask(self) -> np.ndarray:
        return self.inputs["attention_mask"].numpy()  # [B, T]

    def length(self, row: int) -> int:
        return int(self.mask[row].sum())  # real tokens come first (right padding)

    def token_info(self, row: int) -> TokenInfo:
        return token_info(self.lm, self.encodings[row])

    def capture(self, row: int) -> Capture:
        """The Capture of one row: only its real tokens, arrays copied out of the batch.

        Its attention is sliced from the batch when the batch has computed it already, else
        recomputed from the row's own q/k on first access (`Capture.attentions`).
        """
        n = self.length(row)
        info = self.token_info(row)
        own = np.ascontiguousarray if len(self) == 1 else np.array  # copy out of the shared batch buffer
        fwd = self.recorded()

        def cut(x):  # [B, L, H, T, ...] (every axis from the fourth a token axis) -> this row's real tokens
            return None if x is None else own(x[(row, ..., *([slice(0, n)] * (x.ndim - 3)))])

        queries = keys = None
        if fwd.queries is not None:
            queries, keys = own(fwd.queries[row, :, :, :n]), own(fwd.keys[row, :, :, :n])  # [L, H, T, D]
        extras = {name: cut(x) for name, x in fwd.extras.items()}  # [L, H, T, ...]
        logits = fwd.logits  # a classifier's head output: [B, C] (sequence) or [B, T, C] (token classification)
        if logits is not None:
            logits = own(logits[row, :n] if logits.ndim == 3 else logits[row])  # [C] or [T, C]
        attentions, recipe = None, None
        if fwd._attentions is not None:
            attentions = np.array(fwd._attentions[row, :, :, :n, :n])  # [L, H, T, T] (a copy: it may be scratch)
        else:
            def recipe(q=queries, k=keys, extras=extras):  # this row alone, as a batch of one without padding
                return fwd.recompute(None if q is None else q[None], None if k is None else k[None], None,
                                     {name: x[None] for name, x in extras.items()})[0]
        return Capture(
            tokens=info.tokens, token_ids=info.token_ids, segment_ids=info.segment_ids, word_ids=info.word_ids,
            special_mask=info.special_mask, attentions=attentions, queries=queries, keys=keys,
            text_a=self.pairs[row][0], text_b=self.pairs[row][1], model_name=self.lm.name,
            value_norms=cut(fwd.value_norms), extras=extras, causal=self.lm.spec.causal, attention_recipe=recipe,
            logits=logits, bands=row_bands(fwd.recorder, n),
        )


def row_bands(recorder, n: int) -> list[tuple[int | None, int | None]] | None:
    """Each layer's band of allowed key offsets j - i as (lo, hi) for an input of n tokens (a side that cuts
    nothing at this length is None), from a recorder that knows them (`bands`, see families.interface)."""
    bands = getattr(recorder, "bands", None)
    if not bands:
        return None
    return [(None if band.left is None or band.left >= n - 1 else -band.left,
             None if band.right is None or band.right >= n - 1 else band.right) for band in bands]


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


def run_batch(lm: LoadedModel, index: list[int], pairs: list[Pair], encodings: list, *,
              values: bool = False, record: bool = True) -> Batch:
    """Pad `encodings` on the right and forward them with the family's recorder (record=False: no forward)."""
    names = [k for k in lm.tokenizer.model_input_names if k in encodings[0]]
    padded = lm.tokenizer.pad([{k: enc[k] for k in names} for enc in encodings], return_tensors="pt",
                              padding_side="right")
    forward = forward_attention(lm, padded, values=values) if record else None
    return Batch(lm, index, pairs, encodings, forward, dict(padded))


def batches(lm: LoadedModel, items: Iterable, *, batch_size: int = 32, truncate: bool = False,
            skip: Callable[[str], None] | None = None, read_ahead: int = READ_AHEAD_BATCHES,
            values: bool = False, record: bool = True, max_tokens: int | None = None) -> Iterator[Batch]:
    """Check, encode, group by length and run `items` (sentences or (A, B) pairs), consumed once.

    values=True also records each head's value norms (Capture.value_norms). record=False runs no
    forward: the batches hold only the padded inputs (`Batch.inputs`), for passes that run the
    model themselves (head importance, gradients).
    skip None: an unusable or too-long input is an AttnlensError. Otherwise it is passed over
    and `skip(reason)` is called, so a corpus pass can count what it left out. max_tokens: a lower limit than the
    model's own, for a pass whose cost grows too fast with the length (the flow lens).
    """
    if batch_size < 1:
        raise AttnlensError(f"batch_size must be at least 1, got {batch_size}")
    window = batch_size * max(1, read_ahead)
    buffer: list[tuple[int, Pair, object]] = []

    def flush():
        groups = length_groups([len(enc["input_ids"]) for _, _, enc in buffer], batch_size)
        for group in groups:
            rows = [buffer[i] for i in group]
            yield run_batch(lm, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], values=values,
                            record=record)
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
        if max_tokens is not None and len(enc["input_ids"]) > max_tokens:
            if skip is None:
                raise AttnlensError(f"input is {len(enc['input_ids'])} tokens; this pass takes at most {max_tokens}")
            skip(f"longer than {max_tokens} tokens")
            continue
        buffer.append((position, pair, enc))
        if len(buffer) >= window:
            yield from flush()
    yield from flush()

