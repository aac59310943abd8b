"""The checks `attnlens atlas` adds to an atlas: explanations of the top heads and causal checks.

`run_checks(atlas)` takes inputs spread over the corpus the atlas was computed on, explains
the top head of each label pattern down to its q/k dimensions, re-scores those inputs
under the embedding interventions and (with the causal checks) measures each head's ablation
importance for the sentence embedding (attnlens.analysis.importance). `Atlas.save` runs it (or takes
its result), so that `attnlens.atlas(corpus).save(out)` writes the same folder as the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..capturing import Capture, capture
from ..errors import AttnlensError
from ..patterns.explain import Explanation
from .causal import CausalReport, causal_checks
from .explain import EXPLAIN_LIMIT, captures_of, explain
from .importance import HeadImportance, head_importance
from .run import CHECK_LIMIT, Atlas, Pair

IMPORTANCE_LIMIT = 64  # inputs of the head importance (zero ablation: L * H + 1 forwards per batch)
EXAMPLE = ("I went to the store.", "At the store, I bought fresh strawberries.")  # shown in the report's views


@dataclass
class HeadCheck:
    """The top head of one pattern and its explanation, or why it could not be explained."""

    pattern: str
    layer: int
    head: int
    score: float  # the head's atlas score on the pattern
    explanation: Explanation | None = None
    reason: str | None = None  # set when explanation is None

    def text(self) -> str:
        where = f"  {self.pattern:26s} L{self.layer} H{self.head}"
        if self.explanation is None:
            return f"{where}: not explained ({self.reason})"
        ex = self.explanation
        return (f"{where} score {self.score:.2f}: {ex.dims_for_80} of {ex.contributions.size} dims "
                f"carry 80% of the gap, stability {ex.stability:.2f} -> {ex.kind}")


@dataclass
class AtlasChecks:
    """Explanations of the top head per pattern (None: not run) and the causal checks (None: not run)."""

    heads: list[HeadCheck] | None
    causal: CausalReport | None
    inputs: int  # inputs the checks used
    importance: HeadImportance | None = None  # zero-ablation importance for the embedding (with the causal checks)

    @property
    def explanations(self) -> list[Explanation]:
        return [h.explanation for h in self.heads or () if h.explanation is not None]

    @property
    def unexplained(self) -> dict[str, tuple[int, int, str]]:
        """{pattern: (layer, head, reason)} for top heads that could not be explained."""
        return {h.pattern: (h.layer, h.head, h.reason) for h in self.heads or () if h.explanation is None}

    def text(self) -> str:
        """What `attnlens atlas` prints after the atlas summary ("" when nothing was run)."""
        lines = []
        if self.heads is not None:
            lines.append("\nexplanations (top head per pattern):")
            lines += [h.text() for h in self.heads]
        if self.causal is not None:
            lines.append("\n" + self.causal.text())
        if self.importance is not None:
            lines.append("\n" + self.importance.text(5))
        return "\n".join(lines)


def check_pairs(pairs: list[Pair], limit: int) -> list[Pair]:
    """At most `limit` pairs taken at an even step, so that they spread over the whole corpus."""
    step = max(1, len(pairs) // limit)
    return pairs[::step][:limit]


def _source(at: Atlas):
    if at.source is None:
        raise AttnlensError("this atlas keeps no model and corpus (it was not computed by attnlens.atlas): "
                            "pass explain=False and causal=False, or checks=")
    return at.source


def run_checks(at: Atlas, *, explain: bool = True, causal: bool = True,
               check_limit: int = CHECK_LIMIT) -> AtlasChecks:
    """Explain the top head of each label pattern and run the causal checks on the atlas's corpus.

    They use `check_limit` inputs taken at an even step over that corpus (check_pairs).
    """
    if isinstance(check_limit, bool) or not isinstance(check_limit, int) or check_limit < 1:
        raise AttnlensError(f"check_limit must be at least 1, got {check_limit!r}")
    if not (explain or causal):
        return AtlasChecks(None, None, 0)
    source = _source(at)
    pairs = check_pairs(source.pairs, check_limit)
    heads = None
    if explain:
        captures = captures_of(pairs, source.model, EXPLAIN_LIMIT)  # captured once, explained per head
        heads = [_explain_top(at, captures, name) for name in at.label_patterns]
    report = importance = None
    if causal:
        report = causal_checks(pairs, model=source.model, level=at.level, batch_size=source.batch_size,
                               limit=None, seed=source.seed, definitions=at.definitions, parser=source.parser)
        try:
            importance = head_importance(check_pairs(pairs, IMPORTANCE_LIMIT), source.model, "embedding",
                                         "ablation", batch_size=source.batch_size)
        except AttnlensError:  # a family without a declared attention output projection: no head ablation
            importance = None
    return AtlasChecks(heads, report, len(pairs), importance)


def _explain_top(at: Atlas, captures: list[Capture], pattern: str) -> HeadCheck:
    layer, head, score = at.top(pattern, 1)[0]
    try:
        return HeadCheck(pattern, layer, head, score, explanation=explain(captures, layer, head, pattern))
    except AttnlensError as exc:
        return HeadCheck(pattern, layer, head, score, reason=str(exc))


def example_capture(at: Atlas) -> Capture | None:
    """EXAMPLE captured with the atlas's model; None when the atlas keeps no model."""
    if at.source is None:
        return None
    return capture(*EXAMPLE, model=at.source.model)
