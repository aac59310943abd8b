"""`attnlens.supported_families()` and the README table generated from it."""

from __future__ import annotations

import re
from pathlib import Path

import attnlens
from attnlens.capturing import arch_specs, families_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_table_entry_and_the_fallback_are_listed():
    rows = attnlens.supported_families()
    assert [r["family"] for r in rows[:-1]] == [s.family for s in arch_specs()]
    by_family = {r["family"]: r for r in rows}
    assert by_family["bert"]["queries_keys"] and by_family["bert"]["score_terms"] == () and by_family["bert"]["values"]
    deberta = by_family["deberta-v2"]
    assert deberta["score_terms"] == ("content_to_position", "position_to_content") and deberta["values"]
    assert by_family["mpnet"]["score_terms"] == ("position_bias",)
    fallback = rows[-1]
    assert fallback["recorder"] == "output_attentions" and not fallback["queries_keys"] and not fallback["values"]
    assert fallback["attention"] == "exact"


def test_readme_table_is_the_generated_one():
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- families-table:start -->\n(.*?)\n<!-- families-table:end -->", text, re.S)
    assert found, "README.md has no families-table markers"
    assert found.group(1) == families_markdown(), (
        "README.md's families table is stale: paste attnlens.capturing.families_markdown() between its markers")
