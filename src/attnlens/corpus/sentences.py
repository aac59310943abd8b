"""Rule-based English sentence splitting for prose paragraphs.

A candidate boundary is a run of ``.``, ``!`` or ``?`` (plus closing quotes/brackets)
followed by whitespace. It is a real boundary only when the next word can start a
sentence (capital letter, digit, opening quote/bracket) and the word before the period is
not an abbreviation ("e.g.", "Mr.", "cf."), an initial ("J. Random"), a dotted initialism
("U.S."), or a list number ("steps: 1. Permute"). Decimals and version numbers ("3.11")
never contain whitespace after the period, so they are never candidates.
"""

from __future__ import annotations

import re

# Abbreviations after which a capitalised word does NOT start a new sentence.
NON_FINAL_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "rev", "gen", "col", "lt", "capt", "sgt", "gov",
    "e.g", "i.e", "cf", "viz", "vs", "v", "al", "approx", "esp", "resp", "incl", "fig", "figs", "eq", "eqs",
    "no", "nos", "vol", "vols", "ch", "chap", "sec", "sect", "pp", "p", "ed", "eds", "ref", "refs",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
    "inc", "ltd", "co", "corp", "dept", "univ", "assn", "bros", "ca", "c",
})

_CANDIDATE = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s+)")
_NEXT_START = re.compile(r"\s+[\"'“‘(\[]*([A-Z0-9])")
_WORD_BEFORE = re.compile(r"([\w.'-]*)$")
_INITIALISM = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")  # "U.S" / "e.g" / "a.m" (final dot stripped)


def _is_boundary(text: str, end: int, mark: str, word: str, previous: str) -> bool:
    """Decide whether the punctuation ``mark`` ending at ``end`` (after ``word``) ends a sentence."""
    if _NEXT_START.match(text, end) is None:
        return False  # next word is lowercase / a symbol: "e.g. the", "etc., and"
    if "?" in mark or "!" in mark or mark.startswith(".."):
        return True
    lower = word.lower()
    if lower in NON_FINAL_ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isupper():
        return False  # an initial: "J. Random Hacker"
    if _INITIALISM.match(word):
        return False  # "U.S. Army", "e.g. Python"
    if word.isdigit() and len(word) <= 2 and (previous == "" or previous[-1] in ":;,("):
        return False  # an inline list number: "steps are: 1. Permute"
    return True


def split_sentences(paragraph: str) -> list[str]:
    """Split one paragraph (whitespace is normalised first) into sentences."""
    text = " ".join(paragraph.split())
    sentences: list[str] = []
    start = 0
    for match in _CANDIDATE.finditer(text):
        mark = match.group(0).rstrip("\"'”’)]")
        head = text[start:match.start()]
        word_match = _WORD_BEFORE.search(head)
        word = word_match.group(1).strip("'-") if word_match else ""
        word = word.rstrip(".") if mark == "." else word
        before = head[: word_match.start()].rstrip() if word_match else head.rstrip()
        previous = before.split()[-1] if before.split() else ""
        if _is_boundary(text, match.end(), mark, word, previous):
            sentences.append(text[start:match.end()].strip())
            start = match.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences
