"""Whole-word masking of one input for the web app's "Mask this token": every piece of the
chosen token's word becomes the mask token, as whole-word masking does (straw ##berries ->
[MASK] [MASK]), so a piece of a split word can be masked where masking it alone would
re-tokenize the rest of the word.
"""

from __future__ import annotations

from .limits import LimitError


def mask_word_text(tokenizer, text_a: str, text_b: str | None, position: int) -> tuple[str, str | None, list[int], str]:
    """(new text A, new text B, the masked positions, the word's text): the word holding token
    `position` replaced by one mask token per piece (through its character span). The re-encoded
    input must equal the original with exactly those positions masked; else LimitError(422)."""
    enc = tokenizer(text_a, text_b, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if not 0 <= position < len(ids):
        raise LimitError(422, f"token {position} is out of range: the input has tokens 0..{len(ids) - 1}")
    sequences, words, offsets = enc.sequence_ids(), enc.word_ids(), enc["offset_mapping"]
    seq, word = sequences[position], words[position]
    if seq is None or word is None:
        raise LimitError(422, f"token {position} ({tokenizer.convert_ids_to_tokens(ids[position])}) is a special token")
    positions = [i for i in range(len(ids)) if sequences[i] == seq and words[i] == word]
    start, end = offsets[positions[0]][0], offsets[positions[-1]][1]
    text = text_a if seq == 0 else text_b
    masked = text[:start] + tokenizer.mask_token * len(positions) + text[end:]
    new_a, new_b = (masked, text_b) if seq == 0 else (text_a, masked)
    expected = [tokenizer.mask_token_id if i in positions else t for i, t in enumerate(ids)]
    if list(tokenizer(new_a, new_b)["input_ids"]) != expected:
        raise LimitError(422, f"the word of token {position} cannot be masked (masking it changes the other tokens)")
    return new_a, new_b, positions, text[start:end]
