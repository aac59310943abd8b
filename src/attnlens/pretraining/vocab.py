"""WordPiece vocabularies: trained on a corpus with the `tokenizers` library, or read from a vocab.txt."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..errors import AttnlensError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(sentences: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2):
    """Train an uncased BERT WordPiece vocabulary; returns a transformers BertTokenizer (fast).

    Normalization and pre-tokenization are BERT's (lowercase, strip accents, split on
    whitespace and punctuation); special tokens get ids 0-4 ([PAD] = 0).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers  # noqa: PLC0415  (only to train)

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True, clean_text=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(sentences, trainer=trainer)
    vocab = tok.get_vocab()
    if len(vocab) <= len(SPECIAL_TOKENS):
        raise AttnlensError("the corpus is too small to train a WordPiece vocabulary (no words found)")
    return tokenizer_from_vocab(vocab)


def tokenizer_from_vocab(vocab: dict[str, int]):
    """A BERT tokenizer (uncased) over `vocab` (token -> id)."""
    from transformers import BertTokenizer  # noqa: PLC0415  (heavy: imported on first use)

    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise AttnlensError(f"the vocabulary lacks the special tokens {', '.join(missing)}")
    return BertTokenizer(vocab=dict(vocab), do_lower_case=True)


def load_vocab(path: str | Path):
    """Read a BERT vocab.txt (one token per line, line number = id) into a tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise AttnlensError(f"vocabulary file {path} does not exist")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise AttnlensError(f"vocabulary file {path} is not UTF-8 text") from None
    vocab: dict[str, int] = {}
    for line in lines:
        token = line.rstrip("\r\n")
        if token and token not in vocab:
            vocab[token] = len(vocab)
    return tokenizer_from_vocab(vocab)


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """Save the tokenizer files transformers loads (tokenizer.json, ...) plus a plain vocab.txt."""
    folder = Path(folder)
    tokenizer.save_pretrained(str(folder))
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    (folder / "vocab.txt").write_text("".join(token + "\n" for token, _ in vocab), encoding="utf-8")
