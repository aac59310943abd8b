"""Neuron-level explanation of a pattern: which q/k dimensions carry it.

For a head and a pattern, the pre-softmax score of query i on key j is
q_i . k_j / sqrt(d) = sum_d q_id k_jd / sqrt(d). The pattern's *gap* for query i is the
mean score on its target keys minus the mean score on all other keys; it splits exactly
into one contribution per dimension d:

    c_id = q_id * (mean_{j in targets} k_jd - mean_{j in others} k_jd) / sqrt(d)

Summed over the defined queries of all inputs, the contributions rank the dimensions by
their share of the gap; `dims_for_80` is how few of them carry 80% of it. Whether the same
dimensions do the work at every position is measured by `stability`: the mean Jaccard
overlap between each query's own top dimensions and the overall top set.

Families whose scores add terms to the scaled q . k (DeBERTa's content->position and
position->content terms, MPNet's relative-position bias; recorded as capture extras) get the
same gap for each term (`Explanation.terms`) and the term that carries most of the pattern
(`carried_by`): a previous-token head of DeBERTa is typically carried by its position terms.
The dimension contributions then use the family's own scale of q . k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..capturing import score_term_names
from ..errors import AttnlensError
from .layout import layout_of
from .scores import get_pattern, pattern_targets

SHARE = 0.8
FEW_DIMS = 4
STABLE = 0.5


@dataclass
class Explanation:
    """Which q/k dimensions of one head carry one pattern, over one or more inputs."""

    layer: int
    head: int
    pattern: str
    model_name: str
    queries: int  # defined queries the figures are computed over
    gap: float  # mean (target score - other score), pre-softmax logit units
    contributions: np.ndarray  # float64 [D] mean contribution of each dimension to the gap
    dims_for_80: int  # fewest dimensions whose contributions reach 80% of the gap (0: no positive gap)
    stability: float  # mean Jaccard(query's top dims, overall top dims), 1 = same dims everywhere
    kind: str  # "few dims", "many, position-dependent", "many, shared" or "not carried by q.k"
    terms: dict[str, float] = field(default_factory=dict)  # score term -> its gap ("q.k" = `gap`); {} for plain q.k

    @property
    def carried_by(self) -> str:
        """The score term with the largest gap ("q.k" for families whose scores are q . k alone)."""
        return max(self.terms, key=self.terms.get) if self.terms else "q.k"

    @property
    def shares(self) -> np.ndarray:
        """Each dimension's share of the gap (can be negative; sums to 1).  # [D]"""
        return self.contributions / self.gap if self.gap else np.zeros_like(self.contributions)

    @property
    def top_dims(self) -> list[tuple[int, float]]:
        """(dimension, share of the gap) of the dimensions that carry 80% of it, largest first."""
        order = np.argsort(-self.contributions)
        n = self.dims_for_80 if self.dims_for_80 else min(4, order.size)
        return [(int(d), float(self.shares[d])) for d in order[:n]]

    def to_dict(self) -> dict:
        return {
            "layer": self.layer, "head": self.head, "pattern": self.pattern, "model": self.model_name,
            "queries": self.queries, "gap": self.gap, "dims_for_80": self.dims_for_80,
            "stability": self.stability, "kind": self.kind,
            "top_dims": [{"dim": d, "share": s} for d, s in self.top_dims],
            "terms": dict(self.terms), "carried_by": self.carried_by,
        }

    def text(self) -> str:
        """A plain-text report."""
        lines = [
            f"layer {self.layer} head {self.head}, pattern {self.pattern} ({self.model_name}, {self.queries} queries)",
            f"gap (target - other keys, q.k/sqrt(d)): {self.gap:+.3f}",
            f"dimensions carrying {SHARE:.0%} of the gap: {self.dims_for_80} of {self.contributions.size}",
            f"top-dimension stability across positions (Jaccard): {self.stability:.2f}",
            f"verdict: {self.kind}",
            "top dimensions (dim: share of the gap):",
        ]
        lines += [f"  {d:3d}: {s:+.1%}" for d, s in self.top_dims]
        if self.terms:
            lines.append("score terms (gap, logit units): " + ", ".join(f"{n} {g:+.3f}" for n, g in self.terms.items())
                         + f" -> carried by {self.carried_by}")
        return "\n".join(lines)


def _dims_for(contrib: np.ndarray, share: float = SHARE) -> int:
    """Fewest dimensions (largest contributions first) whose sum reaches `share` of the total."""
    total = contrib.sum()
    if total <= 0:
        return 0
    running = np.cumsum(np.sort(contrib)[::-1])
    return int(np.searchsorted(running, share * total - 1e-12 * abs(total)) + 1)


def query_contributions(cap, layer: int, head: int, pattern: str) -> np.ndarray:
    """Per-dimension gap contributions of every defined query of one Capture.  # [Q, D]"""
    cap.check_layer_head(layer, head)
    if not get_pattern(pattern).is_mass and pattern != "bag_of_words":
        pattern_targets(pattern, layout_of(cap))  # raises the clear error
    cap.require_qk("explanations")
    valid, t_w, o_w = _gap_weights(cap, pattern)
    q = cap.queries[layer, head].astype(np.float64)  # [T, D]
    k = cap.keys[layer, head].astype(np.float64)  # [T, D]
    key_gap = t_w @ k - o_w @ k  # [T, D]
    scale = cap.extras.get("content_scale")  # [L, H] where the family scales q . k its own way (DeBERTa)
    contrib = q * key_gap * (1 / np.sqrt(q.shape[-1]) if scale is None else float(scale[layer, head]))  # [T, D]
    return contrib[valid]  # [Q, D]


def _gap_weights(cap, pattern: str):
    """valid [T] (queries with targets and others) and the mean-over-targets / -others weights [T, T]."""
    targets = pattern_targets(pattern, layout_of(cap))  # [T, T]
    others = ~targets  # [T, T]
    valid = targets.any(axis=1) & others.any(axis=1)  # [T]
    t_w = targets / np.maximum(targets.sum(axis=1, keepdims=True), 1)  # [T, T] mean over targets
    o_w = others / np.maximum(others.sum(axis=1, keepdims=True), 1)  # [T, T] mean over others
    return valid, t_w, o_w


def query_term_gaps(cap, layer: int, head: int, pattern: str) -> dict[str, np.ndarray]:
    """The gap of each recorded score term (extras added to q . k) per defined query, name -> [Q]."""
    names = [n for n in score_term_names() if n in cap.extras]
    if not names:
        return {}
    valid, t_w, o_w = _gap_weights(cap, pattern)
    return {n: ((t_w - o_w) * cap.extras[n][layer, head].astype(np.float64)).sum(axis=1)[valid] for n in names}


def explain_captures(captures, layer: int, head: int, pattern: str) -> Explanation:
    """Explain `pattern` in head (layer, head) over one or more Captures."""
    captures = list(captures)
    if not captures:
        raise AttnlensError("nothing to explain: no inputs")
    get_pattern(pattern)
    rows = np.concatenate([query_contributions(c, layer, head, pattern) for c in captures])  # [Q, D]
    if rows.shape[0] == 0:
        raise AttnlensError(f"pattern {pattern!r} is not defined on these inputs (no query has targets); "
                            "try longer inputs")
    contributions = rows.mean(axis=0)  # [D]
    gap = float(contributions.sum())
    per_term = [query_term_gaps(c, layer, head, pattern) for c in captures]
    terms = {"q.k": gap} if per_term[0] else {}
    terms.update({n: float(np.concatenate([t[n] for t in per_term]).mean()) for n in per_term[0]})
    k80 = _dims_for(contributions)
    n_top = k80 if k80 else min(FEW_DIMS, contributions.size)
    overall = set(np.argsort(-contributions)[:n_top].tolist())
    per_query = np.argsort(-rows, axis=1)[:, :n_top]  # [Q, n_top]
    stability = float(np.mean([len(overall & set(r.tolist())) / len(overall | set(r.tolist())) for r in per_query]))
    if gap <= 0:
        kind = "not carried by q.k"
    elif k80 <= FEW_DIMS:
        kind = "few dims"
    elif stability < STABLE:
        kind = "many, position-dependent"
    else:
        kind = "many, shared"
    return Explanation(layer, head, pattern, captures[0].model_name, int(rows.shape[0]), gap, contributions,
                       k80, stability, kind, terms)
