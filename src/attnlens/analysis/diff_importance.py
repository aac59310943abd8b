"""Head importance before / after, for `attnlens diff`: gradient head importance (Michel et al. 2019, see
importance.py) of model A and of model B over the same corpus inputs, on one objective both models give.

The objective ("auto"): `classification` when both models are sequence classifiers with the same labels
(each scored against its own predictions), else `masked_embedding` (any encoder with a mask token: a
pretrained model and its fine-tuned copy, whose MLM head is gone, alike). Scores are normalised per layer
as in importance.py; ranks are over all heads (1 = most important).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..capturing import LoadedModel
from ..errors import AttnlensError
from .importance import HeadImportance, head_importance
from .objectives import get_objective

AUTO = "auto"
MOVERS = 5  # heads listed whose rank changed most


@dataclass
class ImportanceChange:
    """Gradient head importance of model A and model B on one objective over the same inputs."""

    a: HeadImportance
    b: HeadImportance

    @property
    def objective(self) -> str:
        return self.a.objective

    @property
    def change(self) -> np.ndarray:
        """B's importance - A's, per head.  # [L, H]"""
        return self.b.scores - self.a.scores

    @property
    def layer_change(self) -> np.ndarray:
        """Mean absolute importance change of each layer's heads.  # [L]"""
        return np.abs(self.change).mean(axis=1)

    @staticmethod
    def ranks(importance: HeadImportance) -> np.ndarray:
        """Rank of every head over all heads, 1 = most important (ties: lower layer, then head, first).  # [L, H]"""
        order = np.argsort(-importance.scores, axis=None, kind="stable")
        ranks = np.empty(order.size, dtype=int)
        ranks[order] = np.arange(1, order.size + 1)
        return ranks.reshape(importance.scores.shape)

    @property
    def rank_change(self) -> np.ndarray:
        """Places each head moved up from A to B (rank A - rank B; > 0: more important in B).  # [L, H]"""
        return self.ranks(self.a) - self.ranks(self.b)

    def movers(self, k: int = MOVERS) -> list[dict]:
        """The k heads whose rank changed most (largest |rank change| first; only heads that moved)."""
        moved = np.abs(self.rank_change)
        order = np.argsort(-moved, axis=None, kind="stable")[:max(0, int(k))]
        ra, rb = self.ranks(self.a), self.ranks(self.b)
        out = []
        for i in order:
            l, h = divmod(int(i), self.a.num_heads)
            if moved[l, h] == 0:
                break
            out.append({"layer": l, "head": h, "importance_a": float(self.a.scores[l, h]),
                        "importance_b": float(self.b.scores[l, h]), "rank_a": int(ra[l, h]), "rank_b": int(rb[l, h]),
                        "rank_change": int(self.rank_change[l, h])})
        return out

    def summary_lines(self) -> list[str]:
        lines = [f"head importance ({self.objective}, gradient, per-layer normalised): mean |change| "
                 f"{np.abs(self.change).mean():.4f}; per layer: "
                 + ", ".join(f"L{l} {v:.4f}" for l, v in enumerate(self.layer_change))]
        movers = self.movers()
        if movers:
            lines.append("importance rank moved most: " + ", ".join(
                f"L{m['layer']}H{m['head']} {m['rank_a']}->{m['rank_b']}" for m in movers))
        return lines

    def to_dict(self) -> dict:
        def grid(a):
            return [[round(float(v), 6) for v in row] for row in a]
        return {"objective": self.objective, "definition": get_objective(self.objective).definition,
                "method": "gradient: E|dL/d gate_h| (Michel et al. 2019), normalised by each layer's L2 norm",
                "inputs_a": self.a.inputs, "inputs_b": self.b.inputs,
                "a": grid(self.a.scores), "b": grid(self.b.scores), "change": grid(self.change),
                "layers": [round(float(v), 6) for v in self.layer_change],
                "rank_a": self.ranks(self.a).tolist(), "rank_b": self.ranks(self.b).tolist(),
                "movers": self.movers()}


def _is_classifier(model, lm: LoadedModel) -> bool:
    """A sequence classifier: the loaded class, or (a path or name, loaded without heads) its config's."""
    if isinstance(model, LoadedModel):
        return type(lm.model).__name__.endswith("ForSequenceClassification")
    return any(a.endswith("ForSequenceClassification") for a in (lm.model.config.architectures or []))


def choose_objective(model_a, model_b, lm_a: LoadedModel, lm_b: LoadedModel) -> str:
    """The "auto" objective: classification for two classifiers with the same labels, else masked_embedding."""
    if (_is_classifier(model_a, lm_a) and _is_classifier(model_b, lm_b)
            and lm_a.model.config.id2label == lm_b.model.config.id2label):
        return "classification"
    return "masked_embedding"


def importance_change(model_a, model_b, lm_a: LoadedModel, lm_b: LoadedModel, pairs, objective: str = AUTO, *,
                      batch_size: int = 32, seed: int = 0, progress: bool = False) -> tuple[ImportanceChange | None,
                                                                                            str]:
    """(the importance of both models over `pairs`, "") or, when "auto" finds no objective both models give,
    (None, why). model_a / model_b as given to diff (a path loads the classifier head for classification);
    lm_a / lm_b the loaded encoders. An objective named explicitly that a model cannot give is an error."""
    name = choose_objective(model_a, model_b, lm_a, lm_b) if objective == AUTO else get_objective(objective).name
    # an encoder objective runs the loaded encoders; one with a task head loads the models with their heads
    sources = (lm_a, lm_b) if get_objective(name).base else (model_a, model_b)
    try:
        a, b = (head_importance(pairs, src, name, "gradient", limit=None, batch_size=batch_size, seed=seed,
                                progress=progress) for src in sources)
    except AttnlensError as exc:
        if objective != AUTO:
            raise
        return None, f"head importance not computed: {exc}"
    return ImportanceChange(a, b), ""
