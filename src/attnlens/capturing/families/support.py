"""`supported_families()`: what capture gives for each family of the architecture table, and the
README table made from it (`families_markdown`)."""

from __future__ import annotations

from ..arch import FALLBACK_RECORDER, arch_specs
from ..recorders import _RECORDERS

ANY_OTHER = "any other model_type"


def _row(family: str, model_types, recorder: str, values: bool) -> dict:
    cls = _RECORDERS.get(recorder)
    gives_qk = bool(cls is not None and cls.gives_qk)
    return {
        "family": family,
        "model_types": tuple(model_types),
        "recorder": recorder,
        "attention": "exact" if recorder == FALLBACK_RECORDER else "exact (recomputed)",
        "queries_keys": gives_qk,
        "score_terms": tuple(cls.score_terms) if cls is not None else (),
        "values": bool(values and gives_qk),
    }


def supported_families() -> list[dict]:
    """One dict per family of the architecture table, then the eager fallback for any other model_type.

    Keys: family, model_types, recorder, attention ("exact (recomputed)" from the recorded tensors,
    "exact" when taken from the model itself), queries_keys (per-head q/k recorded), score_terms
    (the extras added to the scaled q . k: a score decomposition; empty for plain q . k) and
    values (values=True: value norms for the value lenses).
    """
    rows = [_row(s.family, s.model_types, s.recorder, bool(s.value and s.output)) for s in arch_specs()]
    rows.append(_row(ANY_OTHER, (), FALLBACK_RECORDER, False))
    return rows


def families_markdown() -> str:
    """The README's table of families (the lines between its `families-table` markers)."""
    lines = ["| family | model_type | attention | q/k | score decomposition | values |",
             "|---|---|---|---|---|---|"]
    for row in supported_families():
        types = ", ".join(f"`{t}`" for t in row["model_types"]) or "(no entry: eager `output_attentions`)"
        terms = " + ".join(["q·k", *row["score_terms"]]) if row["score_terms"] else (
            "q·k" if row["queries_keys"] else "none")
        lines.append(f"| {row['family']} | {types} | {row['attention']} | {'yes' if row['queries_keys'] else 'no'} "
                     f"| {terms} | {'yes' if row['values'] else 'no'} |")
    return "\n".join(lines)


def score_term_names() -> tuple[str, ...]:
    """Every extra name a registered recorder adds to the scaled q . k (the score terms views show)."""
    names: list[str] = []
    for cls in _RECORDERS.values():
        names += [n for n in cls.score_terms if n not in names]
    return tuple(names)
