"""A bounded load test on loopback: 32 concurrent clients for a fixed time against a real
uvicorn server (in a thread, tiny model); every request must succeed with its own data."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from attnlens.server import Limits, create_app
from attnlens.server.loadgen import run_load
from conftest import tiny_model
from server_helpers import in_thread

CLIENTS = 32
SECONDS = 10.0


@pytest.fixture(scope="module")
def live_server():
    app = create_app({"tiny-bert": tiny_model("bert")}, limits=Limits(workers=2, queue=CLIENTS))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)
    sock.close()


def test_32_concurrent_clients_without_errors(live_server):
    import torch

    base, app = live_server
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `attnlens serve` does with 2 workers on 2 CPUs
    try:
        result = run_load(base, CLIENTS, SECONDS)
    finally:
        torch.set_num_threads(threads)
    print(f"\nload test: {CLIENTS} clients x {result.seconds:.1f} s: {result.requests} captures + view data, "
          f"{result.per_second:.1f}/s, p50 {result.percentile_ms(50):.0f} ms, p99 {result.percentile_ms(99):.0f} ms, "
          f"errors {dict(result.errors)}")
    assert dict(result.errors) == {}
    assert result.requests >= CLIENTS  # every client completed work
    queue = app.state.queue
    assert queue.refused == 0 and queue.timed_out == 0 and queue.in_flight == 0


def test_overload_is_refused_with_429_not_piled_up():
    """Room for 3 jobs (1 worker + 2 waiting) and 24 clients at once: exactly 3 are admitted and the
    other 21 refused at once (429), never queued. The admitted jobs are held until every refusal has
    happened, so the split does not depend on how fast the machine runs them."""
    import asyncio

    import httpx

    clients = 24
    app = create_app({"tiny-bert": tiny_model("bert")}, limits=Limits(workers=1, queue=2))
    queue, service = app.state.queue, app.state.service
    gate = threading.Event()
    real = service.capture
    service.capture = lambda *a: (gate.wait(60), real(*a))[1]

    async def release_once_refused():
        deadline = time.monotonic() + 20
        while queue.refused < clients - queue.capacity and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        gate.set()

    async def burst():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            posts = [http.post("/api/capture", json={"text_a": f"sentence number {i} " * 8}) for i in range(clients)]
            *responses, _ = await asyncio.gather(*posts, release_once_refused())
            return responses

    try:
        statuses = [r.status_code for r in in_thread(asyncio.run, burst())]
    finally:
        gate.set()
        queue.close()
    assert queue.capacity == 3
    assert statuses.count(200) == 3 and statuses.count(429) == clients - 3, statuses
    assert queue.refused == clients - 3 and queue.timed_out == 0 and queue.in_flight == 0
