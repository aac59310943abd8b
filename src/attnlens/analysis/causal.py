"""Causal checks: where a head's pattern comes from, by re-scoring under embedding interventions.

The corpus is scored once as is and once per intervention (attnlens.interventions); the
change of every head's score on its own pattern says what the pattern depends on: heads
that tell sentences apart should move when the segment embeddings are made equal, next-
and previous-token heads should collapse when position embeddings are shuffled or zeroed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capturing import resolve_model
from ..errors import AttnlensError
from .interventions import INTERVENTIONS, get_intervention
from .run import Atlas, atlas, resolve_pairs

CAUSAL_LIMIT = 200


@dataclass
class CausalReport:
    """The baseline atlas and one atlas per intervention, over the same corpus."""

    baseline: Atlas
    changed: dict[str, Atlas]
    unavailable: dict[str, str]  # intervention -> why it could not run on this model

    def change(self, intervention: str, pattern: str) -> np.ndarray:
        """Score under the intervention minus the baseline score, per head.  # [L, H]"""
        return self.changed[intervention].scores[pattern] - self.baseline.scores[pattern]

    def heads(self) -> list[tuple[int, int, str]]:
        """(layer, head, pattern) checked: each dominant pattern of a labelled head, and each pattern's top head."""
        rows = []
        for (layer, head), label in sorted(self.baseline.labels.items()):
            rows += [(layer, head, name) for name, _ in label.patterns]
        for name in self.baseline.label_patterns:
            layer, head, _ = self.baseline.top(name, 1)[0]
            if (layer, head, name) not in rows:
                rows.append((layer, head, name))
        return rows

    def rows(self) -> list[dict]:
        out = []
        for layer, head, name in self.heads():
            row = {"layer": layer, "head": head, "pattern": name,
                   "label": self.baseline.labels[(layer, head)].name,
                   "baseline": float(self.baseline.scores[name][layer, head])}
            for key, at in self.changed.items():
                row[key] = float(at.scores[name][layer, head])
            out.append(row)
        return out

    def text(self) -> str:
        keys = list(self.changed)
        head = f"{'head':8s} {'pattern':26s} {'label':18s} {'baseline':>8s} " + " ".join(f"{k:>18s}" for k in keys)
        lines = [f"causal checks on {self.baseline.model_name} over {self.baseline.inputs} inputs", head]
        for row in self.rows():
            cells = " ".join(f"{row[k]:8.3f} ({row[k] - row['baseline']:+.3f})" for k in keys)
            lines.append(f"L{row['layer']} H{row['head']:<4d} {row['pattern']:26s} {row['label'][:18]:18s} "
                         f"{row['baseline']:8.3f} {cells}")
        for key, why in self.unavailable.items():
            lines.append(f"{key}: not run ({why})")
        return "\n".join(lines)


def causal_checks(corpus=None, *, model=None, limit: int | None = CAUSAL_LIMIT, interventions=tuple(INTERVENTIONS),
                  level: str = "token", batch_size: int = 32, progress: bool = False, seed: int = 0,
                  definitions: str = "attnlens", parser=None) -> CausalReport:
    """Score `corpus` (first `limit` inputs) as is and under each intervention (parser: as attnlens.atlas's)."""
    lm = resolve_model(model)
    pairs, _name = resolve_pairs(corpus, limit)
    for name in interventions:
        get_intervention(name)
    kwargs = dict(model=lm, level=level, batch_size=batch_size, progress=progress, seed=seed, definitions=definitions,
                  parser=parser)
    baseline = atlas(pairs, **kwargs)
    changed, unavailable = {}, {}
    for name in interventions:
        try:
            changed[name] = atlas(pairs, intervention=name, **kwargs)
        except AttnlensError as exc:
            unavailable[name] = str(exc)
    return CausalReport(baseline, changed, unavailable)
