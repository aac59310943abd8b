"""Corpus search (as in exBERT): the corpus contexts where one head behaves most like it does on a chosen token.

An index is built once per model, corpus and indexed layers: for every text token of every
sentence, each head's query vector (mode "query", float16, unit length) or a 10-number summary
of its attention row (mode "attention": the mass at relative offsets -3..+3, on [CLS], on [SEP]
and elsewhere). A search ranks the indexed tokens by cosine similarity to the chosen token's
vector for one (layer, head) with a brute-force numpy product (one head of the whole shipped
corpus is 1.6M x 32 float16 numbers: about 0.7 s on 2 shared cores, measured in
benchmarks/bench_linguistic.py; no vector-search library), then re-captures the k hit sentences
to show where that head looked.
Memory is proportional to what is indexed; see `estimate_bytes` and `max_bytes`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..capturing import LoadedModel, batches, capture_batch, resolve_model
from ..errors import AttnlensError
from ..io import atomic_open
from .syntax import resolve_sentences

MODES = ("query", "attention")
OFFSETS = (-3, -2, -1, 0, 1, 2, 3)
ATTENTION_FEATURES = len(OFFSETS) + 3  # offsets, [CLS], [SEP], everything else
MAX_BYTES = 2 * 1024 ** 3
POINTER_BYTES = 4 + 2 + 4  # sentence (int32), position (int16), token id (int32) per indexed token


@dataclass
class SearchIndex:
    """vectors float16 [layers indexed, heads, N, D] (unit length); sentence int32 [N], position int16 [N],
    token_id int32 [N] of each indexed token; sentences: the indexed texts (sentence ids point into it)."""

    model_name: str
    corpus_name: str
    mode: str
    layers: tuple[int, ...]
    sentences: list[str]
    vectors: np.ndarray
    sentence: np.ndarray
    position: np.ndarray
    token_id: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.sentence.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes + self.sentence.nbytes + self.position.nbytes + self.token_id.nbytes)

    @property
    def bytes_per_token(self) -> float:
        return self.nbytes / max(self.size, 1)

    def layer_slot(self, layer: int) -> int:
        if layer not in self.layers:
            raise AttnlensError(f"layer {layer} is not in this index (indexed layers: {list(self.layers)}); "
                                "build one with that layer")
        return self.layers.index(layer)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"format": "attnlens.search/1", "model": self.model_name, "corpus": self.corpus_name,
                  "mode": self.mode, "layers": list(self.layers), "sentences": self.sentences, "meta": self.meta}
        with atomic_open(path, "wb") as fh:
            np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8), vectors=self.vectors,
                     sentence=self.sentence, position=self.position, token_id=self.token_id)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SearchIndex":
        try:
            with np.load(Path(path)) as data:
                header = json.loads(bytes(data["header"]).decode())
                return cls(header["model"], header["corpus"], header["mode"], tuple(header["layers"]),
                           header["sentences"], data["vectors"], data["sentence"], data["position"], data["token_id"],
                           header.get("meta", {}))
        except (OSError, KeyError, ValueError) as exc:
            raise AttnlensError(f"{path} is not an attnlens search index ({exc})") from None


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def attention_features(attn: np.ndarray, special: np.ndarray) -> np.ndarray:
    """Per query token, a summary of its attention row: mass at relative offsets -3..+3 (text tokens), on the
    first special token, on the other special tokens, and elsewhere.  attn [..., T, T] -> [..., T, 10]"""
    n = attn.shape[-1]
    special = np.asarray(special, bool)
    feats = []
    for k in OFFSETS:
        shift = np.eye(n, k=k, dtype=bool) & ~special[None, :]  # [T, T]
        feats.append((attn * shift).sum(axis=-1))
    first = np.zeros(n, bool)
    first[0] = bool(special[0])
    feats.append((attn * first).sum(axis=-1))
    feats.append((attn * (special & ~first)).sum(axis=-1))
    feats.append(np.clip(1.0 - np.stack(feats, axis=-1).sum(axis=-1), 0.0, 1.0))
    return np.stack(feats, axis=-1)  # [..., T, 10]


def _token_vectors(mode: str, queries: np.ndarray, attn: np.ndarray, special: np.ndarray) -> np.ndarray:
    """[layers, H, T, D]: query vectors or attention summaries, unit length."""
    vectors = queries if mode == "query" else attention_features(attn, special)
    return _unit(vectors.astype(np.float32))


def estimate_bytes(tokens: int, layers: int, heads: int, dim: int) -> int:
    """Bytes of an index of `tokens` tokens with `layers` layers of `heads` x `dim` float16 numbers each."""
    return tokens * (layers * heads * dim * 2 + POINTER_BYTES)


def _sentences(corpus, limit, seed) -> tuple[list[str], str]:
    return resolve_sentences(corpus, limit, seed=seed)


def build_index(corpus=None, model: LoadedModel | str | None = None, *, layers=None, mode: str = "query",
                limit: int | None = None, batch_size: int = 32, seed: int = 0, max_bytes: int = MAX_BYTES,
                progress: bool = False) -> SearchIndex:
    """Index every text token of `corpus` (sentences; see syntax.resolve_sentences; limit None = all).

    layers: None = all layers when they fit in `max_bytes`, else an error naming the fix; a list = those.
    When the chosen layers still exceed `max_bytes`, a fixed sample of the sentences (seed) that fits is indexed
    (recorded in meta["sampled"]). Inputs longer than the model's maximum are truncated and counted.
    """
    if mode not in MODES:
        raise AttnlensError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    lm = resolve_model(model)
    sentences, corpus_name = _sentences(corpus, limit, seed)
    layers = tuple(range(lm.num_layers)) if layers is None else tuple(sorted({int(x) for x in layers}))
    for layer in layers:
        if not 0 <= layer < lm.num_layers:
            raise AttnlensError(f"layer {layer} out of range: the model has {lm.num_layers} layers")
    dim = lm.d_head if mode == "query" else ATTENTION_FEATURES
    lengths = [len(ids) for ids in lm.tokenizer(sentences, add_special_tokens=True)["input_ids"]]  # with specials
    tokens = sum(max(0, min(n, lm.max_length) - 2) for n in lengths)
    need = estimate_bytes(tokens, len(layers), lm.num_heads, dim)
    meta = {"sentences_in_corpus": len(sentences), "tokens_in_corpus": tokens, "estimated_bytes": need,
            "max_bytes": max_bytes, "seed": seed}
    if need > max_bytes:
        keep = max(1, int(len(sentences) * max_bytes / need))
        chosen = sorted(random.Random(seed).sample(range(len(sentences)), keep))
        sentences = [sentences[i] for i in chosen]
        lengths = [lengths[i] for i in chosen]
        meta["sampled"] = {"sentences": keep, "of": int(meta["sentences_in_corpus"])}
    per_sentence: list = [None] * len(sentences)
    truncated = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for batch in batches(lm, sentences, batch_size=max(1, int(batch_size)), truncate=True, skip=skip):
        for row, index in enumerate(batch.index):
            n = batch.length(row)
            info = batch.token_info(row)
            text = ~info.special_mask  # [T]
            if n < lengths[index]:
                truncated.append(index)
            if mode == "query" and batch.queries is None:
                raise AttnlensError(f"{mode} search needs per-head queries, which {lm.name} captures do not have "
                                    "(its family has no entry in the architecture table); use mode='attention'")
            q = None if batch.queries is None else batch.queries[row, list(layers), :, :n]  # [l, H, T, D]
            a = batch.attentions[row, list(layers), :, :n, :n]  # [l, H, T, T]
            vec = _token_vectors(mode, q, a, info.special_mask)[:, :, text]  # [l, H, t, D]
            per_sentence[index] = (vec.astype(np.float16), np.flatnonzero(text), info.token_ids[text])
        if progress:
            print(f"\rindexed {sum(x is not None for x in per_sentence)}/{len(sentences)}", end="", flush=True)
    kept = [(i, x) for i, x in enumerate(per_sentence) if x is not None]
    if not kept:
        raise AttnlensError("nothing to index: every sentence was skipped")
    vectors = np.concatenate([x[0] for _, x in kept], axis=2)  # [l, H, N, D]
    sentence = np.concatenate([np.full(len(x[1]), i, np.int32) for i, x in kept])
    position = np.concatenate([x[1] for _, x in kept]).astype(np.int16)
    token_id = np.concatenate([x[2] for _, x in kept]).astype(np.int32)
    meta.update({"skipped": skipped, "truncated_sentences": len(truncated)})
    return SearchIndex(lm.name, corpus_name, mode, layers, sentences, np.ascontiguousarray(vectors), sentence,
                       position, token_id, meta)


def index_path(model_name: str, corpus_name: str, mode: str, layers, limit, seed: int = 0) -> Path:
    """Where `attnlens search` caches the index of this model, corpus and settings ($ATTNLENS_CACHE or
    ~/.cache/attnlens/search)."""
    root = Path(os.environ.get("ATTNLENS_CACHE", Path.home() / ".cache" / "attnlens")) / "search"
    key = json.dumps([model_name, corpus_name, mode, list(layers) if layers is not None else None, limit, seed])
    return root / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


@dataclass(frozen=True)
class Hit:
    """One context: the sentence, the matched token (position in `tokens`) and where the head looked."""

    sentence_index: int
    sentence: str
    tokens: list[str]
    position: int
    similarity: float
    looked_at: list[tuple[int, str, float]]  # (position, token, weight) of the head's top 3 keys for that token

    def text(self) -> str:
        marked = " ".join(f"[[{t}]]" if i == self.position else t for i, t in enumerate(self.tokens)
                          if t not in ("[CLS]", "[SEP]"))
        looked = ", ".join(f"{t} {w:.2f}" for _, t, w in self.looked_at)
        return f"{self.similarity:.3f}  {marked}\n       looked at: {looked}"

    def to_dict(self) -> dict:
        return {"sentence_index": self.sentence_index, "sentence": self.sentence, "tokens": self.tokens,
                "position": self.position, "similarity": self.similarity,
                "looked_at": [{"position": p, "token": t, "weight": w} for p, t, w in self.looked_at]}


def query_vector(index: SearchIndex, lm: LoadedModel, layer: int, head: int, *, token: str | None = None,
                 query_of: tuple[str, int] | None = None) -> np.ndarray:
    """The chosen token's vector [D] for (layer, head): `query_of` (sentence, token position, [CLS] = 0) captures
    that sentence; `token` is the mean vector of the word's (first piece's) occurrences in the index, or, when the
    index has none, the word captured on its own."""
    slot = index.layer_slot(layer)
    if (token is None) == (query_of is None):
        raise AttnlensError("give either token= (--token) or query_of= (--query-of SENTENCE INDEX)")
    if token is not None:
        ids = lm.tokenizer(token, add_special_tokens=False)["input_ids"]
        if not ids:
            raise AttnlensError(f"{token!r} has no tokens")
        hits = np.flatnonzero(index.token_id == ids[0])
        if hits.size:
            return _unit(index.vectors[slot, head, hits].astype(np.float32).mean(axis=0))
        query_of = (token, 1)
    sentence, position = query_of
    cap = capture_batch(lm, [sentence], truncate=True)[0]
    return token_vector(index.mode, cap, layer, head, position)


def token_vector(mode: str, cap, layer: int, head: int, position: int) -> np.ndarray:
    """The vector [D] (unit length) an index of `mode` holds for token `position` of a capture (any input: one
    sentence or a pair) for (layer, head): what `search(..., vector=)` ranks the corpus by."""
    if not 0 <= position < len(cap.tokens):
        raise AttnlensError(f"token index {position} out of range: the input has {len(cap.tokens)} tokens "
                            f"({' '.join(cap.tokens)})")
    if mode == "query":
        cap.require_qk("a query-vector search")
    queries = None if cap.queries is None else cap.queries[[layer]]  # [1, H, T, D]
    vec = _token_vectors(mode, queries, cap.attentions[[layer]], cap.special_mask)  # [1, H, T, D]
    return vec[0, head, position]


def search(index: SearchIndex, layer: int, head: int, *, token: str | None = None,
           query_of: tuple[str, int] | None = None, k: int = 20, model: LoadedModel | str | None = None,
           vector: np.ndarray | None = None) -> list[Hit]:
    """The k indexed contexts most similar (cosine) to the chosen token for (layer, head), best first."""
    lm = resolve_model(model)
    if lm.name != index.model_name:
        raise AttnlensError(f"the index is of model {index.model_name}, not {lm.name}")
    if not 0 <= head < index.vectors.shape[1]:
        raise AttnlensError(f"head {head} out of range: the model has {index.vectors.shape[1]} heads")
    slot = index.layer_slot(layer)
    if vector is None:
        vector = query_vector(index, lm, layer, head, token=token, query_of=query_of)
    sims = index.vectors[slot, head] @ vector.astype(np.float16)  # [N]
    k = max(1, min(int(k), sims.shape[0]))
    top = np.argpartition(-sims.astype(np.float32), k - 1)[:k]
    top = top[np.argsort(-sims[top].astype(np.float32), kind="stable")]
    rows = [int(index.sentence[i]) for i in top]
    caps = {r: c for r, c in zip(sorted(set(rows)), capture_batch(lm, [index.sentences[r] for r in sorted(set(rows))],
                                                                   truncate=True))}
    hits = []
    for i in top:
        r, p = int(index.sentence[i]), int(index.position[i])
        cap = caps[r]
        row = cap.attentions[layer, head, p]  # [T]
        looked = [(int(j), cap.tokens[j], float(row[j])) for j in np.argsort(-row)[:3]]
        hits.append(Hit(r, index.sentences[r], list(cap.tokens), p, float(sims[i]), looked))
    return hits
