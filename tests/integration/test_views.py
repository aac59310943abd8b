"""The standalone page (escaping, self-containment), text renderings, widget and CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import attnlens
from attnlens import AttnlensError, capture
from attnlens.views.html import script_json, static_text, to_html
from attnlens.views.payload import build_payload
from attnlens.views.text import head_view_text, model_view_text, neuron_view_text
from conftest import PAIR, tiny_model
from views_helpers import HTML_MODEL, HTML_TEXT_A, HTML_TEXT_B, HTML_TOKENS, html_capture, synthetic_capture

INJECTION = "</script><img src=x onerror=alert(1)>"


def _script_blocks(page):
    return re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)


def test_page_is_self_contained(default_capture, tmp_path):
    page = to_html(default_capture, tmp_path / "v.html")
    assert (tmp_path / "v.html").read_text(encoding="utf-8") == page
    assert attnlens.to_html is to_html
    # no external resource of any kind
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "http://" not in page and "https://" not in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # the front end is the package's real files, inlined
    assert static_text("attnlens.js") in page and static_text("attnlens.css") in page
    blocks = _script_blocks(page)
    meta = json.loads(next(body for attrs, body in blocks if 'data-attnlens="meta"' in attrs))
    expected, buffers = build_payload(default_capture)
    assert meta == json.loads(json.dumps(expected))
    names = [re.search(r'data-name="([^"]+)"', attrs).group(1) for attrs, _ in blocks if "octet-stream" in attrs]
    assert sorted(names) == sorted(buffers)


def test_injection_text_is_escaped(tmp_path):
    tokens = ["[CLS]", INJECTION, 'quote"s', "a&b", "<b>", "\u2028", "[SEP]"]
    cap = synthetic_capture(tokens, text_a=INJECTION + ' & "x" \u2028', text_b="<!-- b -->",
                            segment_ids=[0, 0, 0, 0, 1, 1, 1])
    page = to_html(cap)
    assert INJECTION not in page
    assert "<img" not in page and "<!-- b" not in page
    assert not any("\u2028" in body for _, body in _script_blocks(page))
    assert page.count("</script>") == len(_script_blocks(page))  # every </script> closes one of ours
    meta = json.loads(next(body for attrs, body in _script_blocks(page) if 'data-attnlens="meta"' in attrs))
    assert meta["tokens"] == tokens and meta["text_a"] == cap.text_a and meta["text_b"] == "<!-- b -->"
    title = re.search(r"<title>(.*?)</title>", page, re.S).group(1)
    assert "<" not in title and "&lt;/script&gt;" in title


def test_html_in_tokens_sentences_and_model_name_is_never_markup():
    cap = html_capture()
    page = to_html(cap)
    for text in (*HTML_TOKENS[1:5], HTML_MODEL, HTML_TEXT_A, HTML_TEXT_B, "<img", "<svg", "<b>", "<i>", "<!--"):
        assert text not in page, text
    assert page.count("</title>") == 1
    meta = json.loads(next(body for attrs, body in _script_blocks(page) if 'data-attnlens="meta"' in attrs))
    assert (meta["tokens"], meta["model_name"]) == (HTML_TOKENS, HTML_MODEL)
    assert (meta["text_a"], meta["text_b"]) == (HTML_TEXT_A, HTML_TEXT_B)


def test_script_json_escapes():
    text = script_json({"a": "</script>&<!--\u2029"})
    assert not set("<>&") & set(text) and "\u2029" not in text
    assert json.loads(text) == {"a": "</script>&<!--\u2029"}


def test_page_options_and_errors(default_capture):
    page = to_html(default_capture, layer=2, head=3, query=4, theme="dark", views=["neuron", "head"])
    options = json.loads(next(body for attrs, body in _script_blocks(page) if 'data-attnlens="options"' in attrs))
    assert options == {"views": ["neuron", "head"], "layer": 2, "head": 3, "query": 4, "theme": "dark"}
    with pytest.raises(AttnlensError, match="layer 9"):
        to_html(default_capture, layer=9)
    with pytest.raises(AttnlensError, match="token 99"):
        to_html(default_capture, query=99)
    with pytest.raises(AttnlensError, match="views"):
        to_html(default_capture, views=["graph"])
    with pytest.raises(AttnlensError, match="theme"):
        to_html(default_capture, theme="blue")
    with pytest.raises(AttnlensError, match="Capture"):
        to_html("not a capture")


# ---- text renderings ---------------------------------------------------------------------


def test_head_view_text_shows_the_previous_token_head(default_capture):
    cap = default_capture
    lines = head_view_text(cap, 0, [2], top=1).splitlines()[1:]
    assert len(lines) == cap.num_tokens
    for i, line in enumerate(lines[2:], start=2):  # layer 0 head 2 attends to the previous token
        if cap.tokens[i - 1] != "[SEP]":
            assert f"-> {i - 1} {cap.tokens[i - 1]} " in line


def test_head_view_text_filters(default_capture):
    cap = default_capture
    seg = cap.segment_ids
    text = head_view_text(cap, 1, pair_filter="AB", top=5, threshold=0.0)
    rows = text.splitlines()[1:]
    assert len(rows) == int((seg == 0).sum())
    for row in rows:
        for j in re.findall(r"(?:->|  )(\d+) ", row):
            assert seg[int(j)] == 1
    with pytest.raises(AttnlensError, match="filter"):
        head_view_text(cap, 0, pair_filter="AC")
    with pytest.raises(AttnlensError, match="sentence pair"):
        head_view_text(synthetic_capture(["a", "b"]), 0, pair_filter="AB")


def test_model_view_text(default_capture):
    lines = model_view_text(default_capture).splitlines()
    assert len(lines) == 2 + default_capture.num_layers
    cells = re.findall(r"\S+ \d+% \d\.\d\d", lines[2])
    assert len(cells) == default_capture.num_heads
    assert cells[2].startswith("-1 ")  # the previous-token head


def test_neuron_view_text_numbers_are_the_captures(default_capture):
    cap, layer, head, query = default_capture, 0, 2, 3
    lines = neuron_view_text(cap, layer, head, query).splitlines()
    q = np.array([float(x) for x in lines[1][5:-1].split()])
    assert np.allclose(q, cap.queries[layer, head, query], atol=5e-4)
    for j, line in enumerate(lines[3:]):
        dot, scaled, weight = (float(x) for x in line[14:].split()[:3])
        true_dot = float(cap.queries[layer, head, query] @ cap.keys[layer, head, j])
        assert abs(dot - true_dot) <= 5e-4 + 1e-4 * abs(true_dot)
        assert abs(scaled - true_dot / np.sqrt(cap.d_head)) <= 5e-4 + 1e-4 * abs(true_dot)
        assert abs(weight - cap.attentions[layer, head, query, j]) <= 5e-4
    with pytest.raises(AttnlensError, match="token"):
        neuron_view_text(cap, 0, 0, 99)


# ---- widget ------------------------------------------------------------------------------


def test_widgets_carry_the_module_and_binary_traits(default_capture):
    from ipywidgets.widgets.widget import _remove_buffers

    cap = default_capture
    for widget, first in ((cap.head_view(), "head"), (cap.model_view(), "model"), (cap.neuron_view(2, 0), "neuron")):
        assert widget._esm == static_text("attnlens.js") and widget._css == static_text("attnlens.css")
        options = json.loads(widget.options)
        assert options["views"][0] == first
        meta = json.loads(widget.meta)
        assert meta["tokens"] == cap.tokens
        _, paths, buffers = _remove_buffers(widget.get_state())
        assert sorted(p[1] for p in paths if p[0] == "buffers") == sorted(meta["buffers"])  # sent as binary
        assert all(isinstance(b, (bytes, memoryview)) for b in buffers)
    neuron = json.loads(cap.neuron_view(layer=2, head=5).options)
    assert (neuron["layer"], neuron["head"]) == (2, 5)
    with pytest.raises(AttnlensError, match="head 12"):
        cap.neuron_view(0, 12)


# ---- CLI ---------------------------------------------------------------------------------


def test_cli_view_writes_the_page(tmp_path, default_model):
    from typer.testing import CliRunner

    from attnlens.cli import (
        app,
        commands,  # noqa: F401  (registers the commands)
    )
    out = tmp_path / "v.html"
    result = CliRunner().invoke(app, ["view", *PAIR, "-o", str(out), "--text", "model"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"wrote {out.resolve()}" in result.output
    assert "model view:" in result.output
    bad = CliRunner().invoke(app, ["view", "x", "--layer", "7", "-o", str(tmp_path / "w.html")])
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0 and "layer 7" in bad.output
    bad = CliRunner().invoke(app, ["view", "x", "--text", "graph", "-o", str(tmp_path / "w.html")])
    assert bad.exit_code == 2 and "--text" in bad.output


def test_tiny_model_page_builds_for_every_family():
    for family in ("roberta", "electra"):
        cap = capture(*PAIR, model=tiny_model(family))
        meta, _ = build_payload(cap)
        assert meta["attention_code"] == "qk" and meta["num_tokens"] == cap.num_tokens
