"""All of a capture's view data in one GET (`/api/captures/{id}/buffers`): offered in the meta for short inputs,
byte for byte the per-layer buffers in meta order, and absent above the bundle limit (the page then loads layer by
layer)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from attnlens.server import Limits, create_app
from attnlens.views.payload import decode_payload
from conftest import PAIR, tiny_model
from server_helpers import decode_fetched


@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_model("bert", seed=1)


def client_for(lm, **limits) -> TestClient:
    return TestClient(create_app({"tiny-bert": lm}, limits=Limits(**limits)))


def split(meta: dict, body: bytes) -> dict[str, bytes]:
    """The bundle cut at meta["bundle"]["sizes"], in meta["buffers"] order (what the page does)."""
    parts, offset = {}, 0
    for name, size in zip(meta["buffers"], meta["bundle"]["sizes"], strict=True):
        parts[name] = body[offset:offset + size]
        offset += size
    assert offset == len(body)
    return parts


def test_one_get_gives_every_buffer_as_the_per_layer_gets_do(tiny_bert):
    with client_for(tiny_bert) as client:
        answer = client.post("/api/capture", json={"model": "tiny-bert", "text_a": PAIR[0], "text_b": PAIR[1]}).json()
        meta = answer["meta"]
        assert meta["bundle"] is not None and len(meta["bundle"]["sizes"]) == len(meta["buffers"])
        r = client.get(f"/api/captures/{answer['id']}/buffers")
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        parts = split(meta, r.content)
        for name in meta["buffers"]:
            assert parts[name] == client.get(f"/api/captures/{answer['id']}/{name}").content, name
        fetched_meta, fetched = decode_fetched(client, answer["id"])
        assert fetched_meta == meta  # the capture's answer carries the meta the page needs: no second GET
        bundled = decode_payload(meta, parts)
        assert bundled.keys() == fetched.keys()
        for kind, array in fetched.items():
            np.testing.assert_array_equal(bundled[kind], array, err_msg=kind)


def test_over_the_limit_the_page_is_told_to_load_layer_by_layer(tiny_bert):
    with client_for(tiny_bert, bundle_bytes=1000) as client:
        answer = client.post("/api/capture", json={"model": "tiny-bert", "text_a": PAIR[0]}).json()
        assert answer["meta"]["bundle"] is None
        name = next(iter(answer["meta"]["buffers"]))
        assert client.get(f"/api/captures/{answer['id']}/{name}").status_code == 200


def test_a_capture_not_kept_is_a_404_with_a_one_line_reason(tiny_bert):
    with client_for(tiny_bert) as client:
        r = client.get("/api/captures/nope/buffers")
        assert r.status_code == 404 and "submit the input again" in r.json()["detail"]
        assert "\n" not in r.json()["detail"]
