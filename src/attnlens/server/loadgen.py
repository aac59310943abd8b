"""A bounded load generator for a running `attnlens serve`: N concurrent clients, each
repeating "capture an input, then fetch all its view data" for a fixed time, as the page does to show
every view: the capture's answer carries the meta, then one GET of every buffer when the meta offers
a bundle (short inputs), else one GET per buffer. Used by the load test and bench_server.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    clients: int
    seconds: float
    latencies_s: list[float] = field(default_factory=list)  # one per completed capture + view data
    errors: Counter = field(default_factory=Counter)  # "HTTP 429", "ReadTimeout", ...
    bytes_received: int = 0
    cpu_s: float | None = None  # CPU seconds of the process doing the work, when measured

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        ordered = sorted(self.latencies_s)
        return 1000 * ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def two_sentences(client: int, n: int) -> tuple[str, str]:
    """A distinct sentence pair per (client, n), so every request is a real capture, not a cache hit."""
    return (f"I went to the store number {client} on day {n}.",
            f"At the store, I bought {n % 7 + 1} fresh strawberries for client {client}.")


class _Connection(http.client.HTTPConnection):
    """HTTP/1.1 keep-alive connection with Nagle off (as browsers do), so small requests are not delayed."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _client(base: str, index: int, stop_at: float, model: str | None, timeout_s: float, result: LoadResult,
            lock: threading.Lock) -> None:
    """One client: a persistent HTTP/1.1 connection (stdlib, so the client costs little CPU)."""
    url = urlsplit(base)
    conn = _Connection(url.hostname, url.port, timeout=timeout_s)

    def call(method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        nonlocal conn
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except Exception:
            conn.close()
            conn = _Connection(url.hostname, url.port, timeout=timeout_s)
            raise

    n = 0
    while time.monotonic() < stop_at:
        a, b = two_sentences(index, n)
        n += 1
        t0 = time.perf_counter()
        try:
            status, raw = call("POST", "/api/capture", {"model": model, "text_a": a, "text_b": b})
            if status != 200:
                with lock:
                    result.errors[f"HTTP {status}"] += 1
                continue
            body = json.loads(raw)
            if body["meta"]["text_a"] != a or body["meta"]["text_b"] != b:
                with lock:
                    result.errors["wrong capture"] += 1
                continue
            root, meta = f"/api/captures/{body['id']}", body["meta"]
            if meta.get("bundle"):
                got = [call("GET", f"{root}/buffers")]
                if got[0][0] == 200 and len(got[0][1]) != sum(meta["bundle"]["sizes"]):
                    with lock:
                        result.errors["wrong bundle size"] += 1
                    continue
            else:
                got = [call("GET", f"{root}/{name}") for name in meta["buffers"]]
            bad = [st for st, _ in got if st != 200]
            if bad:
                with lock:
                    result.errors[f"HTTP {bad[0]}"] += 1
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                result.bytes_received += len(raw) + sum(len(x) for _, x in got)
                result.latencies_s.append(elapsed)
        except Exception as exc:  # noqa: BLE001  (a load test counts every failure kind)
            with lock:
                result.errors[type(exc).__name__] += 1
    conn.close()


def run_load(base_url: str, clients: int, duration_s: float, model: str | None = None,
             timeout_s: float = 60.0) -> LoadResult:
    """Run `clients` concurrent clients (threads) against `base_url` for about `duration_s` seconds."""
    result = LoadResult(clients, 0.0)
    lock = threading.Lock()
    start = time.monotonic()
    threads = [threading.Thread(target=_client, args=(base_url.rstrip("/"), i, start + duration_s, model, timeout_s,
                                                      result, lock), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.monotonic() - start
    return result
