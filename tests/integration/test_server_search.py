"""POST /api/search (the web app's "Find similar contexts"): an indexed sentence's token is its own nearest
context, the index is built once (memory, then the disk cache), bad input is a 422, and the route goes
through the server's limits and origin checks."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from attnlens.server import Limits, create_app
from attnlens.server.searching import ContextSearch
from conftest import tiny_model

SENTENCES = ["I went to the store.", "At the store, I bought fresh strawberries.", "The cat saw a dog.",
             "She reads the book in the garden.", "Python 3.11.2 was released."]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "docs.txt"
    path.write_text("\n".join(SENTENCES) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", seed=1)


@pytest.fixture
def make_client(tiny_bert, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNLENS_CACHE", str(tmp_path / "cache"))

    def make(**limits):
        app = create_app({"tiny": tiny_bert}, limits=Limits(max_chars=300, max_tokens=40, **limits),
                         search_corpus=str(corpus), search_limit=0)
        return app, TestClient(app)

    return make


def ask(client, **over):
    body = {"text_a": SENTENCES[1], "index": 3, "layer": 2, "head": 1, "k": 3, **over}
    return client.post("/api/search", json=body)


def test_an_indexed_sentence_is_its_own_nearest_context(make_client, tmp_path):
    app, client = make_client()
    with client:
        r = ask(client)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["indexed"]["source"] == "built" and body["indexed"]["sentences"] == len(SENTENCES)
        assert body["token"] == "store" and body["by"] == "query" and body["corpus"] == "docs.txt"
        best = body["hits"][0]
        assert (best["sentence"], best["position"], best["tokens"][best["position"]]) == (SENTENCES[1], 3, "store")
        assert abs(best["similarity"] - 1) < 2e-3 and len(body["hits"]) == 3
        assert [h["similarity"] for h in body["hits"]] == sorted((h["similarity"] for h in body["hits"]), reverse=True)
        looked = best["looked_at"]
        assert len(looked) == 3 and all(best["tokens"][x["position"]] == x["token"] for x in looked)
        assert looked[0]["weight"] >= looked[-1]["weight"] and sum(x["weight"] for x in looked) <= 1 + 1e-5
        # built once: the next search of that layer uses the index in memory; another mode is its own index
        again = ask(client, head=3, index=2).json()
        assert again["indexed"]["source"] == "memory" and again["hits"][0]["position"] == 2
        by_row = ask(client, by="attention", text_a=SENTENCES[2], index=2).json()
        assert by_row["indexed"]["source"] == "built" and by_row["hits"][0]["similarity"] > 0.999
        # a pair: the token index counts across both sentences; B's token is found in its own sentence
        # [CLS] hello there . [SEP] the cat
        pair = ask(client, text_a="Hello there.", text_b=SENTENCES[2], index=6).json()
        assert pair["token"] == "cat" and pair["hits"][0]["sentence"] == SENTENCES[2]
    assert len(list((tmp_path / "cache" / "search").glob("*.npz"))) == 2
    _, fresh = make_client()  # a new server finds the index on disk
    with fresh:
        assert ask(fresh).json()["indexed"]["source"] == "disk"


@pytest.mark.parametrize("over, status, words", [
    ({"layer": 3}, 422, "layer 3 is out of range"),
    ({"head": 4}, 422, "head 4 is out of range"),
    ({"index": 99}, 422, "token 99 is out of range"),
    ({"index": 0}, 422, "special token"),
    ({"k": 0}, 422, "k must be between 1 and 50"),
    ({"k": 51}, 422, "k must be between 1 and 50"),
    ({"by": "keys"}, 422, "by"),
    ({"index": "x"}, 422, "index"),
    ({"model": "nope"}, 404, "unknown model"),
    ({"text_a": "word " * 100}, 413, "characters"),
    ({"text_a": "word " * 50}, 413, "tokens"),
    ({"text_a": "   "}, 422, ""),
])
def test_bad_input(make_client, over, status, words):
    _, client = make_client()
    with client:
        r = ask(client, **over)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_limits_and_origin(make_client):
    app, client = make_client(workers=1, queue=0, request_timeout_s=30)
    service = app.state.service
    real, started, gate = service.search, threading.Event(), threading.Event()

    def blocked(*args):
        started.set()
        gate.wait(60)
        return real(*args)

    service.search = blocked
    results = {}
    try:
        with client:
            cross = client.post("/api/search", json={"text_a": SENTENCES[0], "index": 1, "layer": 0, "head": 0},
                                headers={"Origin": "http://evil.example"})
            assert cross.status_code == 403
            assert client.post("/api/search", json={"text_a": "x"}, headers={"Host": "evil.example"}).status_code == 400
            first = threading.Thread(target=lambda: results.setdefault("first", ask(client)))
            first.start()
            assert started.wait(60)  # the first search holds the only inference slot
            busy = ask(client)
            gate.set()
            first.join(60)
            big = client.post("/api/search", content=b"x" * (70 * 1024), headers={"Content-Type": "application/json"})
    finally:
        gate.set()
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert results["first"].status_code == 200 and big.status_code == 413
    assert cross.headers["x-content-type-options"] == "nosniff"


def test_a_missing_corpus_fails_at_start(tiny_bert, tmp_path):
    from attnlens.errors import AttnlensError

    with pytest.raises(AttnlensError, match="neither a dataset"):
        create_app({"tiny": tiny_bert}, search_corpus=str(tmp_path / "missing.txt"))
    assert ContextSearch("default", 0).limit is None
