"""Text corpora: the shipped default prose corpus, users' document files, and sentence pairs.

Documents format (BERT pretraining data): one sentence per line, documents separated by
one or more blank lines, UTF-8, plain ``.txt`` or gzip ``.txt.gz``. The shipped corpus
(``attnlens/data/*.txt.gz``, built by ``scripts/build_corpus.py``; licences in
``attnlens/data/NOTICE``) has one file per source.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import zlib
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..capturing.inputs import check_pair
from ..errors import AttnlensError

# name -> what it is; "default" is every source together.
DATASETS: dict[str, str] = {
    "default": "all shipped sources together (python-docs + jargon + debian-reference)",
    "python-docs": "Python 3.11 documentation prose (PSF licence)",
    "jargon": "the Jargon File 4.4.7: glossary entries and essay sections (public domain)",
    "debian-reference": "Debian Reference 2.100, one section per document (GPL-2+)",
}
SOURCES: tuple[str, ...] = ("python-docs", "jargon", "debian-reference")
SPLITS = ("all", "train", "heldout")
HELDOUT_MODULUS = 20  # 1 document in 20 (~5%) is held out


def is_heldout(document: list[str]) -> bool:
    """Stable document-level split: a hash of the document's text (not Python's salted hash())."""
    digest = hashlib.sha1("\n".join(document).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELDOUT_MODULUS == 0


def parse_documents(text: str) -> list[list[str]]:
    """Split documents-format text into documents (lists of sentences); blank lines separate documents."""
    documents: list[list[str]] = []
    current: list[str] = []
    for line in text.splitlines():
        sentence = line.strip()
        if sentence:
            current.append(sentence)
        elif current:
            documents.append(current)
            current = []
    if current:
        documents.append(current)
    return documents


def _decode(data: bytes, label: str) -> str:
    if b"\x00" in data:
        offset = data.index(b"\x00")
        raise AttnlensError(f"{label}: looks like a binary file (NUL byte at offset {offset}), expected UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise AttnlensError(f"{label}: not UTF-8 text (undecodable byte 0x{data[err.start]:02x} "
                            f"at offset {err.start})") from None


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise AttnlensError(f"{path}: cannot read ({err.strerror or err})") from None
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise AttnlensError(f"{path}: not a valid gzip file ({err})") from None
        return _decode(data, f"{path} (after gunzip)")
    return _decode(data, str(path))


def _is_documents_file(path: Path) -> bool:
    return path.is_file() and (path.name.endswith(".txt") or path.name.endswith(".txt.gz"))


def read_documents(path: str | os.PathLike) -> list[list[str]]:
    """Read a documents-format file, or every ``.txt``/``.txt.gz`` file directly in a folder (sorted by name)."""
    path = Path(path)
    if not path.exists():
        raise AttnlensError(f"corpus path not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _is_documents_file(p))
        if not files:
            raise AttnlensError(f"{path}: folder has no .txt or .txt.gz files")
    else:
        files = [path]
    documents = [doc for file in files for doc in parse_documents(_read_text(file))]
    if not documents:
        raise AttnlensError(f"{path}: empty corpus (no sentences found)")
    return documents


@lru_cache(maxsize=None)
def _shipped(source: str) -> tuple[tuple[str, ...], ...]:
    resource = resources.files("attnlens").joinpath("data", f"{source}.txt.gz")
    try:
        data = resource.read_bytes()
    except OSError:
        raise AttnlensError(f"shipped corpus file data/{source}.txt.gz is missing from the attnlens package "
                            "(rebuild it with scripts/build_corpus.py)") from None
    text = gzip.decompress(data).decode("utf-8")
    return tuple(tuple(doc) for doc in parse_documents(text))


def load_documents(name: str = "default", split: str = "all") -> list[list[str]]:
    """The shipped corpus ``name`` (see DATASETS) as documents; ``split``: "all", "train" or "heldout"."""
    if name not in DATASETS:
        raise AttnlensError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise AttnlensError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    sources = SOURCES if name == "default" else (name,)
    documents = [list(doc) for source in sources for doc in _shipped(source)]
    if split == "all":
        return documents
    want_heldout = split == "heldout"
    return [doc for doc in documents if is_heldout(doc) == want_heldout]


def nsp_pairs(documents: list[list[str]], *, seed: int = 0, limit: int | None = None,
              next_fraction: float = 0.5) -> list[tuple[str, str, bool]]:
    """(A, B, is_next) for consecutive sentences of a document; a share ``1 - next_fraction`` of the
    pairs (exactly rounded) get a random B from another document and is_next False.

    Without ``limit`` every consecutive pair in corpus order; with it, ``limit`` pairs drawn at random
    (then kept in corpus order). Deterministic from ``seed``.
    """
    if not 0.0 <= next_fraction <= 1.0:
        raise AttnlensError(f"next_fraction must be between 0 and 1, got {next_fraction}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise AttnlensError(f"limit must be a positive integer, got {limit!r}")
    slots = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    if not slots:
        raise AttnlensError("no sentence pairs: every document has fewer than 2 sentences")
    rng = random.Random(seed)
    if limit is not None and limit < len(slots):
        slots = [slots[k] for k in sorted(rng.sample(range(len(slots)), limit))]
    n_random = round((1.0 - next_fraction) * len(slots))
    replaced = set(rng.sample(range(len(slots)), n_random)) if n_random else set()
    if replaced and len(documents) < 2:
        raise AttnlensError("random (NotNext) pairs need at least 2 documents; the corpus has 1")
    pairs: list[tuple[str, str, bool]] = []
    for k, (d, i) in enumerate(slots):
        a = documents[d][i]
        if k in replaced:
            other = rng.randrange(len(documents) - 1)
            other += other >= d  # any document but d
            b = rng.choice(documents[other]) if documents[other] else documents[d][i + 1]
            pairs.append((a, b, False))
        else:
            pairs.append((a, documents[d][i + 1], True))
    return pairs


def sentence_pairs(documents: list[list[str]], *, seed: int = 0, limit: int | None = None,
                   next_fraction: float = 1.0) -> list[tuple[str, str]]:
    """(A, B) pairs of consecutive sentences of one document (see nsp_pairs for limit / next_fraction)."""
    return [(a, b) for a, b, _ in nsp_pairs(documents, seed=seed, limit=limit, next_fraction=next_fraction)]


def _read_tsv(path: Path) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for line in _read_text(path).splitlines():
        if not line.strip():
            continue
        a, tab, b = line.partition("\t")
        a, b = a.strip(), b.strip()
        if not a:
            raise AttnlensError(f"{path}: line {len(pairs) + 1} has an empty first sentence")
        pairs.append((a, b if tab and b else None))
    return pairs


def _pair_from_item(item, index: int) -> tuple[str, str | None]:
    """A sentence, a (sentence,) or a (sentence A, sentence B or None or "") item as a checked pair."""
    if isinstance(item, (tuple, list)) and len(item) in (1, 2):
        item = (item[0], item[1] if len(item) == 2 and item[1] != "" else None)
    try:
        return check_pair(item)
    except AttnlensError as exc:
        raise AttnlensError(f"corpus item {index} is not a sentence or a (sentence_a, sentence_b) pair "
                            f"({exc}): {item!r:.80}") from None


def resolve_corpus(corpus, *, seed: int = 0, limit: int | None = None,
                   split: str = "all") -> list[tuple[str, str | None]]:
    """Turn what a user passed as a corpus into (A, B or None) pairs.

    ``corpus``: a DATASETS name; a path to a .tsv file (``A<TAB>B`` per line, no tab -> (A, None)) or
    to documents (.txt / .txt.gz file or folder -> consecutive sentence pairs; (A, None) per sentence
    when every document has a single sentence); or an iterable of
    strings / (A, B) pairs. ``seed``/``limit`` sample pairs from datasets and documents files;
    ``split`` applies to datasets.
    """
    if isinstance(corpus, (str, os.PathLike)):
        if isinstance(corpus, str) and corpus in DATASETS:
            return list(sentence_pairs(load_documents(corpus, split), seed=seed, limit=limit))
        path = Path(corpus)
        if not path.exists():
            raise AttnlensError(f"corpus {str(corpus)!r} is neither a dataset ({', '.join(DATASETS)}) "
                                "nor an existing file or folder")
        if path.is_file() and path.name.endswith((".tsv", ".tsv.gz")):
            pairs = _read_tsv(path)
            if not pairs:
                raise AttnlensError(f"{path}: empty corpus (no lines)")
            return pairs[:limit] if limit is not None else pairs
        documents = read_documents(path)
        if all(len(doc) < 2 for doc in documents):  # only one-sentence documents: single sentences
            singles = [(doc[0], None) for doc in documents]
            return singles[:limit] if limit is not None else singles
        return list(sentence_pairs(documents, seed=seed, limit=limit))
    if isinstance(corpus, Iterable):
        pairs = [_pair_from_item(item, i) for i, item in enumerate(corpus)]
        if not pairs:
            raise AttnlensError("empty corpus (no sentences)")
        return pairs[:limit] if limit is not None else pairs
    raise AttnlensError(f"corpus must be a dataset name, a path or an iterable of pairs, got {type(corpus).__name__}")
