"""When each attention pattern appears during pretraining: the atlas run on every checkpoint of a run.

For every saved checkpoint the atlas scores all heads on all patterns over the same held-out
sentence pairs; the best head per pattern is recorded against the training step (and the
training minutes at that step), then drawn as a PNG and a standalone HTML page.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import corpus as corpora
from ..analysis.run import atlas
from ..capturing import load_model
from ..errors import AttnlensError
from ..io import atomic_write_bytes, atomic_write_text, html_page
from .checkpoint import TRAINER_STATE, list_checkpoints
from .data import packed_text_pairs, split_documents

RESULT_FILE = "emergence.json"
NOT_PLOTTED = ("entropy",)  # a spread measure, not a pattern's attention mass
_CSS = "table{font-size:12px}td,th{text-align:right}"


@dataclass
class Emergence:
    """Per checkpoint: step, minutes, and per pattern the best head's score (and which head)."""

    run_dir: str
    steps: list[int] = field(default_factory=list)
    minutes: list[float] = field(default_factory=list)
    best: dict[str, list[float]] = field(default_factory=dict)  # pattern -> best score per checkpoint
    best_head: dict[str, list[list[int]]] = field(default_factory=dict)  # pattern -> [layer, head] per checkpoint
    chance: dict[str, float] = field(default_factory=dict)
    inputs: int = 0
    input_kind: str = "sentences"  # "sentences": consecutive-sentence pairs; "packed": training-like packed pairs
    causal: bool = False  # a decoder's run (--objective clm): patterns that need later tokens are n/a
    undefined: dict[str, str] = field(default_factory=dict)  # pattern -> why it is n/a (scores None, never 0)

    def to_dict(self) -> dict:
        """JSON-ready (an n/a chance level, e.g. next_token's on a decoder, as null)."""
        return dict(self.__dict__, chance={k: v if np.isfinite(v) else None for k, v in self.chance.items()})

    def first_step_above(self, pattern: str, threshold: float = 0.5) -> int | None:
        """The first checkpoint step where the best head's score exceeds `threshold` (None: never)."""
        for step, value in zip(self.steps, self.best[pattern]):
            if value is not None and value > threshold:
                return step
        return None

    def summary(self) -> str:
        lines = [f"emergence of {self.run_dir}: {len(self.steps)} checkpoints, {self.inputs} held-out pairs"]
        lines.append(f"  {'pattern':24s} " + " ".join(f"{s:>6d}" for s in self.steps))
        for name, values in self.best.items():
            lines.append(f"  {name:24s} " + " ".join("   n/a" if v is None else f"{v:6.3f}" for v in values))
        for name, reason in self.undefined.items():
            lines.append(f"  {name}: not defined ({reason})")
        return "\n".join(lines)


def heldout_documents(run_dir: Path) -> list[list[str]]:
    """The run's held-out documents (the default corpus's held-out split when the run does not say)."""
    run = json.loads((run_dir / "run.json").read_text(encoding="utf-8")) if (run_dir / "run.json").is_file() else {}
    info = run.get("corpus", {})
    if info.get("corpus"):
        return split_documents(corpora.read_documents(info["corpus"]), run["config"]["seed"])[1]
    return corpora.load_documents(info.get("dataset", "default"), split="heldout")


def heldout_pairs(run_dir: Path, limit: int | None, seed: int = 0) -> list[tuple[str, str]]:
    """Consecutive-sentence pairs from the run's held-out text (the default corpus's held-out split otherwise)."""
    return corpora.sentence_pairs(heldout_documents(run_dir), seed=seed, limit=limit)


def emergence(run_dir, *, limit: int = 300, progress: bool = True, inputs: str = "sentences") -> Emergence:
    """Run the atlas on every checkpoint of `run_dir` over `limit` held-out pairs.

    `inputs`: "sentences" (consecutive-sentence pairs, the atlas's default inputs) or "packed" (pairs
    packed BERT-style up to the model's positions, like the training inputs; data.packed_text_pairs).
    """
    import transformers  # noqa: PLC0415  (heavy: imported on first use)

    run_dir = Path(run_dir).expanduser()
    found = list_checkpoints(run_dir)
    if not found:
        raise AttnlensError(f"{run_dir} has no checkpoints (expected {run_dir}/checkpoints/step-*)")
    if limit < 1:
        raise AttnlensError(f"--limit must be at least 1, got {limit}")
    if inputs not in ("sentences", "packed"):
        raise AttnlensError(f"inputs must be 'sentences' or 'packed', got {inputs!r}")
    pairs = heldout_pairs(run_dir, None) if inputs == "sentences" else None
    result = Emergence(str(run_dir), input_kind=inputs)
    usable = None
    for n, (step, folder) in enumerate(found, start=1):
        arch = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("architectures") or []
        model_class = getattr(transformers, arch[0], None) if arch else None  # the checkpoint's own class
        lm = load_model(str(folder), model_class=model_class)
        if usable is None and pairs is None:  # packed pairs: built once with the run's tokenizer
            usable = packed_text_pairs(heldout_documents(run_dir), lm.tokenizer, lm.max_length, limit)
            if not usable:
                raise AttnlensError("the held-out split gives no packed pairs")
        if usable is None:  # the same pairs for every checkpoint: those that fit the positions, evenly spread
            lengths = [len(ids) for ids in lm.tokenizer([a for a, _ in pairs], [b for _, b in pairs])["input_ids"]]
            fitting = [p for p, n_tok in zip(pairs, lengths) if n_tok <= lm.max_length]
            if not fitting:
                raise AttnlensError(f"no held-out sentence pair fits the model's {lm.max_length} positions")
            usable = [fitting[i] for i in np.linspace(0, len(fitting) - 1, min(limit, len(fitting))).astype(int)]
        result_atlas = atlas(usable, model=lm, progress=False)
        state_file = folder / TRAINER_STATE  # absent from a model folder not written by `attnlens pretrain`
        state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.is_file() else {}
        result.steps.append(step)
        result.minutes.append(round(float(state.get("train_seconds", 0.0)) / 60, 2))
        result.inputs = result_atlas.inputs
        result.chance = result_atlas.chance
        result.causal, result.undefined = result_atlas.causal, result_atlas.undefined
        for name, scores in result_atlas.scores.items():
            if name in result.undefined:  # e.g. next_token on a decoder: n/a, not a best head of 0
                result.best.setdefault(name, []).append(None)
                result.best_head.setdefault(name, []).append(None)
                continue
            values = np.nan_to_num(scores, nan=-np.inf)
            index = np.unravel_index(int(np.argmax(values)), values.shape)
            result.best.setdefault(name, []).append(round(float(scores[index]), 4))
            result.best_head.setdefault(name, []).append([int(index[0]), int(index[1])])
        if progress:
            print(f"checkpoint {n}/{len(found)} (step {step}) scored", file=sys.stderr)
    return result


def plot_png(result: Emergence) -> bytes:
    """Each pattern's best-head score against the training step, as PNG bytes."""
    try:
        import matplotlib  # noqa: PLC0415  (matplotlib is an optional extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (after matplotlib.use; an optional extra)
    except ImportError:
        raise AttnlensError("the emergence plot needs matplotlib: pip install 'attnlens[plot]'") from None
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    for name, values in result.best.items():
        if name in NOT_PLOTTED or all(v is None for v in values):
            continue
        ax.plot(result.steps, values, marker="o", markersize=3, label=name)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("training step")
    ax.set_ylabel("best head's score")
    ax.set_ylim(0, 1)
    ax.set_title("Attention patterns during pretraining (held-out text)")
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def render_html(result: Emergence, png: bytes) -> str:
    """A standalone page: the plot (inline PNG) and the table of best scores and heads (all text escaped)."""
    e = html.escape
    head_row = "".join(f"<th>{s}<br><small>{m:.1f} min</small></th>" for s, m in zip(result.steps, result.minutes))
    rows = []
    for name, values in result.best.items():
        cells = "".join("<td>n/a</td>" if v is None else
                        f"<td title='L{h[0]} H{h[1]}'>{v:.3f}<br><small>L{h[0]} H{h[1]}</small></td>"
                        for v, h in zip(values, result.best_head[name]))
        chance = result.chance.get(name)
        chance = "n/a" if chance is None or not np.isfinite(chance) else f"{chance:.3f}"
        rows.append(f"<tr><th>{e(name)}</th><td>{chance}</td>{cells}</tr>")
    img = base64.b64encode(png).decode("ascii")
    body = (f"<h1>Pattern emergence: {e(result.run_dir)}</h1>"
            f"<p>Best head per pattern at every checkpoint, atlas scores over {result.inputs} held-out "
            f"{'consecutive-sentence' if result.input_kind == 'sentences' else 'packed (training-like)'} "
            "pairs.</p>"
            + ("<p><b>Causal (decoder) model</b>: " + e("; ".join(f"{n} is not defined ({r})" for n, r in
                                                                 result.undefined.items())) + ".</p>"
               if result.causal else "") +
            f"<img alt='emergence plot' src='data:image/png;base64,{img}'>"
            f"<table><tr><th>pattern</th><th>chance</th>{head_row}</tr>{''.join(rows)}</table>")
    return html_page("attnlens emergence", body, css=_CSS)


def write_emergence(result: Emergence, out_dir) -> dict[str, Path]:
    """emergence.json, emergence.png and emergence.html in `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    png = plot_png(result)
    paths = {"json": out_dir / RESULT_FILE, "png": out_dir / "emergence.png", "html": out_dir / "emergence.html"}
    atomic_write_text(paths["json"], json.dumps(result.to_dict(), indent=1) + "\n")
    atomic_write_bytes(paths["png"], png)
    atomic_write_text(paths["html"], render_html(result, png))
    return paths
