"""The one check of user text: what every entry point (capture, corpus, predictions, server) accepts."""

from __future__ import annotations

from ..errors import AttnlensError

Pair = tuple[str, "str | None"]  # (sentence A, sentence B or None)


def check_text(text, which: str = "A") -> str:
    """`text` itself when it is usable as sentence `which`; else a one-line AttnlensError."""
    if not isinstance(text, str):
        raise AttnlensError(f"sentence {which} must be text, got {type(text).__name__}")
    if not text.strip():
        raise AttnlensError(f"sentence {which} is empty")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise AttnlensError(f"sentence {which} is not valid Unicode text (it has a lone surrogate)") from None
    return text


def check_pair(item) -> Pair:
    """A plain sentence or a (sentence_a, sentence_b or None) pair, checked, as a pair."""
    if isinstance(item, str):
        return check_text(item, "A"), None
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise AttnlensError("each input must be a sentence or a (sentence_a, sentence_b) pair")
    a, b = item
    return check_text(a, "A"), None if b is None else check_text(b, "B")
