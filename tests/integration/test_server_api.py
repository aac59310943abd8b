"""The web app's JSON/binary API through FastAPI's test client: captures true to the model,
per-layer view data, fill-mask, comparison, results browsing, and every limit as a 4xx."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("fastapi")

import torch
from fastapi.testclient import TestClient

from attnlens import capture
from attnlens.pretraining.predict import has_mlm_head
from attnlens.server import Limits, create_app
from attnlens.server.limits import InferenceQueue, LimitError
from attnlens.server.models import load_served_model
from attnlens.server.service import head_difference
from conftest import PAIR, tiny_model
from server_helpers import decode_fetched, in_thread, save_tiny_mlm


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", seed=1)


@pytest.fixture(scope="module")
def tiny_mlm(tmp_path_factory):
    return load_served_model(str(save_tiny_mlm(tmp_path_factory.mktemp("mlm"))))


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    atlas = root / "atlas-minilm"
    atlas.mkdir()
    (atlas / "scores.json").write_text(json.dumps({"heads": []}))
    (atlas / "report.html").write_text("<!DOCTYPE html><title>atlas</title><img src='labels.png'>")
    (atlas / "labels.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (atlas / "notes.py").write_text("print('not a report')")
    (atlas / ".secret.json").write_text("{}")
    step = root / "runs" / "tiny" / "checkpoints" / "step-000010"
    step.mkdir(parents=True)
    (step / "config.json").write_text("{}")
    (step.parent / "step-000020").mkdir()  # no config.json: not a (complete) checkpoint
    (root / "runs" / "tiny" / "metrics.jsonl").write_text('{"step": 5, "loss": 9.1}\n{"step": 10, "loss": 8.2}\n')
    outside = root.parent / "outside.json"
    outside.write_text('{"secret": 1}')
    (atlas / "link.json").symlink_to(outside)
    return root


@pytest.fixture(scope="module")
def client(tiny_bert, tiny_mlm, results_dir):
    app = create_app({"tiny-bert": tiny_bert, "tiny-mlm": tiny_mlm}, results_dir=results_dir,
                     limits=Limits(max_chars=300, max_tokens=40, max_body_bytes=4096))
    with TestClient(app) as c:
        yield c


def test_models_and_schema(client):
    models = client.get("/api/models").json()
    assert [m["name"] for m in models] == ["tiny-bert", "tiny-mlm"]
    assert models[0] == {"name": "tiny-bert", "family": "bert", "layers": 3, "heads": 4, "d_head": 8,
                         "max_tokens": 40, "mlm": False}
    assert models[1]["mlm"] is True
    schema = client.get("/openapi.json").json()
    for path in ("/api/capture", "/api/compare", "/api/predict/fill-mask", "/api/results",
                 "/api/captures/{capture_id}/{kind}/{layer}"):
        assert path in schema["paths"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower()
    assert client.get("/static/docs/swagger-ui-bundle.js").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/views/attnlens.js").status_code == 200
    assert client.get("/static/app.js").status_code == 200


def test_capture_view_data_equals_the_library_capture(client, tiny_bert):
    r = client.post("/api/capture", json={"model": "tiny-bert", "text_a": PAIR[0], "text_b": PAIR[1]})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = capture(*PAIR, model=tiny_bert)
    assert body["meta"]["tokens"] == expected.tokens
    assert body["meta"]["model_name"] == "tiny-bert"
    meta, decoded = decode_fetched(client, body["id"])
    assert meta == body["meta"]
    np.testing.assert_allclose(decoded["queries"], expected.queries, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(decoded["keys"], expected.keys, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(decoded["attentions"], expected.attentions, atol=0.01)
    # the same input again is served from the store with the same id
    again = client.post("/api/capture", json={"model": "tiny-bert", "text_a": PAIR[0], "text_b": PAIR[1]})
    assert again.json()["id"] == body["id"]


def test_default_model_capture_over_http(default_model, default_capture):
    app = create_app({"all-MiniLM-L6-v2": default_model})
    with TestClient(app) as c:
        body = c.post("/api/capture", json={"text_a": PAIR[0], "text_b": PAIR[1]}).json()
        meta, decoded = decode_fetched(c, body["id"])
    assert meta["num_layers"] == 6 and meta["num_heads"] == 12 and meta["d_head"] == 32
    assert meta["tokens"] == default_capture.tokens
    np.testing.assert_allclose(decoded["attentions"], default_capture.attentions, atol=0.01)
    # layer 0 head 2 is a previous-token head on this model, and the served data shows it
    att = decoded["attentions"][0, 2]  # [query, key]
    words = [i for i in range(1, len(meta["tokens"])) if not meta["special"][i]]
    assert np.mean([att[i].argmax() == i - 1 for i in words]) > 0.8


def test_view_data_errors(client):
    cid = client.post("/api/capture", json={"model": "tiny-bert", "text_a": "hello there"}).json()["id"]
    assert client.get(f"/api/captures/{cid}/queries/99").status_code == 404
    assert client.get(f"/api/captures/{cid}/attention/0").status_code == 404  # derived from q/k, not shipped
    assert client.get(f"/api/captures/{cid}/secrets/0").status_code == 422
    r = client.get("/api/captures/nope/meta")
    assert r.status_code == 404 and "submit the input again" in r.json()["detail"]


@pytest.mark.parametrize("payload,status,words", [
    ({"model": "bert-base-uncased", "text_a": "x"}, 404, "unknown model"),
    ({"model": "/etc", "text_a": "x"}, 404, "unknown model"),
    ({"text_a": "   "}, 422, "empty"),
    ({"text_a": "a" * 301}, 413, "characters"),
    ({"text_a": "word " * 50}, 413, "tokens"),
    ({"text_b": "only b"}, 422, "text_a"),
    ({"text_a": 5}, 422, "invalid request"),
])
def test_bad_capture_requests_get_clear_4xx(client, payload, status, words):
    r = client.post("/api/capture", json=payload)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def _words(n: int) -> str:
    return " ".join(["word"] * n)  # "word" is one WordPiece


def _token_request(endpoint: str, text_a: str, text_b: str | None) -> tuple[str, dict]:
    """The same input sent to one of the endpoints that capture it (for compare: as the right-hand side)."""
    if endpoint == "capture":
        return "/api/capture", {"model": "tiny-bert", "text_a": text_a, "text_b": text_b}
    if endpoint == "compare":
        return "/api/compare", {"left": {"model": "tiny-bert", "text_a": "hi"},
                                "right": {"model": "tiny-bert", "text_a": text_a, "text_b": text_b}}
    return "/api/predict/fill-mask", {"model": "tiny-mlm", "text_a": "[MASK] " + text_a, "text_b": text_b}


@pytest.mark.parametrize("endpoint", ["capture", "compare", "fill-mask"])
def test_token_limit_counts_both_sentences(client, endpoint):
    """max_tokens (40 here) bounds the whole encoded input, [CLS] A [SEP] B [SEP]: B counts as much as A,
    and exactly 40 tokens is allowed."""
    extra = 1 if endpoint == "fill-mask" else 0  # its "[MASK]" in front of A
    cases = [("hi", _words(36 - extra), 200), ("hi", _words(37 - extra), 413),  # B makes it 40 / 41 tokens
             (_words(38 - extra), None, 200), (_words(39 - extra), None, 413)]  # A alone: 40 / 41
    for text_a, text_b, status in cases:
        path, body = _token_request(endpoint, text_a, text_b)
        r = client.post(path, json=body)
        assert r.status_code == status, (text_a[:20], text_b and text_b[:20], r.text[:300])
        if status == 413:
            assert "41 tokens" in r.json()["detail"] and "at most 40" in r.json()["detail"]
        else:
            captured = {"compare": "right", "fill-mask": "masked"}.get(endpoint)
            meta = r.json()[captured]["meta"] if captured else r.json()["meta"]
            assert meta["num_tokens"] == 40


def test_token_limit_is_the_models_own_maximum_too(tiny_bert):
    """A server limit above the model's maximum (64 positions): the model's maximum applies, as a 413."""
    with TestClient(create_app({"tiny": tiny_bert}, limits=Limits(max_chars=5000, max_tokens=1000))) as c:
        assert c.get("/api/models").json()[0]["max_tokens"] == 64
        ok = c.post("/api/capture", json={"text_a": "hi", "text_b": _words(60)})  # 64 tokens
        assert ok.status_code == 200 and ok.json()["meta"]["num_tokens"] == 64
        r = c.post("/api/capture", json={"text_a": "hi", "text_b": _words(61)})
        assert r.status_code == 413 and "65 tokens" in r.json()["detail"] and "at most 64" in r.json()["detail"]


@pytest.mark.parametrize("path,body", [
    ("/api/capture", b'{"text_a": "\\ud800 hi"}'),
    ("/api/capture", b'{"text_a": "ok", "text_b": "\\udfff"}'),
    ("/api/compare", b'{"left": {"text_a": "\\ud800"}, "right": {"text_a": "b"}}'),
    ("/api/predict/fill-mask", b'{"model": "tiny-mlm", "text_a": "[MASK] \\ud800"}'),
])
def test_lone_surrogates_are_422(client, path, body):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "Unicode" in r.json()["detail"]


def test_body_size_and_broken_json(client):
    r = client.post("/api/capture", content=b'{"text_a": "' + b"a" * 5000 + b'"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 413 and "4096 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b"a" * 1000

    r = client.post("/api/capture", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = client.post("/api/capture", content=b'{"text_a": ', headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_inference_queue_refuses_when_full_and_times_out():
    """No sleep-and-hope: the job signals when it runs and blocks until released, so the order of
    events is fixed however loaded the machine (the 0.2 s limit only has to pass while it is blocked)."""
    import asyncio

    queue = InferenceQueue(workers=1, queue=0, timeout_s=0.2)
    started, gate, finished = threading.Event(), threading.Event(), threading.Event()

    def blocked():
        started.set()
        try:
            return gate.wait(60)
        finally:
            finished.set()

    async def scenario():
        loop = asyncio.get_running_loop()
        slow = asyncio.ensure_future(queue.run(blocked))
        assert await loop.run_in_executor(None, started.wait, 60)  # the job holds the only slot
        with pytest.raises(LimitError) as busy:
            await queue.run(lambda: 1)
        assert busy.value.status == 429
        with pytest.raises(LimitError) as late:
            await asyncio.wait_for(slow, 10)  # the queue's own 0.2 s limit must end it, long before this bound
        assert late.value.status == 408 and not finished.is_set()
        # the timed-out job still holds its slot until its thread ends: no unbounded pile-up
        with pytest.raises(LimitError) as still:
            await queue.run(lambda: 1)
        assert still.value.status == 429
        gate.set()
        assert await loop.run_in_executor(None, finished.wait, 60)
        deadline = loop.time() + 30
        while queue.in_flight and loop.time() < deadline:  # the slot comes back as the job's thread ends
            await asyncio.sleep(0.01)
        assert queue.in_flight == 0
        assert await queue.run(lambda: 7) == 7

    try:
        in_thread(asyncio.run, scenario())  # not on the main thread: see server_helpers.in_thread
    finally:
        gate.set()
        queue.close()
    assert queue.refused == 2 and queue.timed_out == 1


def test_busy_server_answers_429_and_slow_requests_408(tiny_bert):
    app = create_app({"tiny": tiny_bert}, limits=Limits(workers=1, queue=0, request_timeout_s=0.3))
    started, gate = threading.Event(), threading.Event()
    service = app.state.service
    real = service.capture

    def blocked_capture(*args):
        started.set()
        gate.wait(60)
        return real(*args)

    service.capture = blocked_capture
    results = {}
    try:
        with TestClient(app) as c:
            first = threading.Thread(
                target=lambda: results.setdefault("first", c.post("/api/capture", json={"text_a": "one"})))
            first.start()
            assert started.wait(60)  # the first request now holds the only inference slot
            second = c.post("/api/capture", json={"text_a": "two"})
            first.join(60)
    finally:
        gate.set()
    assert second.status_code == 429 and "busy" in second.json()["detail"]
    assert second.headers["retry-after"] == "1"
    assert results["first"].status_code == 408 and "limit" in results["first"].json()["detail"]


def test_fill_mask_matches_the_model(client, tiny_mlm):
    r = client.post("/api/predict/fill-mask", json={"model": "tiny-mlm", "text_a": PAIR[0], "text_b": PAIR[1],
                                                    "position": 5, "top_k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["masked_token"] == "store"
    assert body["text_a"] == "I went to the [MASK]."
    [pred] = body["predictions"]
    assert pred["position"] == 5 and len(pred["candidates"]) == 4
    tok = tiny_mlm.tokenizer
    enc = tok("I went to the [MASK].", PAIR[1], return_tensors="pt")
    with torch.inference_mode():
        probs = torch.softmax(tiny_mlm.model(**enc).logits[0, 5], dim=-1)  # [vocab]
    top = probs.topk(4)
    assert [c["token"] for c in pred["candidates"]] == tok.convert_ids_to_tokens(top.indices.tolist())
    np.testing.assert_allclose([c["probability"] for c in pred["candidates"]], top.values.numpy(), rtol=1e-5)
    # the masked input's attention is captured and served like any other
    masked = body["masked"]
    assert masked["meta"]["tokens"][5] == "[MASK]"
    expected = capture("I went to the [MASK].", PAIR[1], model=tiny_mlm)
    _, decoded = decode_fetched(client, masked["id"])
    np.testing.assert_allclose(decoded["attentions"], expected.attentions, atol=0.01)


def test_fill_mask_subword_and_explicit_mask(client):
    body = client.post("/api/predict/fill-mask", json={"model": "tiny-mlm", "text_a": "fresh strawberries",
                                                       "position": 3}).json()
    assert body["masked_token"] == "##berries" and body["masked"]["meta"]["tokens"][2:4] == ["straw", "[MASK]"]
    body = client.post("/api/predict/fill-mask",
                       json={"model": "tiny-mlm", "text_a": "the [MASK] went to [MASK]."}).json()
    assert [p["position"] for p in body["predictions"]] == [2, 5]


@pytest.mark.parametrize("payload,words", [
    ({"model": "tiny-bert", "text_a": "a b", "position": 1}, "no masked-LM head"),
    ({"model": "tiny-mlm", "text_a": "a b", "position": 0}, "special token"),
    ({"model": "tiny-mlm", "text_a": "a b", "position": 17}, "out of range"),
    ({"model": "tiny-mlm", "text_a": "a b", "position": -1}, "out of range"),
    ({"model": "tiny-mlm", "text_a": "no mask here"}, "no [MASK]"),
    ({"model": "tiny-mlm", "text_a": "a [MASK]", "top_k": 0}, "top_k"),
    ({"model": "tiny-mlm", "text_a": "a [MASK]", "top_k": 10 ** 9}, "top_k"),
])
def test_fill_mask_errors_are_4xx(client, payload, words):
    r = client.post("/api/predict/fill-mask", json=payload)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]


def test_compare_same_input_two_models(client, tiny_bert, tiny_mlm):
    r = client.post("/api/compare", json={"left": {"model": "tiny-bert", "text_a": PAIR[0]},
                                          "right": {"model": "tiny-mlm", "text_a": PAIR[0]}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["aligned"] and body["layers"] == 3 and body["heads"] == 4
    a = capture(PAIR[0], model=tiny_bert).attentions
    b = capture(PAIR[0], model=tiny_mlm).attentions
    expected = 0.5 * np.abs(a - b).sum(-1).mean(-1)  # [L, H]
    np.testing.assert_allclose(body["map"], expected, atol=1e-4)
    assert np.max(body["map"]) > 1e-3  # random tiny models attend almost uniformly, yet differently
    same = client.post("/api/compare", json={"left": {"model": "tiny-bert", "text_a": PAIR[0]},
                                             "right": {"model": "tiny-bert", "text_a": PAIR[0]}}).json()
    assert np.max(same["map"]) == 0.0
    # both sides' view data are fetchable
    assert client.get(f"/api/captures/{body['right']['id']}/meta").status_code == 200


def test_compare_two_inputs_uses_head_profiles(client):
    body = client.post("/api/compare", json={
        "left": {"model": "tiny-bert", "text_a": PAIR[0]},
        "right": {"model": "tiny-bert", "text_a": PAIR[0], "text_b": PAIR[1]}}).json()
    assert not body["aligned"] and "profiles" in body["measure"]
    values = np.array(body["map"])
    assert values.shape == (3, 4) and (values >= 0).all() and (values <= 1).all() and values.max() > 0


def test_compare_counts_an_undefined_feature_as_no_attention(client, tiny_bert):
    """A one-word input has no previous / next token: on either side, those features count as 0
    (no attention on them), so the map stays finite and equals the profiles' difference."""
    from attnlens.patterns.profile import FEATURES, head_profile

    one, other = capture("hi", model=tiny_bert), capture(PAIR[0], model=tiny_bert)
    undefined = np.isnan(head_profile(one)[0, 0])
    assert [f for f, u in zip(FEATURES, undefined) if u] == ["previous", "next"]
    expected = np.abs(np.nan_to_num(head_profile(one)) - head_profile(other)).mean(-1)  # [L, H]
    assert expected.min() > 0.01
    for left, right in (("hi", PAIR[0]), (PAIR[0], "hi")):
        r = client.post("/api/compare", json={"left": {"model": "tiny-bert", "text_a": left},
                                              "right": {"model": "tiny-bert", "text_a": right}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["aligned"] and np.isfinite(body["map"]).all()
        np.testing.assert_allclose(body["map"], expected, atol=1e-5)


def test_head_difference_profiles_of_hand_made_attention(default_capture):
    import dataclasses

    cap = default_capture
    t = cap.num_tokens
    prev = np.zeros((t, t), dtype=np.float32)
    prev[0, 0] = 1
    prev[np.arange(1, t), np.arange(t - 1)] = 1  # every query on its previous token
    nxt = np.zeros((t, t), dtype=np.float32)
    nxt[np.arange(t - 1), np.arange(1, t)] = 1
    nxt[t - 1, t - 1] = 1
    left = dataclasses.replace(cap, attentions=np.broadcast_to(prev, (1, 1, t, t)).copy(),
                               queries=cap.queries[:1, :1], keys=cap.keys[:1, :1])
    right = dataclasses.replace(left, attentions=np.broadcast_to(nxt, (1, 1, t, t)).copy())
    aligned = head_difference(left, right)
    assert aligned["aligned"] and aligned["map"] == [[1.0]]  # disjoint rows: total variation 1


def test_results_listing_and_safe_files(client):
    found = client.get("/api/results").json()
    [atlas] = found["atlas"]
    assert atlas["path"] == "atlas-minilm" and atlas["report"] == "atlas-minilm/report.html"
    assert "atlas-minilm/notes.py" not in atlas["files"] and "atlas-minilm/.secret.json" not in atlas["files"]
    [run] = found["runs"]
    assert run["path"] == "runs/tiny" and run["checkpoints"] == ["step-000010"]
    assert run["last_metrics"] == {"step": 10, "loss": 8.2}
    r = client.get("/results/atlas-minilm/report.html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client.get("/results/atlas-minilm/labels.png").headers["content-type"] == "image/png"
    for bad in ("atlas-minilm/notes.py", "atlas-minilm/.secret.json", "atlas-minilm/link.json", "../outside.json",
                "atlas-minilm/../../outside.json", "%2e%2e/outside.json", "atlas-minilm/%2e%2e/%2e%2e/outside.json",
                "/etc/passwd", "atlas-minilm/missing.json", "runs/tiny/checkpoints/step-000010/config.json/x"):
        r = client.get(f"/results/{bad}")
        assert r.status_code == 404, bad
        assert "secret" not in r.text


def test_results_without_folder(tiny_bert):
    with TestClient(create_app({"t": tiny_bert})) as c:
        assert c.get("/api/results").json() == {"root": None, "atlas": [], "runs": []}
        assert c.get("/results/x.json").status_code == 404


def test_served_model_loading(tmp_path, tiny_mlm):
    assert has_mlm_head(tiny_mlm)
    run = tmp_path / "run"
    save_tiny_mlm(run / "checkpoints" / "step-000002")
    save_tiny_mlm(run / "checkpoints" / "step-000010", seed=3)
    (run / "checkpoints" / "step-000099").mkdir()  # incomplete (no config.json): skipped
    lm = load_served_model(str(run))  # a run folder: its newest checkpoint, with its MLM head
    assert has_mlm_head(lm) and lm.name == str(run)
    newest = load_served_model(str(run / "checkpoints" / "step-000010"))
    for name, param in newest.model.named_parameters():
        assert torch.equal(param, dict(lm.model.named_parameters())[name]), name
    from attnlens.errors import AttnlensError

    with pytest.raises(AttnlensError, match="neither a model folder"):
        load_served_model(str(tmp_path / "run" / "checkpoints"))
    with pytest.raises(AttnlensError, match="at least one model"):
        create_app({})


def test_described_d_head_follows_the_family():
    from attnlens.server.models import ServedModel

    for family in ("bert", "distilbert", "albert"):
        lm = tiny_model(family)
        assert ServedModel(family, lm).describe(40)["d_head"] == lm.d_head == 8  # DistilBERT: dim / heads


def test_serve_cli_refuses_remote_host_without_flag():
    from typer.testing import CliRunner

    from attnlens.cli import commands  # noqa: F401  (registers the commands)
    from attnlens.cli.app import app
    from attnlens.cli.serve import is_loopback

    r = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--port", "0"])
    assert r.exit_code == 2
    assert "--allow-remote" in r.output and "Traceback" not in r.output
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
