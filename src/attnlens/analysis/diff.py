"""Before / after: how every head of model B attends differently from model A (e.g. a model and its
fine-tuned copy) over one corpus.

Both models see the same inputs through the one batcher (same tokenizer, so the same batches). Per head:
the mean total-variation distance between the two attention rows of every real query token
(0.5 * sum over keys |a - b|: 0 = identical, 1 = disjoint), and both models' atlas scores and labels
(the same PatternStats as `atlas`, from the same forward passes). Per layer: the mean over its heads
(Kovaleva et al. 2019's per-layer figure). Unless turned off, both models' gradient head importance over
the same inputs and its change (diff_importance.py; one more backward per batch and model). `write_diff`
saves report.html, diff.png/.svg, diff.json and diff.csv.
"""

from __future__ import annotations

import csv
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..capturing import LoadedModel, batches, resolve_model
from ..errors import AttnlensError
from ..io import atomic_open, atomic_write_text, html_page
from ..patterns.layout import check_level, layout_of, stack_layouts
from ..patterns.scores import get_definitions
from ..patterns.stats import PatternStats
from .diff_importance import AUTO, ImportanceChange, importance_change
from .objectives import get_objective
from .run import Atlas, resolve_pairs

DEFAULT_LIMIT = 300


@dataclass
class HeadDiff:
    """The attention change of every head from model A to model B over a corpus."""

    tv: np.ndarray  # [L, H] mean total-variation distance of the attention rows
    atlas_a: Atlas
    atlas_b: Atlas
    queries: int  # attention rows compared per head
    importance: ImportanceChange | None = None  # both models' gradient head importance (None: not computed)
    importance_note: str = ""  # why importance was not computed ("" when it was, or was turned off)

    @property
    def num_layers(self) -> int:
        return self.tv.shape[0]

    @property
    def num_heads(self) -> int:
        return self.tv.shape[1]

    @property
    def layer_tv(self) -> np.ndarray:
        """Mean total-variation distance of each layer's heads [L]."""
        return self.tv.mean(axis=1)

    @property
    def score_change(self) -> dict[str, np.ndarray]:
        """{pattern: B's mean score - A's [L, H]}."""
        a, b = self.atlas_a.scores, self.atlas_b.scores
        return {name: b[name] - a[name] for name in self.atlas_a.pattern_names}

    @property
    def layer_score_change(self) -> dict[str, np.ndarray]:
        """{pattern: mean absolute score change of each layer's heads [L]} (NaN-free patterns only)."""
        return {name: np.abs(v).mean(axis=1) for name, v in self.score_change.items() if np.isfinite(v).all()}

    def label_changes(self) -> list[dict]:
        """Every head with A's and B's label and what happened to A's pattern label: kept, lost, gained, or
        "" (neither has a pattern label)."""
        la, lb = self.atlas_a.labels, self.atlas_b.labels
        out = []
        for key in sorted(la):
            a, b = la[key], lb[key]
            if a.patterns:
                fate = "kept" if a.name == b.name else "lost"
            else:
                fate = "gained" if b.patterns else ""
            out.append({"layer": key[0], "head": key[1], "label_a": a.name, "label_b": b.name, "change": fate})
        return out

    def summary(self) -> str:
        """Plain text: models, corpus, the per-layer change and what happened to the labelled heads."""
        lines = [f"diff of {self.atlas_a.model_name} -> {self.atlas_b.model_name} over {self.atlas_a.inputs} inputs "
                 f"({self.atlas_a.corpus_name}): mean total-variation distance {self.tv.mean():.4f} "
                 f"(max {self.tv.max():.4f})",
                 "per layer: " + ", ".join(f"L{l} {v:.4f}" for l, v in enumerate(self.layer_tv))]
        changes = self.label_changes()
        for fate in ("kept", "lost", "gained"):
            heads = [c for c in changes if c["change"] == fate]
            if heads:
                lines.append(f"{fate} ({len(heads)}): " + ", ".join(
                    f"L{c['layer']}H{c['head']} {c['label_a']}" + ("" if fate == "kept" else f"->{c['label_b']}")
                    for c in heads))
        if self.importance is not None:
            lines += self.importance.summary_lines()
        elif self.importance_note:
            lines.append(self.importance_note)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def grid(a):
            return [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in a]
        return {
            "format": "attnlens.diff/1", "model_a": self.atlas_a.model_name, "model_b": self.atlas_b.model_name,
            "corpus": self.atlas_a.corpus_name, "inputs": self.atlas_a.inputs, "queries": self.queries,
            "layers": self.num_layers, "heads": self.num_heads,
            "tv": {"definition": "mean over real query tokens of 0.5 * sum over keys |attention_a - attention_b|",
                   "heads": grid(self.tv), "layers": [round(float(v), 6) for v in self.layer_tv]},
            "score_change": {name: grid(v) for name, v in self.score_change.items()},
            "layer_score_change": {name: [round(float(x), 6) for x in v]
                                   for name, v in self.layer_score_change.items()},
            "labels": self.label_changes(),
            "importance": None if self.importance is None else self.importance.to_dict(),
            "importance_note": self.importance_note,
        }


def row_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Total-variation distance of attention rows [..., T, T] -> [..., T]: 0.5 * sum over keys |a - b|
    (0 = identical rows, 1 = disjoint). The one definition `diff` and the web app's Compare use."""
    return 0.5 * np.abs(a.astype(np.float64) - b).sum(-1)


def check_comparable(lm_a: LoadedModel, lm_b: LoadedModel) -> None:
    """Both models must have the same layers x heads and the same tokenizer (vocabulary)."""
    if (lm_a.num_layers, lm_a.num_heads) != (lm_b.num_layers, lm_b.num_heads):
        raise AttnlensError(f"cannot compare {lm_a.name} ({lm_a.num_layers} layers x {lm_a.num_heads} heads) with "
                            f"{lm_b.name} ({lm_b.num_layers} x {lm_b.num_heads}): the architectures differ")
    if lm_a.tokenizer.get_vocab() != lm_b.tokenizer.get_vocab():
        raise AttnlensError(f"cannot compare {lm_a.name} with {lm_b.name}: their tokenizers differ")


def diff(model_a: LoadedModel | str, model_b: LoadedModel | str, corpus=None, *, limit: int | None = DEFAULT_LIMIT,
         batch_size: int = 32, level: str = "token", seed: int = 0, importance: str | None = AUTO,
         progress: bool = False) -> HeadDiff:
    """Compare two models with the same architecture and tokenizer over `corpus` (see attnlens.atlas for what
    a corpus can be; `limit` pairs of it): per-head total-variation distance and atlas scores / labels, and
    (importance: an objective name, "auto" or None = off) both models' gradient head importance."""
    check_level(level)
    if importance not in (None, AUTO):
        get_objective(importance)  # an unknown name fails before the corpus pass
    lm_a, lm_b = resolve_model(model_a), resolve_model(model_b)
    check_comparable(lm_a, lm_b)
    pairs, corpus_name = resolve_pairs(corpus, limit, seed=seed)
    defs = get_definitions(None)
    names = defs.scored()
    stats_a = PatternStats.zeros(lm_a.num_layers, lm_a.num_heads, names, defs.name)
    stats_b = PatternStats.zeros(lm_b.num_layers, lm_b.num_heads, names, defs.name)
    tv_sum = np.zeros((lm_a.num_layers, lm_a.num_heads))  # [L, H]
    queries = 0
    from tqdm.auto import tqdm  # noqa: PLC0415  (inside Jupyter, tqdm.auto imports ipywidgets)

    with tqdm(total=len(pairs), unit="pair", disable=not progress, leave=False) as bar:
        for ba, bb in zip(batches(lm_a, pairs, batch_size=batch_size, skip=stats_a.skip),
                          batches(lm_b, pairs, batch_size=batch_size, skip=stats_b.skip)):
            if list(ba.index) != list(bb.index):
                raise AttnlensError("the two models batched the corpus differently (their tokenizers differ)")
            a, b = ba.attentions, bb.attentions  # [B, L, H, T, T]
            mask = ba.mask.astype(np.float64)  # [B, T]
            tv = row_distances(a, b)  # [B, L, H, T] (padded keys hold 0 in both)
            tv_sum += (tv * mask[:, None, None, :]).sum(axis=(0, 3))
            queries += int(mask.sum())
            layouts = stack_layouts([layout_of(ba.token_info(row), causal=lm_a.spec.causal) for row in range(len(ba))],
                                    a.shape[-1])
            stats_a.add(a, layouts, level)
            stats_b.add(b, layouts, level)
            bar.update(len(ba))
    if queries == 0:
        raise AttnlensError(f"no usable input in the corpus {corpus_name}")
    atlas_a = Atlas(stats_a, lm_a.name, corpus_name, level)
    atlas_b = Atlas(stats_b, lm_b.name, corpus_name, level)
    change, note = (None, "") if importance is None else importance_change(
        model_a, model_b, lm_a, lm_b, pairs, importance, batch_size=batch_size, seed=seed, progress=progress)
    return HeadDiff(tv_sum / queries, atlas_a, atlas_b, queries, change, note)


# ---- the report --------------------------------------------------------------------------
def _plot(result: HeadDiff, out: Path) -> list[Path]:
    """diff.png / diff.svg: the per-head distance grid and the per-layer means; [] without matplotlib."""
    try:
        import matplotlib  # noqa: PLC0415  (matplotlib is an optional extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (after matplotlib.use; an optional extra)
    except ImportError:
        return []
    L, H = result.tv.shape
    imp = result.importance
    ratios = [max(H, 2), 3] + ([max(H, 2)] if imp is not None else [])
    fig, axes = plt.subplots(1, len(ratios), figsize=(max(6.0, 0.5 * H + 4.5) + (0.5 * H + 1.5) * (imp is not None),
                                                      max(2.8, 0.4 * L + 1.4)), gridspec_kw={"width_ratios": ratios})
    left, right = axes[0], axes[1]
    image = left.imshow(result.tv, cmap="magma", aspect="auto", vmin=0)
    for (layer, head), v in np.ndenumerate(result.tv):
        left.text(head, layer, f"{v:.2f}".lstrip("0"), ha="center", va="center", fontsize=6,
                  color="white" if v < 0.6 * max(result.tv.max(), 1e-9) else "black")
    left.set_xlabel("head")
    left.set_ylabel("layer")
    left.set_xticks(range(H))
    left.set_yticks(range(L))
    left.set_title("mean total-variation distance per head", fontsize=9)
    fig.colorbar(image, ax=left, fraction=0.04)
    right.barh(range(L), result.layer_tv, color="#6a51a3")
    right.set_yticks(range(L))
    right.invert_yaxis()
    right.set_xlabel("mean over heads")
    right.set_title("per layer", fontsize=9)
    if imp is not None:
        _importance_panel(fig, axes[2], imp)
    fig.suptitle(f"{result.atlas_a.model_name} -> {result.atlas_b.model_name}", fontsize=8)
    fig.tight_layout()
    paths = [out / "diff.png", out / "diff.svg"]
    for path in paths:
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=path.suffix[1:], dpi=110)
    plt.close(fig)
    return paths


def _importance_panel(fig, ax, imp: ImportanceChange) -> None:
    """Importance change B - A per head on a diverging scale centred on 0."""
    change = imp.change
    bound = max(float(np.abs(change).max()), 1e-9)
    image = ax.imshow(change, cmap="RdBu_r", aspect="auto", vmin=-bound, vmax=bound)
    for (layer, head), v in np.ndenumerate(change):
        ax.text(head, layer, f"{v:+.2f}".replace("0.", "."), ha="center", va="center", fontsize=6,
                color="white" if abs(v) > 0.6 * bound else "black")
    L, H = change.shape
    ax.set_xlabel("head")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_title(f"importance change B - A ({imp.objective})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04)


def _html(result: HeadDiff, image: bool) -> str:
    e = html.escape
    d = result.to_dict()
    parts = [f"<h1>Attention diff</h1><p>{e(d['model_a'])} &rarr; {e(d['model_b'])}, over {d['inputs']} inputs of "
             f"{e(d['corpus'])} ({d['queries']} attention rows per head). Distance: {e(d['tv']['definition'])}.</p>"]
    if image:
        parts.append('<p><img src="diff.png" alt="per-head and per-layer attention distance"></p>')
    imp = d["importance"]
    if imp is not None:
        parts.append(f"<p>Head importance: objective {e(imp['objective'])} ({e(imp['definition'])}); "
                     f"{e(imp['method'])}; rank 1 = most important of all heads.</p>")
    elif d["importance_note"]:
        parts.append(f"<p>{e(d['importance_note'])}</p>")
    parts.append("<h2>Per layer</h2><table><tr><th>layer</th><th>mean distance</th>"
                 + "".join(f"<th>|&Delta; {e(n)}|</th>" for n in d["layer_score_change"])
                 + ("<th>|&Delta; importance|</th>" if imp else "") + "</tr>")
    for l, v in enumerate(d["tv"]["layers"]):
        parts.append(f"<tr><td>{l}</td><td>{v:.4f}</td>"
                     + "".join(f"<td>{vals[l]:.4f}</td>" for vals in d["layer_score_change"].values())
                     + (f"<td>{imp['layers'][l]:.4f}</td>" if imp else "") + "</tr>")
    parts.append("</table>")
    if imp and imp["movers"]:
        parts.append("<h2>Importance rank moved most</h2><table><tr><th>layer</th><th>head</th><th>rank A</th>"
                     "<th>rank B</th><th>importance A</th><th>importance B</th></tr>")
        parts += [f"<tr><td>{m['layer']}</td><td>{m['head']}</td><td>{m['rank_a']}</td><td>{m['rank_b']}</td>"
                  f"<td>{m['importance_a']:.4f}</td><td>{m['importance_b']:.4f}</td></tr>" for m in imp["movers"]]
        parts.append("</table>")
    parts.append("<h2>Per head</h2><table><tr><th>layer</th><th>head</th><th>distance</th>"
                 "<th>label A</th><th>label B</th><th>label</th>"
                 + ("<th>importance A</th><th>importance B</th><th>&Delta;</th><th>rank A &rarr; B</th>" if imp else "")
                 + "</tr>")
    for row in d["labels"]:
        l, h = row["layer"], row["head"]
        cells = "" if not imp else (f"<td>{imp['a'][l][h]:.4f}</td><td>{imp['b'][l][h]:.4f}</td>"
                                    f"<td>{imp['change'][l][h]:+.4f}</td>"
                                    f"<td>{imp['rank_a'][l][h]} &rarr; {imp['rank_b'][l][h]}</td>")
        parts.append(f"<tr><td>{l}</td><td>{h}</td><td>{d['tv']['heads'][l][h]:.4f}</td><td>{e(row['label_a'])}</td>"
                     f"<td>{e(row['label_b'])}</td><td>{e(row['change'])}</td>{cells}</tr>")
    parts.append("</table>")
    return html_page(f"attention diff: {d['model_a']} -> {d['model_b']}", "".join(parts))


def write_diff(result: HeadDiff, directory: str | Path) -> list[Path]:
    """report.html, diff.png/.svg (with matplotlib), diff.json and diff.csv in `directory`; returns the paths."""
    out = Path(directory).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    written = [atomic_write_text(out / "diff.json", json.dumps(data, indent=1) + "\n")]
    changes = result.score_change
    imp = result.importance
    with atomic_open(out / "diff.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["layer", "head", "tv", "label_a", "label_b", "label_change",
                         *(f"change_{n}" for n in changes),
                         *(() if imp is None else ("importance_a", "importance_b", "importance_change", "rank_a",
                                                   "rank_b", "rank_change"))])
        ranks = None if imp is None else (imp.ranks(imp.a), imp.ranks(imp.b))
        for row in data["labels"]:
            l, h = row["layer"], row["head"]
            extra = [] if imp is None else [f"{imp.a.scores[l, h]:.6f}", f"{imp.b.scores[l, h]:.6f}",
                                            f"{imp.change[l, h]:.6f}", ranks[0][l, h], ranks[1][l, h],
                                            ranks[0][l, h] - ranks[1][l, h]]
            writer.writerow([l, h, f"{result.tv[l, h]:.6f}", row["label_a"], row["label_b"], row["change"],
                             *(f"{v[l, h]:.6f}" for v in changes.values()), *extra])
    written.append(out / "diff.csv")
    images = _plot(result, out)
    written += images
    written.append(atomic_write_text(out / "report.html", _html(result, bool(images))))
    return written
