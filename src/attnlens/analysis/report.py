"""The atlas output folder: scores (JSON, CSV), heatmaps and a label map (PNG, SVG), explanations and
causal checks (JSON), an HTML report. Every file is written atomically (attnlens.io).

The HTML report is self-contained (no network, every text escaped; it loads only its own
folder's images). Standalone view pages of an example input, each opened on one head, are
written to views/ for the labelled heads and the top head of each pattern, and those heads'
cells open them; every other cell links to the head's section of the report.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np

from ..errors import AttnlensError
from ..io import atomic_open, atomic_write_text, html_page
from ..views.html import to_html

LABEL_COLORS = {
    "next_token": "#1f77b4", "previous_token": "#ff7f0e", "self": "#17becf", "same_token": "#2ca02c",
    "same_token_other_sentence": "#d62728", "same_word_pieces": "#9467bd", "cls": "#8c564b",
    "sep": "#e377c2", "punctuation": "#ff9896", "same_lemma": "#98df8a", "bag_of_words": "#bcbd22",
    "broad": "#c7c7c7", "mixed": "#f7f7f7",
}
SHORT = {
    "next_token": "next", "previous_token": "prev", "self": "self", "same_token": "same",
    "same_token_other_sentence": "other", "same_word_pieces": "pieces", "cls": "CLS", "sep": "SEP",
    "punctuation": "punct", "same_lemma": "lemma", "bag_of_words": "bow", "broad": "broad", "mixed": "mixed",
    "entropy": "ent",
}


def _primary(label) -> str:
    """The pattern a label is coloured by: its best dominant pattern, or broad/mixed."""
    return label.patterns[0][0] if label.patterns else label.name


def write_scores(at, out: Path) -> list[Path]:
    """scores.json (everything) and scores.csv (one row per layer, head, pattern)."""
    json_path, csv_path = out / "scores.json", out / "scores.csv"
    atomic_write_text(json_path, json.dumps(at.to_dict(), indent=1))
    labels, undefined = at.labels, at.undefined
    with atomic_open(csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["layer", "head", "pattern", "mean", "std", "queries", "chance", "label"])
        for name in at.pattern_names:
            mean, std = at.scores[name], at.spread[name]
            for layer in range(at.num_layers):
                for head in range(at.num_heads):
                    numbers = (["n/a"] * 2 if name in undefined else  # not defined (e.g. next_token, causal)
                               [f"{mean[layer, head]:.6f}", f"{std[layer, head]:.6f}"])
                    writer.writerow([layer, head, name, *numbers, at.counts[name],
                                     "n/a" if name in undefined else f"{at.chance[name]:.6f}",
                                     labels[(layer, head)].name])
    return [json_path, csv_path]


def write_plots(at, out: Path) -> list[Path]:
    """heatmap_<pattern>.png/.svg per pattern and labels.png/.svg; [] when matplotlib is missing."""
    try:
        import matplotlib  # noqa: PLC0415  (matplotlib is an optional extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (after matplotlib.use; an optional extra)
        from matplotlib.patches import Patch  # noqa: PLC0415  (matplotlib is an optional extra)
    except ImportError:
        return []
    written = []
    size = (max(4.0, 0.55 * at.num_heads + 1.5), max(2.5, 0.45 * at.num_layers + 1.2))
    for name in at.pattern_names:
        values = at.scores[name]  # [L, H]
        fig, ax = plt.subplots(figsize=size)
        image = ax.imshow(np.nan_to_num(values, nan=0.0), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (layer, head), v in np.ndenumerate(values):
            ax.text(head, layer, "-" if not np.isfinite(v) else f"{v:.2f}".lstrip("0"), ha="center", va="center",
                    fontsize=7, color="white" if not np.isfinite(v) or v < 0.6 else "black")
        fig.colorbar(image, ax=ax, fraction=0.04)
        title = f"{name}: n/a (not defined)" if name in at.undefined else f"{name} (chance {at.chance[name]:.2f})"
        written += _finish_grid(fig, ax, at, title, out / f"heatmap_{name}")
    labels = at.labels
    fig, ax = plt.subplots(figsize=(size[0] + 2.2, size[1]))
    colors = np.zeros((at.num_layers, at.num_heads, 3))
    for (layer, head), label in labels.items():
        colors[layer, head] = matplotlib.colors.to_rgb(LABEL_COLORS.get(_primary(label), "#ffffff"))
        text = "+".join(SHORT.get(n, n) for n, _ in label.patterns) or SHORT.get(label.name, label.name)
        ax.text(head, layer, text, ha="center", va="center", fontsize=6)
    ax.imshow(colors, aspect="auto")
    used = sorted({_primary(l) for l in labels.values()}, key=list(LABEL_COLORS).index)
    ax.legend(handles=[Patch(color=LABEL_COLORS[n], label=n) for n in used], loc="center left",
              bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    written += _finish_grid(fig, ax, at, f"head labels: {at.model_name}", out / "labels")
    return written


def _finish_grid(fig, ax, at, title: str, stem) -> list:
    """Axis labels and title of a layers x heads figure; saves it as PNG and SVG, closes it."""
    import matplotlib.pyplot as plt  # noqa: PLC0415  (matplotlib is an optional extra)

    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(at.num_heads))
    ax.set_yticks(range(at.num_layers))
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    paths = [stem.with_name(f"{stem.name}.{ext}") for ext in ("png", "svg")]
    for path in paths:
        with atomic_open(path, "wb") as fh:
            fig.savefig(fh, format=path.suffix[1:], dpi=110)
    plt.close(fig)
    return paths


def view_heads(at) -> list[tuple[int, int]]:
    """Heads that get a view page: every head with a pattern label and the top head of each pattern."""
    heads = {key for key, label in at.labels.items() if label.patterns}
    heads |= {at.top(name, 1)[0][:2] for name in at.pattern_names}
    return sorted(heads)


def write_views(example, out: Path, heads) -> dict[tuple[int, int], str]:
    """Standalone view pages of `example` (a Capture), one per head opened on that head;
    {(layer, head): relative path}, empty without an example."""
    if example is None:
        return {}
    pages: dict[tuple[int, int], str] = {}
    folder = out / "views"
    folder.mkdir(exist_ok=True)
    for layer, head in heads:
        name = f"L{layer}-H{head}.html"
        atomic_write_text(folder / name, to_html(example, layer=layer, head=head))
        pages[(layer, head)] = f"views/{name}"
    return pages


_CSS = """td,th{text-align:center;font-size:12px}td a{color:inherit;text-decoration:none;display:block}
.def{max-width:60em}.head{margin:1em 0;padding:.3em .8em;border-left:4px solid #ccc}"""


def _cell_color(v: float) -> str:
    if not np.isfinite(v):
        return "#eee"
    shade = int(255 - 180 * min(max(v, 0.0), 1.0))
    return f"rgb({shade},{shade},255)"


def render_html(at, *, views: dict | None = None, images: bool = False, explanations=None, causal=None,
                importance=None) -> str:
    """The report page (every text escaped); `views` maps (layer, head) to that head's view page;
    importance: a HeadImportance (an importance column per head and the labels x importance map)."""
    e = html.escape
    labels = at.labels
    views = views or {}

    def view_href(layer, head):  # that head's view page, opened with only that head shown (the page reads #heads=)
        return e(f"{views[(layer, head)]}#heads={head}", quote=True)

    def link(layer, head):
        return view_href(layer, head) if (layer, head) in views else f"#head-{layer}-{head}"

    parts = [f"<h1>Attention atlas of {e(at.model_name)}</h1>",
             f"<p>{at.inputs} inputs from {e(at.corpus_name or 'a corpus')}, {e(at.level)} level."]
    if at.skipped:
        parts.append(" Skipped: " + e(", ".join(f"{n} {r}" for r, n in sorted(at.skipped.items()))) + ".")
    if at.causal:
        parts.append(" <b>Causal (decoder) model</b>: each query sees only itself and the tokens before it, so "
                     "patterns that need later tokens are not defined (n/a), chance levels use the causal row "
                     "length, and the first token (the decoder's sink) is scored as [CLS].")
    if "parser" in at.meta:
        p = at.meta["parser"]
        parts.append(f" Related tokens: lemmas from the parser {e(str(p.get('name')))} {e(str(p.get('version')))} "
                     f"(spaCy {e(str(p.get('spacy')))}; <a href='#pattern-same_lemma'>same_lemma</a>); coreference: "
                     f"{e(str(at.meta.get('coreference')))}.")
    parts.append("</p><p class='def'>Label rule: a head is labelled with every pattern whose chance-corrected "
                 f"score (score - chance) / (1 - chance) is at least {at.threshold:g}; otherwise <i>broad</i> "
                 f"if its normalized entropy is at least {at.broad_entropy:g}, "
                 "else <i>mixed</i>. Click a cell for that head's scores"
                 + (" (labelled and top heads open in the view of an example input)." if views else ".") + "</p>")
    parts.append("<h2>Labels</h2><table><tr><th>layer \\ head</th>"
                 + "".join(f"<th>{h}</th>" for h in range(at.num_heads)) + "</tr>")
    for layer in range(at.num_layers):
        parts.append(f"<tr><th>{layer}</th>")
        for head in range(at.num_heads):
            label = labels[(layer, head)]
            text = "+".join(SHORT.get(n, n) for n, _ in label.patterns) or label.name
            color = LABEL_COLORS.get(_primary(label), "#fff")
            parts.append(f"<td style='background:{color}' title='{e(str(label))}'>"
                         f"<a href='{link(layer, head)}'>{e(text)}<br>{label.score:.2f}</a></td>")
        parts.append("</tr>")
    parts.append("</table>")
    if images:
        parts.append("<img src='labels.png' alt='label map'>")
    parts.append("<h2>Patterns</h2>")
    undefined = at.undefined
    for name in at.pattern_names:
        values = at.scores[name]
        parts.append(f"<h3 id='pattern-{e(name)}'>{e(name)}</h3><p class='def'>{e(at.definition(name))} " + (
            f"<b>n/a: not defined</b> on this corpus: {e(undefined[name])}.</p>" if name in undefined else
            f"Defined for {at.counts[name]} queries; uniform attention would score {at.chance[name]:.3f}.</p>"))
        parts.append("<table><tr><th>layer \\ head</th>"
                     + "".join(f"<th>{h}</th>" for h in range(at.num_heads)) + "</tr>")
        for layer in range(at.num_layers):
            parts.append(f"<tr><th>{layer}</th>" + "".join(
                f"<td style='background:{_cell_color(v)}'><a href='{link(layer, head)}'>"
                f"{'-' if not np.isfinite(v) else f'{v:.2f}'}</a></td>"
                for head, v in enumerate(values[layer])) + "</tr>")
        parts.append("</table>")
        if images:
            parts.append(f"<img src='heatmap_{e(name)}.png' alt='{e(name)} heatmap'>")
    if explanations:
        parts.append("<h2>Which q/k dimensions carry each pattern (top head per pattern)</h2>")
        parts += [f"<pre>{e(ex.text())}</pre>" for ex in explanations]
    if causal is not None:
        parts.append(f"<h2>Causal checks</h2><pre>{e(causal.text())}</pre>")
    if importance is not None:
        parts.append(importance_section(at, importance, link))
    parts.append("<h2>Heads</h2>")
    for (layer, head), label in sorted(labels.items()):
        rows = "".join(f"<tr><td>{e(n)}</td><td colspan='3'>n/a (not defined)</td></tr>" if n in undefined else
                       f"<tr><td>{e(n)}</td><td>{at.scores[n][layer, head]:.3f}</td>"
                       f"<td>{at.spread[n][layer, head]:.3f}</td>"
                       f"<td>{at.chance[n]:.3f}</td></tr>" for n in at.pattern_names)
        view_link = (f" <a href='{view_href(layer, head)}'>open in the view</a>"
                     if (layer, head) in views else "")
        matters = "" if importance is None else f"; importance {importance.scores[layer, head]:.4f}"
        parts.append(f"<div class='head' id='head-{layer}-{head}'><b>layer {layer} head {head}</b>: "
                     f"{e(str(label))}{e(matters)}{view_link}"
                     f"<table><tr><th>pattern</th><th>mean</th><th>std</th><th>chance</th></tr>{rows}</table></div>")
    return html_page(f"attnlens atlas: {at.model_name}", "".join(parts), css=_CSS)


def importance_section(at, importance, link) -> str:
    """The labels x importance map (each head's label on a cell shaded by its importance) and, per label,
    how important its heads are."""
    e = html.escape
    scores = importance.scores  # [L, H]
    top = max(float(np.nanmax(scores)), 1e-12)
    labels = at.labels
    parts = [f"<h2 id='importance'>Importance</h2><p class='def'>{e(importance.objective)} objective, "
             f"{e(importance.method)} ({e(str(importance.ablation))}) over {importance.inputs} inputs: the mean "
             "change of 1 - cosine(sentence embedding, unablated) when the head's context vector is zeroed. "
             "Cells: the head's label and importance (darker = more important). Files: importance.json/.csv.</p>"
             "<table><tr><th>layer \\ head</th>" + "".join(f"<th>{h}</th>" for h in range(at.num_heads)) + "</tr>"]
    for layer in range(at.num_layers):
        parts.append(f"<tr><th>{layer}</th>")
        for head in range(at.num_heads):
            label = labels[(layer, head)]
            text = "+".join(SHORT.get(n, n) for n, _ in label.patterns) or label.name
            value = float(scores[layer, head])
            parts.append(f"<td style='background:{_cell_color(value / top)}'><a href='{link(layer, head)}'>"
                         f"{e(text)}<br>{value:.3f}</a></td>")
        parts.append("</tr>")
    parts.append("</table><table><tr><th>label</th><th>heads</th><th>mean importance</th>"
                 "<th>heads in the top quarter</th></tr>")
    cut = np.quantile(scores, 0.75)
    groups: dict[str, list[float]] = {}
    for (layer, head), label in labels.items():
        groups.setdefault(_primary(label), []).append(float(scores[layer, head]))
    for name, values in sorted(groups.items(), key=lambda kv: -float(np.mean(kv[1]))):
        parts.append(f"<tr><td>{e(name)}</td><td>{len(values)}</td><td>{np.mean(values):.4f}</td>"
                     f"<td>{sum(v >= cut for v in values)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def write_report(at, out: Path, *, example=None, explanations=None, causal=None, importance=None) -> Path:
    """Write the whole output folder; returns the report's path."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise AttnlensError(f"{out} exists and is not a folder") from None
    write_scores(at, out)
    images = bool(write_plots(at, out))
    views = write_views(example, out, view_heads(at))
    if explanations:
        atomic_write_text(out / "explanations.json", json.dumps([ex.to_dict() for ex in explanations], indent=1))
    if causal is not None:
        atomic_write_text(out / "causal.json", json.dumps({"rows": causal.rows(), "unavailable": causal.unavailable},
                                                          indent=1))
    if importance is not None:
        importance.save(out, plot=images)  # images: matplotlib is installed
    report = out / "report.html"
    atomic_write_text(report, render_html(at, views=views, images=images, explanations=explanations, causal=causal,
                                          importance=importance))
    return report
