"""`attnlens.explain`: the neuron-level explanation of a head's pattern, from captures or a corpus."""

from __future__ import annotations

from ..capturing import Capture, batches, resolve_model
from ..errors import AttnlensError
from ..patterns.explain import Explanation, explain_captures
from ..patterns.labels import label_heads
from ..patterns.scores import get_pattern
from ..patterns.stats import PatternStats
from .run import resolve_pairs

EXPLAIN_LIMIT = 64


def captures_of(source, model, limit: int) -> list[Capture]:
    """The Captures to explain: given ones, or the first `limit` usable inputs of a corpus, captured."""
    if isinstance(source, Capture):
        return [source]
    if isinstance(source, (list, tuple)) and source and all(isinstance(c, Capture) for c in source):
        return list(source)
    pairs, _name = resolve_pairs(source, limit)
    lm = resolve_model(model)
    found: dict[int, Capture] = {}  # position in the corpus -> capture; unusable inputs are left out
    for batch in batches(lm, pairs, batch_size=16, skip=lambda _reason: None):
        found.update((i, batch.capture(row)) for row, i in enumerate(batch.index))
    if not found:
        raise AttnlensError("nothing to explain: no usable input (all empty or too long)")
    return [found[i] for i in sorted(found)]


def best_pattern(captures, layer: int, head: int) -> str:
    """The label pattern with the highest score for this head on these captures."""
    stats = PatternStats.zeros(captures[0].num_layers, captures[0].num_heads)
    for cap in captures:
        stats.add_capture(cap)
    mean = stats.mean()
    scores = {name: mean[p] for p, name in enumerate(stats.names)}
    chance = {name: float(c) for name, c in zip(stats.names, stats.chance_mean())}
    label = label_heads(scores, chance=chance)[(layer, head)]
    return label.patterns[0][0] if label.patterns else label.best[0]


def explain(source, layer: int, head: int, pattern: str | None = None, *, model=None,
            limit: int = EXPLAIN_LIMIT) -> Explanation:
    """Which q/k dimensions of head (layer, head) carry `pattern`.

    source: a Capture, a list of Captures, or a corpus as `attnlens.atlas` takes it (the
    first `limit` inputs are captured). pattern None: the head's best-scoring pattern there.
    """
    if pattern is not None:
        get_pattern(pattern)
    captures = captures_of(source, model, limit)
    captures[0].check_layer_head(layer, head)
    if pattern is None:
        pattern = best_pattern(captures, layer, head)
    return explain_captures(captures, layer, head, pattern)
