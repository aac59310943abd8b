"""The web app's corpus search ("find similar contexts"): analysis/search.py over a bounded sample of one corpus.

An index per (served model, mode, layer) is built on first use over `limit` sentences of `corpus`
(the fixed sample analysis.syntax.resolve_sentences draws), kept in memory (the `keep` most recently
used) and on disk in the cache `attnlens search` uses ($ATTNLENS_CACHE, see analysis.search.index_path;
the key includes a fingerprint of the model's weights, so a retrained checkpoint under the same name is
indexed again). Everything here is blocking model work; the app runs it on the InferenceQueue, holding
the model's lock while it runs the model.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from pathlib import Path

from ..analysis.search import MODES, SearchIndex, build_index, index_path, search, token_vector
from ..capturing import Capture
from ..corpus import DATASETS
from ..errors import AttnlensError
from .models import ServedModel

DEFAULT_CORPUS = "default"
DEFAULT_LIMIT = 200  # sentences: a first search (index build) of seconds on a 2-core CPU with MiniLM


def check_corpus(corpus: str) -> str:
    """`corpus` as the search reads it: a shipped dataset name, or an existing documents/pairs file or folder."""
    if corpus in DATASETS:
        return corpus
    path = Path(corpus).expanduser()
    if not path.exists():
        raise AttnlensError(f"search corpus {corpus!r} is neither a dataset ({', '.join(DATASETS)}) "
                            "nor an existing file or folder")
    return str(path.resolve())


def model_fingerprint(served: ServedModel) -> str:
    """A short hash of the model's parameter names, shapes and first values (cheap; tells checkpoints apart)."""
    digest = hashlib.sha256(served.lm.name.encode())
    for name, param in served.lm.model.named_parameters():
        digest.update(f"{name}{tuple(param.shape)}".encode())
        digest.update(param.detach().reshape(-1)[:64].float().cpu().numpy().tobytes())
    return digest.hexdigest()[:12]


class ContextSearch:
    """Search indexes of one corpus sample, built once per (model, mode, layer) and kept."""

    def __init__(self, corpus: str = DEFAULT_CORPUS, limit: int | None = DEFAULT_LIMIT, keep: int = 8):
        self.corpus = check_corpus(corpus)
        self.limit = limit if limit else None  # 0 / None: every sentence of the corpus
        self.keep = max(1, keep)
        self._indexes: OrderedDict[tuple, SearchIndex] = OrderedDict()
        self._fingerprints: dict[str, str] = {}
        self._lock = threading.Lock()

    def describe(self) -> dict:
        return {"corpus": Path(self.corpus).name if self.corpus not in DATASETS else self.corpus,
                "limit": self.limit}

    def index(self, served: ServedModel, mode: str, layer: int) -> tuple[SearchIndex, str, float]:
        """(index, where it came from: "memory" | "disk" | "built", seconds). Call holding served.lock."""
        key = (served.name, mode, layer)
        with self._lock:
            found = self._indexes.get(key)
            if found is not None:
                self._indexes.move_to_end(key)
                return found, "memory", 0.0
        start = time.perf_counter()
        if served.name not in self._fingerprints:
            self._fingerprints[served.name] = model_fingerprint(served)
        path = index_path(f"{served.lm.name}#{self._fingerprints[served.name]}", self.corpus, mode, [layer],
                          self.limit)
        built, source = None, "disk"
        if path.exists():
            try:
                built = SearchIndex.load(path)
            except AttnlensError:
                built = None
            if built is not None and (built.mode != mode or layer not in built.layers
                                      or built.model_name != served.lm.name):
                built = None
        if built is None:
            built, source = build_index(self.corpus, served.lm, layers=[layer], mode=mode, limit=self.limit), "built"
            try:
                built.save(path)
            except OSError:
                pass  # a read-only cache: the index still serves from memory
        with self._lock:
            self._indexes[key] = built
            while len(self._indexes) > self.keep:
                self._indexes.popitem(last=False)
        return built, source, time.perf_counter() - start

    def run(self, served: ServedModel, cap: Capture, layer: int, head: int, position: int, mode: str,
            k: int) -> dict:
        """The k corpus contexts where (layer, head) behaves most like on token `position` of `cap`. Call holding
        served.lock (the index build and the hits' re-capture run the model)."""
        if mode not in MODES:
            raise AttnlensError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        index, source, index_s = self.index(served, mode, layer)
        start = time.perf_counter()
        hits = search(index, layer, head, k=k, model=served.lm,
                      vector=token_vector(mode, cap, layer, head, position))
        return {"model": served.name, "layer": layer, "head": head, "index": position, "by": mode,
                "token": cap.tokens[position], "corpus": self.describe()["corpus"],
                "indexed": {"sentences": len(index.sentences), "tokens": index.size, "source": source,
                            "seconds": round(index_s, 3)},
                "search_seconds": round(time.perf_counter() - start, 3),
                "hits": [hit.to_dict() for hit in hits]}
