"""A bounded load generator for a running `attnlens serve`: N concurrent clients, each
repeating "capture an input, then fetch its meta and every per-layer view buffer" (what the
page does to show all views) for a fixed time. Used by the load test and bench_server.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field


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


async def _client(http, base: str, index: int, stop_at: float, model: str | None, result: LoadResult):
    n = 0
    while time.monotonic() < stop_at:
        a, b = two_sentences(index, n)
        n += 1
        t0 = time.perf_counter()
        try:
            r = await http.post(f"{base}/api/capture", json={"model": model, "text_a": a, "text_b": b})
            if r.status_code != 200:
                result.errors[f"HTTP {r.status_code}"] += 1
                continue
            body = r.json()
            if body["meta"]["text_a"] != a or body["meta"]["text_b"] != b:
                result.errors["wrong capture"] += 1
                continue
            root = f"{base}/api/captures/{body['id']}"
            meta = await http.get(f"{root}/meta")
            responses = await asyncio.gather(*(http.get(f"{root}/{name}") for name in body["meta"]["buffers"]))
            bad = [x.status_code for x in [meta, *responses] if x.status_code != 200]
            if bad:
                result.errors[f"HTTP {bad[0]}"] += 1
                continue
            result.bytes_received += len(r.content) + len(meta.content) + sum(len(x.content) for x in responses)
        except Exception as exc:  # noqa: BLE001  (a load test counts every failure kind)
            result.errors[type(exc).__name__] += 1
            continue
        result.latencies_s.append(time.perf_counter() - t0)


async def _run(base: str, clients: int, duration_s: float, model: str | None, timeout_s: float) -> LoadResult:
    import httpx  # noqa: PLC0415

    result = LoadResult(clients, 0.0)
    limits = httpx.Limits(max_connections=clients * 4, max_keepalive_connections=clients * 4)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False) as http:
        start = time.monotonic()
        await asyncio.gather(*(_client(http, base.rstrip("/"), i, start + duration_s, model, result)
                               for i in range(clients)))
        result.seconds = time.monotonic() - start
    return result


def run_load(base_url: str, clients: int, duration_s: float, model: str | None = None,
             timeout_s: float = 60.0) -> LoadResult:
    """Run `clients` concurrent clients against `base_url` for about `duration_s` seconds."""
    return asyncio.run(_run(base_url, clients, duration_s, model, timeout_s))
