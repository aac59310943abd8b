"""Head importance: how much each head matters to an objective, by gradient or by ablation, and pruning curves.

gradient (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"): I_h = E_x |d L(x) / d xi_h| for a
gate xi_h = 1 multiplying head h's context vector (interventions.gate_heads), normalised per layer
(I_h / ||I_layer||_2); one forward + backward per batch. ablation: I_h = E_x [L(x; head h ablated) - L(x)]
with the head's context replaced by zeros, its corpus mean or what uniform attention gives
(interventions.HEAD_ABLATIONS); L * H + 1 forwards per batch. Streamed through the one batcher:
memory stays flat however long the corpus is.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from ..capturing import LoadedModel, batches, model_inputs, resolve_model
from ..errors import AttnlensError
from ..io import atomic_open
from .interventions import ablate_heads, gate_heads, get_head_ablation, head_means
from .objectives import Objective, get_objective, padded_inputs, run
from .run import resolve_pairs

METHODS = ("gradient", "ablation")


@dataclass
class HeadImportance:
    """Per head: mean importance over the corpus (`scores`), its spread over inputs, and how it was measured."""

    scores: np.ndarray  # [L, H] (gradient: normalised per layer)
    spread: np.ndarray  # [L, H] standard deviation over inputs, same units as `raw`
    raw: np.ndarray  # [L, H] before normalisation (ablation: the same as scores)
    method: str
    objective: str
    ablation: str | None
    inputs: int
    model_name: str
    baseline: float = float("nan")  # mean objective of the unablated model
    meta: dict = field(default_factory=dict)

    @property
    def num_layers(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.scores.shape[1])

    def top(self, k: int = 5) -> list[tuple[int, int, float]]:
        """The k most important heads: [(layer, head, score)], most important first."""
        order = np.argsort(-self.scores, axis=None, kind="stable")[:max(0, int(k))]
        return [(int(i // self.num_heads), int(i % self.num_heads), float(self.scores.flat[i])) for i in order]

    def order(self) -> list[tuple[int, int]]:
        """Every head, least important first (the order heads are pruned in)."""
        return [(int(i // self.num_heads), int(i % self.num_heads))
                for i in np.argsort(self.scores, axis=None, kind="stable")]

    def to_dict(self) -> dict:
        return {"format": "attnlens.importance/1", "model": self.model_name, "objective": self.objective,
                "method": self.method, "ablation": self.ablation, "inputs": self.inputs, "baseline": self.baseline,
                "layers": self.num_layers, "heads": self.num_heads, "scores": self.scores.tolist(),
                "spread": self.spread.tolist(), "raw": self.raw.tolist(), "meta": self.meta}

    def text(self, k: int = 10) -> str:
        how = self.method + (f" ({self.ablation})" if self.method == "ablation" else "")
        lines = [f"head importance of {self.model_name} on {self.objective} by {how} over {self.inputs} inputs "
                 f"(unablated objective {self.baseline:.4f})"]
        lines += [f"  L{l} H{h}  {s:.4f}  (spread {self.spread[l, h]:.4f})" for l, h, s in self.top(k)]
        return "\n".join(lines)

    def save(self, directory: str | os.PathLike, *, plot: bool = True) -> Path:
        """importance.json, importance.csv and (plot) importance.png, a layers x heads heatmap, in `directory`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "importance.json", "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        with atomic_open(out / "importance.csv", "w") as fh:
            writer = csv.writer(fh)
            writer.writerow(["layer", "head", "score", "raw", "spread"])
            for l in range(self.num_layers):
                for h in range(self.num_heads):
                    writer.writerow([l, h, f"{self.scores[l, h]:.6g}", f"{self.raw[l, h]:.6g}",
                                     f"{self.spread[l, h]:.6g}"])
        if plot:
            plot_heatmap(self.scores, f"{self.objective} importance ({self.method})", out / "importance.png")
        return out / "importance.json"


def plot_heatmap(grid: np.ndarray, title: str, path: Path) -> None:
    """A layers x heads heatmap as PNG (matplotlib, the `plot` extra)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.45 * grid.shape[1], 1.0 + 0.4 * grid.shape[0]))
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pyplot():
    try:
        import matplotlib  # noqa: PLC0415  (optional: the `plot` extra, only for figures)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (after choosing the headless backend)
    except ImportError:
        raise AttnlensError("figures need matplotlib: pip install 'attnlens[plot]'") from None
    return plt


def resolve_for(model, objective: str) -> tuple[LoadedModel, Objective]:
    """The model with the heads `objective` needs (a path or name loads the class its config names), checked."""
    obj = get_objective(objective)
    if isinstance(model, LoadedModel) or obj.base:
        lm = resolve_model(model)
    else:
        lm = resolve_model(model, model_class=_config_class(model))
    obj.check(lm)
    return lm, obj


def _config_class(model):
    """The transformers class named first in the config's `architectures` (keeps the task heads), else None."""
    if model is None:
        return None
    import transformers  # noqa: PLC0415  (heavy: imported on first use)

    try:
        archs = transformers.AutoConfig.from_pretrained(str(model)).architectures or []
    except Exception:  # noqa: BLE001  (load_model reports unreadable models with a clear message)
        return None
    return next((getattr(transformers, a) for a in archs if hasattr(transformers, a)), None)


class _Moments:
    """Running sum and sum of squares of per-input values [L, H]."""

    def __init__(self, shape):
        self.sum = np.zeros(shape)
        self.sq = np.zeros(shape)
        self.n = 0
        self.base = 0.0

    def add(self, values: np.ndarray) -> None:  # values [B, L, H]
        self.sum += values.sum(0)
        self.sq += (values ** 2).sum(0)
        self.n += values.shape[0]

    def merge(self, other: "_Moments") -> "_Moments":
        """The moments of both input sets together (sums add: exact up to float rounding)."""
        merged = _Moments(self.sum.shape)
        merged.sum, merged.sq = self.sum + other.sum, self.sq + other.sq
        merged.n, merged.base = self.n + other.n, self.base + other.base
        return merged

    def mean(self):
        return self.sum / max(self.n, 1)

    def std(self):
        return np.sqrt(np.maximum(self.sq / max(self.n, 1) - self.mean() ** 2, 0))


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415  (inside Jupyter, tqdm.auto imports ipywidgets)

    return tqdm(total=total, unit="pair", disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False)


def corpus_means(lm: LoadedModel, pairs, batch_size: int) -> torch.Tensor:
    """Mean context vector of every head over the corpus's real tokens, unablated (for mean ablation).  # [L, H, D]"""
    encoder = lm.model.base_model

    def forwards():
        for batch in batches(lm, pairs, batch_size=batch_size, skip=lambda _r: None, record=False):
            inputs = padded_inputs(lm, batch)
            yield (lambda inputs=inputs: encoder(**model_inputs(encoder, inputs, lm.device))), inputs["attention_mask"]
    return head_means(lm, forwards())


def head_importance(corpus=None, model=None, objective: str = "embedding", method: str = "ablation",
                    ablation: str = "zero", *, limit: int | None = None, batch_size: int = 32, seed: int = 0,
                    labels=None, progress: bool = False, ray: bool = False, shards: int | None = None
                    ) -> HeadImportance:
    """Importance of every head of `model` for `objective` over `corpus` (as attnlens.atlas takes it).

    method "gradient": Michel et al. 2019's E|dL/d xi_h|, normalised per layer (not for "embedding", whose
    gradient is 0 at the unablated model). method "ablation": mean change of the objective when the head's
    context vector is replaced (ablation "zero" | "mean" | "uniform"). labels: classification labels by corpus
    position (None: the model's own predictions). ray: the corpus is split into `shards` scored by Ray tasks
    (analysis/ray_shards.py) and their sums merged: the same result as one machine's, to float rounding.
    """
    if method not in METHODS:
        raise AttnlensError(f"unknown method {method!r}: use gradient or ablation")
    lm, obj = resolve_for(model, objective)
    if method == "gradient" and not obj.gradient:
        raise AttnlensError(f"the {obj.name} objective has zero gradient at the unablated model: "
                            "use method='ablation', or the mlm, nsp or classification objective")
    if method == "ablation":
        get_head_ablation(ablation)
    pairs, corpus_name = resolve_pairs(corpus, limit, seed=seed)
    means = corpus_means(lm, pairs, batch_size) if method == "ablation" and ablation == "mean" else None
    if ray:
        from .ray_shards import importance_moments_ray  # noqa: PLC0415  (ray_shards imports this module)

        moments, skipped = importance_moments_ray(model if model is None or isinstance(model, str) else lm, pairs,
                                                  objective=obj.name, method=method, ablation=ablation, means=means,
                                                  batch_size=batch_size, seed=seed, labels=labels, shards=shards,
                                                  progress=progress)
    else:
        with _progress_bar(len(pairs), progress) as bar:
            moments, skipped = importance_moments(lm, obj, pairs, method=method, ablation=ablation, means=means,
                                                  batch_size=batch_size, seed=seed, labels=labels,
                                                  progress=bar.update)
    if moments.n == 0:
        raise AttnlensError(f"no usable input in the corpus {corpus_name}")
    raw, spread = moments.mean(), moments.std()
    scores = raw
    if method == "gradient":  # Michel et al.: normalise by the layer's L2 norm
        scores = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-20)
    return HeadImportance(scores.astype(np.float64), spread, raw, method, obj.name,
                          ablation if method == "ablation" else None, moments.n, lm.name,
                          baseline=moments.base / moments.n, meta={"corpus": corpus_name, "skipped": skipped})


def importance_moments(lm: LoadedModel, obj: Objective, pairs, *, method: str, ablation: str, means, batch_size: int,
                       seed: int, labels, offset: int = 0, progress=None) -> tuple[_Moments, dict[str, int]]:
    """The per-head moments of `pairs` (positions `offset`, offset + 1, ... in the corpus: what mlm masks and
    `labels` are keyed by), and what was skipped. One shard's share of head_importance."""
    moments = _Moments((lm.num_layers, lm.num_heads))
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    heads = [(l, h) for l in range(lm.num_layers) for h in range(lm.num_heads)]
    for batch in batches(lm, pairs, batch_size=max(1, int(batch_size)), skip=skip, record=False):
        if offset:
            batch = replace(batch, index=[offset + i for i in batch.index])  # positions in the whole corpus
        inputs = padded_inputs(lm, batch)
        targets = obj.prepare(lm, inputs, batch, seed, labels)
        if method == "gradient":
            values, base = _gradient_batch(lm, obj, inputs, targets)
        else:
            values, base = _ablation_batch(lm, obj, inputs, targets, heads, ablation, means)
        moments.add(values)
        moments.base += float(base.sum())
        if progress is not None:
            progress(len(batch))
    return moments, skipped


def _gradient_batch(lm, obj, inputs, targets):
    """|d L(x) / d xi_h| per input and head, and the unablated loss.  # [B, L, H], [B]"""
    b = inputs["input_ids"].shape[0]
    gates = torch.ones((b, lm.num_layers, lm.num_heads), device=lm.device, requires_grad=True)  # [B, L, H]
    with torch.enable_grad(), gate_heads(lm, gates):
        loss, _ = run(obj, lm, inputs, targets)  # [B]
        (grad,) = torch.autograd.grad(loss.sum(), gates)  # row b's loss depends on row b's gates only
    return grad.abs().double().cpu().numpy(), loss.detach().double().cpu().numpy()


@torch.no_grad()
def _ablation_batch(lm, obj, inputs, targets, heads, ablation, means):
    """L(x; h ablated) - L(x) per input and head, and the unablated loss.  # [B, L, H], [B]"""
    base, _ = run(obj, lm, inputs, targets)  # [B]
    out = torch.empty((base.shape[0], lm.num_layers, lm.num_heads), dtype=torch.float64)  # [B, L, H]
    for layer, head in heads:
        with ablate_heads(lm, [(layer, head)], ablation, means=means, mask=inputs["attention_mask"]):
            loss, _ = run(obj, lm, inputs, targets)
        out[:, layer, head] = (loss - base).double().cpu()
    return out.numpy(), base.double().cpu().numpy()


# ---- pruning curves ------------------------------------------------------------------------
@dataclass
class PruningCurve:
    """The objective after removing the first k heads of an order, for several k (fractions of all heads)."""

    fractions: list[float]
    by_importance: list[float]  # mean objective, heads removed least important first
    random: list[list[float]]  # one curve per seed, heads removed in a random order
    objective: str
    ablation: str
    model_name: str
    inputs: int
    seeds: list[int]

    def to_dict(self) -> dict:
        return {"format": "attnlens.pruning/1", "model": self.model_name, "objective": self.objective,
                "ablation": self.ablation, "inputs": self.inputs, "fractions": self.fractions,
                "by_importance": self.by_importance, "random": self.random, "seeds": self.seeds,
                "order": "least important first"}

    def save(self, directory: str | os.PathLike) -> Path:
        """pruning.json, pruning.png and pruning.svg in `directory`."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "pruning.json", "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)
        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.plot(self.fractions, self.by_importance, marker="o", ms=3, label="by importance (least first)")
        for seed, curve in zip(self.seeds, self.random):
            ax.plot(self.fractions, curve, color="grey", alpha=0.6, lw=1, label=f"random (seed {seed})")
        ax.set_xlabel("fraction of heads removed")
        ax.set_ylabel(self.objective)
        ax.legend(fontsize=7)
        fig.tight_layout()
        for suffix in ("png", "svg"):
            fig.savefig(out / f"pruning.{suffix}", dpi=100)
        plt.close(fig)
        return out / "pruning.json"


@torch.no_grad()
def pruning_curve(corpus=None, model=None, importance: HeadImportance | None = None, *,
                  objective: str | None = None, ablation: str = "zero", points: int | None = 13,
                  seeds=(0, 1, 2), limit: int | None = None, batch_size: int = 32, labels=None,
                  progress: bool = False) -> PruningCurve:
    """Remove heads one at a time (least important first, and in `seeds` random orders) and measure the objective.

    importance None: computed here by ablation on `objective`. points: how many numbers of removed heads
    (evenly spaced from 0 to all) are measured; None = every one. One pass over the corpus.
    """
    objective = objective or (importance.objective if importance is not None else "embedding")
    lm, obj = resolve_for(model, objective)
    if ablation not in ("zero", "uniform"):
        get_head_ablation(ablation)
        raise AttnlensError("pruning curves use zero or uniform ablation")
    if importance is None:
        importance = head_importance(corpus, lm, objective, "ablation", ablation, limit=limit,
                                     batch_size=batch_size, labels=labels, progress=progress)
    total = lm.num_layers * lm.num_heads
    counts = list(range(total + 1)) if points is None else sorted({round(x) for x in np.linspace(0, total, points)})
    orders = [importance.order()]
    for seed in seeds:
        perm = np.random.default_rng(seed).permutation(total)
        orders.append([(int(i // lm.num_heads), int(i % lm.num_heads)) for i in perm])
    sums = np.zeros((len(orders), len(counts)))
    n = 0
    pairs, _name = resolve_pairs(corpus, limit)
    with _progress_bar(len(pairs), progress) as bar:
        for batch in batches(lm, pairs, batch_size=max(1, int(batch_size)), skip=lambda _r: None,
                             record=False):
            inputs = padded_inputs(lm, batch)
            targets = obj.prepare(lm, inputs, batch, 0, labels)
            for o, order in enumerate(orders):
                for c, k in enumerate(counts):
                    with ablate_heads(lm, order[:k], ablation, mask=inputs["attention_mask"]):
                        loss, _ = run(obj, lm, inputs, targets)
                    sums[o, c] += float(loss.sum())
            n += len(batch)
            bar.update(len(batch))
    curves = (sums / max(n, 1)).tolist()
    return PruningCurve([k / total for k in counts], curves[0], curves[1:], obj.name, ablation, lm.name, n,
                        list(seeds))
