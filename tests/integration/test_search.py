"""`attnlens.search`: an indexed context is its own nearest neighbour; the index's size; the CLI."""

from __future__ import annotations

import numpy as np

SENTENCES = ["I went to the store.", "At the store, I bought fresh strawberries.", "The cat saw a dog.",
             "She reads the book in the garden.", "Python 3.11.2 was released."]


def test_indexed_context_is_its_own_nearest_neighbour(default_model):
    from attnlens.analysis.search import build_index, search

    index = build_index(SENTENCES, default_model, layers=[1, 3])
    assert index.layers == (1, 3) and index.vectors.shape[:2] == (2, default_model.num_heads)
    assert index.bytes_per_token == 2 * default_model.num_heads * default_model.d_head * 2 + 10
    for sentence_index, position in ((1, 3), (4, 2)):
        hits = search(index, 3, 5, query_of=(SENTENCES[sentence_index], position), k=3, model=default_model)
        assert (hits[0].sentence_index, hits[0].position) == (sentence_index, position)
        assert abs(hits[0].similarity - 1) < 2e-3
        assert abs(sum(w for _, _, w in hits[0].looked_at)) <= 1 + 1e-6
    by_attention = build_index(SENTENCES, default_model, layers=[0], mode="attention")
    hits = search(by_attention, 0, 2, query_of=(SENTENCES[2], 2), k=1, model=default_model)
    assert hits[0].similarity > 0.999


def test_index_round_trip_and_sampling(tmp_path, default_model):
    from attnlens.analysis.search import SearchIndex, build_index

    index = build_index(SENTENCES, default_model, layers=[0])
    loaded = SearchIndex.load(index.save(tmp_path / "ix.npz"))
    assert np.array_equal(loaded.vectors, index.vectors) and loaded.sentences == SENTENCES
    small = build_index(SENTENCES, default_model, layers=[0], max_bytes=index.nbytes // 2)
    assert small.meta["sampled"]["of"] == len(SENTENCES) and len(small.sentences) < len(SENTENCES)


def test_cli_search(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from attnlens.cli import commands  # noqa: F401  (registers the commands)
    from attnlens.cli.app import app

    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(SENTENCES) + "\n")
    monkeypatch.setenv("ATTNLENS_CACHE", str(tmp_path / "cache"))
    args = ["search", "--layer", "2", "--head", "1", "--corpus", str(corpus), "-k", "2"]
    res = CliRunner().invoke(app, args + ["--query-of", SENTENCES[2], "2"])
    assert res.exit_code == 0, res.output
    assert "[[cat]]" in res.output.splitlines()[-2] or "[[cat]]" in res.output
    res = CliRunner().invoke(app, args + ["--token", "store"])
    assert res.exit_code == 0 and "[[store]]" in res.output
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 2 and "--token" in bad.output
