"""The atlas on models: exact against the model's own captures, the default model's known head, bad input."""

from __future__ import annotations

import dataclasses
import html
import json
import re

import numpy as np
import pytest

from attnlens import AttnlensError, atlas, capture_batch, causal_checks, explain
from attnlens.analysis.run import resolve_pairs
from attnlens.patterns import PatternStats
from attnlens.patterns.scores import LABEL_PATTERNS
from conftest import PAIR, tiny_model
from views_helpers import HTML_MODEL

PAIRS = [
    PAIR,
    ("Unbelievably, the cat sat on the mat.", "It was a sunny day and the cat was happy."),
    ("Unbelievably, my brother plays the guitar.", "He practices every evening after dinner."),
    "A single sentence without a partner.",
    ("Strawberries grow in the garden behind the old house.", "The house was painted white last summer."),
]


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert")


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_atlas_equals_the_reduction_of_the_models_own_captures(family):
    lm = tiny_model(family)
    result = atlas(PAIRS, model=lm, batch_size=2, progress=False)
    expected = PatternStats.zeros(lm.num_layers, lm.num_heads)
    for cap in capture_batch(lm, PAIRS):
        expected.add_capture(cap)
    np.testing.assert_allclose(result.stats.mean(), expected.mean(), atol=1e-6, equal_nan=True)
    assert (result.stats.count == expected.count).all()
    assert result.inputs == len(PAIRS)
    for name in result.pattern_names:
        assert result.scores[name].shape == (lm.num_layers, lm.num_heads)
        finite = result.scores[name][np.isfinite(result.scores[name])]
        assert ((finite >= 0) & (finite <= 1 + 1e-9)).all()


def test_default_model_layer0_head2_is_the_previous_token_head(default_model):
    result = atlas(PAIRS, model=default_model, progress=False)
    assert result.top("previous_token", 1)[0][:2] == (0, 2)
    label = result.labels[(0, 2)]
    assert label.patterns[0][0] == "previous_token" and label.score > 0.9
    # [CLS], not [SEP], is this model's sink
    assert np.nanmax(result.scores["cls"]) > 0.7 > np.nanmax(result.scores["sep"])
    ex = explain(PAIRS, 0, 2, model=default_model)
    assert ex.pattern == "previous_token" and ex.gap > 0 and 1 <= ex.dims_for_80 <= 32


def test_word_level_atlas(tiny_bert):
    result = atlas(PAIRS, model=tiny_bert, level="word", progress=False)
    assert result.counts["same_word_pieces"] == 0
    assert np.isnan(result.scores["same_word_pieces"]).all()
    assert result.counts["next_token"] > 0
    with pytest.raises(AttnlensError, match="unknown level"):
        atlas(PAIRS, model=tiny_bert, level="piece", progress=False)


def test_bad_input(tiny_bert, tmp_path):
    with pytest.raises(AttnlensError, match="empty"):
        atlas([], model=tiny_bert, progress=False)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\n\xff\xfe broken\n")
    with pytest.raises(AttnlensError, match="UTF-8"):
        atlas(str(bad), model=tiny_bert, progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(AttnlensError, match="empty"):
        atlas(str(empty), model=tiny_bert, progress=False)
    with pytest.raises(AttnlensError, match="neither a dataset"):
        atlas(str(tmp_path / "missing.txt"), model=tiny_bert, progress=False)
    long_line = " ".join(["word"] * 100)  # the tiny model takes 64 positions
    result = atlas([PAIR, long_line, (long_line, "and B")], model=tiny_bert, progress=False)
    assert result.inputs == 1
    assert result.skipped == {"longer than 64 tokens": 2}
    with pytest.raises(AttnlensError, match="corpus item 1"):
        atlas([PAIR, ("", None)], model=tiny_bert, progress=False)
    with pytest.raises(AttnlensError, match="no usable input"):
        atlas([long_line], model=tiny_bert, progress=False)
    with pytest.raises(AttnlensError, match="unknown pattern"):
        result.top("nope", 3)
    with pytest.raises(AttnlensError, match="unknown pattern"):
        explain(PAIRS, 0, 0, "nope", model=tiny_bert)
    with pytest.raises(AttnlensError, match="head 9 is out of range"):
        explain(PAIRS, 0, 9, model=tiny_bert)
    with pytest.raises(AttnlensError, match="limit"):
        resolve_pairs(PAIRS, 0)
    with pytest.raises(AttnlensError, match="NUL byte|UTF-8"):
        bin_file = tmp_path / "model.bin"
        bin_file.write_bytes(b"\x00\x01\x02")
        atlas(str(bin_file), model=tiny_bert, progress=False)


def test_an_input_of_exactly_the_models_length_is_kept(tiny_bert):
    """The length boundary: inputs of exactly the model's maximum are scored, one token more is skipped."""
    from attnlens import capture

    limit = tiny_bert.max_length
    words = lambda n: " ".join(["word"] * n)  # noqa: E731  ("word" is one WordPiece)
    exact, over = words(limit - 2), words(limit - 1)  # + [CLS] [SEP]
    pair_exact, pair_over = (words(10), words(limit - 13)), (words(10), words(limit - 12))  # + [CLS] [SEP] [SEP]
    tok = tiny_bert.tokenizer
    lengths = [len(tok(*([x] if isinstance(x, str) else x))["input_ids"]) for x in (exact, over, pair_exact, pair_over)]
    assert lengths == [limit, limit + 1, limit, limit + 1]
    result = atlas([exact, over, pair_exact, pair_over], model=tiny_bert, progress=False)
    assert result.inputs == 2
    assert result.skipped == {f"longer than {limit} tokens": 2}
    assert capture(exact, model=tiny_bert).num_tokens == limit
    assert capture(*pair_exact, model=tiny_bert).num_tokens == limit
    with pytest.raises(AttnlensError, match=f"input is {limit + 1} tokens"):
        capture(*pair_over, model=tiny_bert)


def test_corpus_files_of_pairs_and_documents(tiny_bert, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("I went to the store.\tAt the store, I bought fresh strawberries.\nOne sentence.\n",
                    encoding="utf-8")
    pairs, _ = resolve_pairs(str(path))
    assert pairs[0] == PAIR and pairs[1][1] is None
    result = atlas(str(path), model=tiny_bert, progress=False, limit=1)
    assert result.inputs == 1
    docs = tmp_path / "docs.txt"
    docs.write_text("I went to the store.\nI bought fresh strawberries.\nThey were red.\n\nA new document.\nIt ends.\n")
    result = atlas(str(docs), model=tiny_bert, progress=False)
    assert result.inputs == 3  # consecutive sentence pairs within documents


def test_default_dataset_sample():
    pairs, name = resolve_pairs(None, 5)
    assert name == "default" and len(pairs) == 5 and all(isinstance(b, str) for _, b in pairs)
    long_enough = tiny_model("bert", max_position_embeddings=512)  # no sampled pair is over its length
    assert atlas(None, model=long_enough, limit=5, progress=False).inputs == 5
    short = atlas(None, model=tiny_model("bert"), limit=5, progress=False)  # 64 positions: long pairs skipped
    assert short.inputs + sum(short.skipped.values()) == 5


def test_causal_checks_on_the_default_model(default_model):
    report = causal_checks(PAIRS[:3], model=default_model)
    shuffled = report.change("positions_shuffled", "previous_token")[0, 2]
    zeroed = report.change("positions_zeroed", "previous_token")[0, 2]
    assert shuffled < -0.5 and zeroed < -0.5  # the previous-token head collapses without positions
    assert abs(report.change("segments_equal", "previous_token")[0, 2]) < 0.05
    assert any(r["layer"] == 0 and r["head"] == 2 and r["pattern"] == "previous_token" for r in report.rows())
    assert "positions_zeroed" in report.text()


def test_causal_checks_without_segment_embeddings():
    lm = tiny_model("distilbert")
    report = causal_checks(PAIRS[:2], model=lm, interventions=("segments_equal", "positions_zeroed"))
    assert "segments_equal" in report.unavailable and "positions_zeroed" in report.changed


def test_save_writes_scores_plots_and_an_escaped_report(tiny_bert, tmp_path):
    pytest.importorskip("matplotlib")
    pairs = [("<script>alert(1)</script> is text", "and so is </td>")] + PAIRS[:2]
    result = atlas(pairs, model=tiny_bert, progress=False)
    result.corpus_name = "<b>corpus</b>"
    report = result.save(tmp_path / "out")
    out = tmp_path / "out"
    data = json.loads((out / "scores.json").read_text())
    assert data["inputs"] == 3 and set(data["patterns"]) == set(result.pattern_names)
    assert data["patterns"]["cls"]["mean"][1][2] == pytest.approx(result.scores["cls"][1, 2])
    rows = (out / "scores.csv").read_text().splitlines()
    assert len(rows) == 1 + len(result.pattern_names) * result.num_layers * result.num_heads
    for name in result.pattern_names:
        assert (out / f"heatmap_{name}.png").stat().st_size > 0 and (out / f"heatmap_{name}.svg").is_file()
    assert (out / "labels.png").is_file() and (out / "labels.svg").is_file()
    page = report.read_text()
    assert "<b>corpus</b>" not in page and "&lt;b&gt;corpus&lt;/b&gt;" in page
    assert "href='#head-1-2'" in page and "id='head-1-2'" in page
    assert "http://" not in page and "https://" not in page
    # the page loads only files of its own folder, and its policy allows exactly that
    from attnlens.io import PAGE_CSP

    assert f'content="{PAGE_CSP}"' in page and "<script" not in page
    for ref in re.findall(r"(?:src|href)='([^'#][^']*)'", page):
        assert (out / ref.split("#")[0]).is_file(), ref  # a view link may carry #heads=
    # the checks are run by save() itself and shown in the report as they are written to JSON
    explanations = json.loads((out / "explanations.json").read_text())
    causal = json.loads((out / "causal.json").read_text())
    assert [ex["pattern"] for ex in explanations] == list(LABEL_PATTERNS)
    assert {(r["layer"], r["head"], r["pattern"]) for r in causal["rows"]} >= {
        (ex["layer"], ex["head"], ex["pattern"]) for ex in explanations}
    for ex in explanations:
        assert f"layer {ex['layer']} head {ex['head']}, pattern {ex['pattern']}" in page
    assert "causal checks on" in page and (out / "views").is_dir()  # the example input's views


def test_report_shows_the_model_and_corpus_names_as_text(tiny_bert, tmp_path):
    """A model name (a path, a hub name) and a corpus name are text, in the heading, the title and the paragraphs."""
    result = atlas(PAIRS[:2], model=tiny_bert, progress=False)
    result.model_name = HTML_MODEL
    result.corpus_name = "<b>corpus</b>"
    page = result.save(tmp_path, explain=False, causal=False, example=False).read_text()
    assert HTML_MODEL not in page
    assert "<img src=x" not in page
    assert "<b>corpus" not in page
    assert page.count("</title>") == 1
    assert f"<h1>Attention atlas of {html.escape(HTML_MODEL)}</h1>" in page
    assert f"<title>attnlens atlas: {html.escape(HTML_MODEL, quote=False)}</title>" in page
    assert "&lt;b&gt;corpus&lt;/b&gt;" in page


def test_report_cells_open_the_heads_in_the_views_when_they_exist(tiny_bert, tmp_path, monkeypatch):
    from attnlens import capture
    from attnlens.analysis.report import view_heads

    result = atlas(PAIRS[:2], model=tiny_bert, progress=False)
    report = result.save(tmp_path, example=capture(*PAIR, model=tiny_bert))
    page = report.read_text()
    heads = view_heads(result)
    assert heads
    assert sorted(p.name for p in (tmp_path / "views").iterdir()) == sorted(f"L{l}-H{h}.html" for l, h in heads)
    layer, head = heads[0]
    view = (tmp_path / "views" / f"L{layer}-H{head}.html").read_text()
    assert view.lower().startswith("<!doctype html>")
    assert f'"layer":{layer},"head":{head}}}' in view  # opened on that head
    assert f"href='views/L{layer}-H{head}.html#heads={head}'" in page  # opens with only that head shown


def test_batches_bounded_by_size_score_the_same(tiny_bert, monkeypatch):
    from attnlens.capturing import batcher

    whole = atlas(PAIRS, model=tiny_bert, batch_size=32, progress=False)
    monkeypatch.setattr(batcher, "MAX_BATCH_CELLS", 2 * 20 * 20)  # at most ~2 short inputs per batch
    seen = []
    real_add = PatternStats.add
    monkeypatch.setattr(PatternStats, "add",
                        lambda self, attn, *a, **k: (seen.append(attn.shape), real_add(self, attn, *a, **k)))
    bounded = atlas(PAIRS, model=tiny_bert, batch_size=32, progress=False)
    assert max(s[0] * s[-1] ** 2 for s in seen if len(s) == 5) <= max(2 * 20 * 20, max(s[-1] ** 2 for s in seen))
    np.testing.assert_allclose(bounded.stats.total, whole.stats.total, rtol=1e-5, atol=1e-6)
    assert (bounded.stats.count == whole.stats.count).all()


def test_left_padding_tokenizers_score_the_same(tiny_bert):
    import copy

    from attnlens.capturing import LoadedModel

    tokenizer = copy.deepcopy(tiny_bert.tokenizer)
    tokenizer.padding_side = "left"
    lm = LoadedModel(tiny_bert.model, tokenizer, name="left")
    left = atlas(PAIRS, model=lm, batch_size=16, progress=False)  # padded on the right all the same
    expected = PatternStats.zeros(lm.num_layers, lm.num_heads)
    for pair in PAIRS:  # one input at a time: no padding at all
        expected.add_capture(capture_batch(tiny_bert, [pair])[0])
    np.testing.assert_allclose(left.stats.total, expected.total, rtol=1e-5, atol=1e-6)
    assert (left.stats.count == expected.count).all()


def test_check_pairs_spread_over_the_corpus():
    from attnlens.analysis.pipeline import check_pairs

    assert check_pairs(list(range(10)), 3) == [0, 3, 6]
    assert check_pairs(list(range(10)), 200) == list(range(10))
    assert check_pairs(list(range(7)), 1) == [0]


def test_checks_keep_the_heads_that_could_not_be_explained(tiny_bert, tmp_path, monkeypatch):
    from attnlens.analysis import pipeline

    result = atlas(PAIRS, model=tiny_bert, progress=False)
    assert result.source.model is tiny_bert and len(result.source.pairs) == len(PAIRS)
    real_explain = pipeline.explain

    def explain_but_cls(captures, layer, head, pattern):
        if pattern == "cls":
            raise AttnlensError("no <gap> here")
        return real_explain(captures, layer, head, pattern)

    monkeypatch.setattr(pipeline, "explain", explain_but_cls)
    checks = pipeline.run_checks(result, causal=False, check_limit=2)
    layer, head, _ = result.top("cls", 1)[0]
    assert checks.unexplained == {"cls": (layer, head, "no <gap> here")}
    assert [ex.pattern for ex in checks.explanations] == [p for p in LABEL_PATTERNS if p != "cls"]
    assert checks.causal is None and checks.inputs == 2
    text = checks.text()
    assert text.startswith("\nexplanations (top head per pattern):\n")
    assert f"  {'cls':26s} L{layer} H{head}: not explained (no <gap> here)" in text.splitlines()
    assert "causal checks" not in text

    result.save(tmp_path, checks=checks, example=False)
    saved = json.loads((tmp_path / "explanations.json").read_text())
    assert [ex["pattern"] for ex in saved] == [ex.pattern for ex in checks.explanations]
    assert not (tmp_path / "causal.json").exists() and not (tmp_path / "views").exists()
    with pytest.raises(AttnlensError, match="check_limit"):
        pipeline.run_checks(result, check_limit=0)
    assert pipeline.run_checks(result, explain=False, causal=False).text() == ""


def test_saving_an_atlas_without_its_model(tiny_bert, tmp_path):
    result = dataclasses.replace(atlas(PAIRS[:2], model=tiny_bert, progress=False), source=None)
    with pytest.raises(AttnlensError, match="explain=False and causal=False"):
        result.save(tmp_path / "a")
    report = result.save(tmp_path / "b", explain=False, causal=False)
    assert report.is_file() and (tmp_path / "b" / "scores.json").is_file()
    assert not any((tmp_path / "b" / name).exists() for name in ("explanations.json", "causal.json", "views"))
