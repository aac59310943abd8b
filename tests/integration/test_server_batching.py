"""Dynamic batching in the server: concurrent captures of one model share a padded forward pass,
and each request still gets exactly its own capture (as a one-at-a-time `attnlens.capture` would)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from attnlens import capture
from attnlens.server import Limits, create_app
from attnlens.server.batching import CaptureBatcher
from attnlens.server.limits import LimitError
from attnlens.server.models import ServedModel
from conftest import tiny_model
from server_helpers import decode_fetched

# different lengths (1 to ~40 tokens), single sentences and pairs, so a batch is padded
INPUTS = [
    ("Hi.", None),
    ("The cat sat on the mat because it was warm there.", None),
    ("I went to the store.", "At the store, I bought fresh strawberries and a loaf of bread for the week."),
    ("Attention heads", "look at tokens"),
    ("A much longer first sentence, with commas, numbers like 42 and 1999, and several clauses that go on "
     "for a while before it ends.", "Short B."),
    ("Why?", "Because the model said so, and nobody asked it twice."),
]


def wait_until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def batched_together(batcher: CaptureBatcher, inputs) -> list:
    """Submit `inputs` while the model is busy (its lock held), so they wait and run as one batch:
    the first one is taken alone before the rest arrive; the others run together once the lock is free."""
    with batcher.served.lock:
        futures = [batcher.submit(*inputs[0])]
        wait_until(lambda: batcher.taken == 1)  # the thread took it alone and waits for the lock
        futures += [batcher.submit(*pair) for pair in inputs[1:]]
        assert batcher.waiting == len(inputs) - 1
    return [f.result(60) for f in futures]


def assert_own_capture(got, lm, pair, atol: float) -> None:
    expected = capture(*pair, model=lm)  # one at a time, unpadded
    assert got.tokens == expected.tokens and (got.text_a, got.text_b) == pair
    assert got.attentions.shape == expected.attentions.shape
    np.testing.assert_allclose(got.attentions, expected.attentions, atol=atol, rtol=0)
    np.testing.assert_allclose(got.queries, expected.queries, atol=atol, rtol=1e-5)
    np.testing.assert_allclose(got.keys, expected.keys, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("which", ["tiny", "default"])
def test_concurrent_inputs_of_different_lengths_share_a_batch_and_get_their_own_capture(which, default_model):
    lm = tiny_model("bert", seed=3) if which == "tiny" else default_model
    batcher = CaptureBatcher(ServedModel(which, lm), max_tokens=256, max_wait_s=0.0)
    try:
        got = batched_together(batcher, INPUTS)
    finally:
        batcher.close()
    assert batcher.batch_sizes[-2:] == [1, len(INPUTS) - 1]  # the rest ran as one padded batch
    lengths = {g.num_tokens for g in got[1:]}
    assert len(lengths) == len(INPUTS) - 1  # all different: padding was needed
    for g, pair in zip(got, INPUTS, strict=True):
        assert_own_capture(g, lm, pair, atol=1e-5)


def test_an_input_over_the_token_limit_fails_alone():
    lm = tiny_model("bert", seed=3)
    batcher = CaptureBatcher(ServedModel("tiny", lm), max_tokens=20, max_wait_s=0.0)
    inputs = [("warm up",), ("short one",), ("a sentence far too long for this server's twenty token limit, " * 2,),
              ("another short one",)]
    try:
        with batcher.served.lock:
            futures = [batcher.submit(inputs[0][0], None)]
            wait_until(lambda: batcher.taken == 1)
            futures += [batcher.submit(text, None) for (text,) in inputs[1:]]
        with pytest.raises(LimitError) as refused:
            futures[2].result(60)
        ok = [futures[i].result(60) for i in (0, 1, 3)]
    finally:
        batcher.close()
    assert refused.value.status == 413 and "at most 20" in refused.value.message
    assert batcher.batch_sizes[-1] == 2
    for g, i in zip(ok, (0, 1, 3), strict=True):
        assert_own_capture(g, lm, (inputs[i][0], None), atol=1e-5)


def test_concurrent_http_requests_each_get_their_own_view_data():
    """Many clients at once over HTTP (threads) while the model is busy: they run as one batch, and every
    response is its own input's capture and view data."""
    lm = tiny_model("bert", seed=4)
    app = create_app({"tiny": lm}, limits=Limits(workers=2, queue=len(INPUTS) * 3))
    requests = INPUTS * 3  # the same inputs from several clients too
    results: dict[int, object] = {}
    service = app.state.service
    batcher = service.batchers["tiny"]

    def client(i: int, c: TestClient) -> None:
        results[i] = c.post("/api/capture", json={"text_a": requests[i][0], "text_b": requests[i][1]})

    with TestClient(app) as c:
        threads = [threading.Thread(target=client, args=(i, c)) for i in range(len(requests))]
        with service.models["tiny"].lock:
            threads[0].start()
            wait_until(lambda: batcher.taken == 1)  # taken alone; the batch thread now waits for the lock
            for t in threads[1:]:
                t.start()
            wait_until(lambda: batcher.waiting == len(requests) - 1)
        for t in threads:
            t.join(120)
        assert batcher.batch_sizes[-2:] == [1, len(requests) - 1]
        for i, (a, b) in enumerate(requests):
            r = results[i]
            assert r.status_code == 200, r.text
            body = r.json()
            expected = capture(a, b, model=lm)
            assert (body["meta"]["text_a"], body["meta"]["text_b"]) == (a, b)
            assert body["meta"]["tokens"] == expected.tokens
            meta, decoded = decode_fetched(c, body["id"])
            np.testing.assert_allclose(decoded["queries"], expected.queries, rtol=2e-3, atol=2e-3)
            np.testing.assert_allclose(decoded["keys"], expected.keys, rtol=2e-3, atol=2e-3)
            np.testing.assert_allclose(decoded["attentions"], expected.attentions, atol=0.01)
