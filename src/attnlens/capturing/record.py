"""`capture` and `capture_batch`: Captures of the inputs a user gives, through the one batcher."""

from __future__ import annotations

from typing import Iterable

from ..errors import AttnlensError
from .batcher import batches
from .data import Capture
from .inputs import Pair
from .loading import LoadedModel, resolve_model


def capture_batch(model: LoadedModel | str | None, pairs: Iterable[Pair | str], *, truncate: bool = False,
                  batch_size: int = 16, values: bool = False) -> list[Capture]:
    """Capture many inputs; items are `(sentence_a, sentence_b or None)` or a plain string.

    Inputs are grouped by length to limit padding; each returned Capture holds only its
    real tokens, in the order given. values=True also records each head's value norms
    (Capture.value_norms, for the value_norm lens).
    """
    lm = resolve_model(model)
    items = list(pairs)
    if not items:
        raise AttnlensError("nothing to capture: the list of inputs is empty")
    results: list[Capture | None] = [None] * len(items)
    for batch in batches(lm, items, batch_size=max(1, batch_size), truncate=truncate, values=values):
        for row, i in enumerate(batch.index):
            results[i] = batch.capture(row)
    return results  # type: ignore[return-value]


def capture(text_a: str, text_b: str | None = None, *, model: LoadedModel | str | None = None,
            truncate: bool = False, values: bool = False) -> Capture:
    """Capture attention and per-head q/k for one sentence or sentence pair (values=True: value norms too)."""
    return capture_batch(model, [(text_a, text_b)], truncate=truncate, values=values)[0]
