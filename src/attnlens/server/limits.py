"""What one server accepts and how much work it runs at once.

`Limits` holds the bounds (text length, tokens, body size, request time, concurrency, batching);
`InferenceQueue` runs model work on a thread pool, off the event loop, admitting at most
`workers + queue` jobs at a time. A job that cannot be admitted, or does not finish in time, is
refused with a 4xx (`LimitError`), never left to pile up.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Bounds on every request (defaults suit a laptop serving a base-size model)."""

    max_chars: int = 2000  # characters per sentence
    max_tokens: int = 256  # tokens of one encoded input (also capped by the model's own maximum)
    max_body_bytes: int = 64 * 1024  # request body
    request_timeout_s: float = 30.0  # time one request may wait for and run inference
    workers: int = 2  # threads doing CPU work beside the models' batch threads (view payloads)
    queue: int = 8  # jobs admitted beyond `workers`; more are refused (429)
    cached_captures: int = 64  # recent captures kept for their per-layer view data
    max_top_k: int = 50  # fill-mask candidates
    max_search_k: int = 50  # corpus search contexts per request
    batch_wait_ms: float = 4.0  # how long a capture may wait for others to share its forward pass
    max_batch: int = 32  # captures per batch (each forward pass is also bounded by capturing.MAX_BATCH_CELLS)
    bundle_bytes: int = 4 << 20  # a capture whose view data is at most this offers it all in one GET


class LimitError(Exception):
    """A request over a limit: HTTP `status` with a one-line `message`."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class InferenceQueue:
    """A bounded pool for blocking model work.

    A slot is taken before a job is submitted and given back only when the job's thread
    finishes (not when the request gives up waiting), so the work in flight never exceeds
    `workers + queue` jobs however many clients call. Every admitted job gets a thread at once:
    a capture mostly waits for its model's batch thread (no CPU), and the CPU work beside it is
    bounded by the Service (`workers` payloads at a time) and by the models' locks.
    """

    def __init__(self, workers: int, queue: int, timeout_s: float):
        if workers < 1 or queue < 0 or timeout_s <= 0:
            raise ValueError("workers must be >= 1, queue >= 0 and timeout_s > 0")
        self.capacity = workers + queue
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(self.capacity)
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None  # made on first use, again after close()
        self._lock = threading.Lock()
        self.in_flight = 0
        self.refused = 0
        self.timed_out = 0

    async def run(self, fn, *args, **kwargs):
        """fn(*args, **kwargs) on the pool; LimitError(429) when full, LimitError(408) when too slow."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise LimitError(429, f"the server is busy ({self.capacity} requests in progress); try again shortly",
                             {"Retry-After": "1"})
        with self._lock:
            self.in_flight += 1
        try:
            future = self._executor().submit(fn, *args, **kwargs)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(lambda _f: self._release())
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout_s)
        except asyncio.TimeoutError:
            with self._lock:
                self.timed_out += 1
            raise LimitError(408, f"the request took longer than the server's limit of {self.timeout_s:g} s") from None

    def _release(self) -> None:
        with self._lock:
            self.in_flight -= 1
        self._slots.release()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="attnlens-infer")
            return self._pool

    def close(self) -> None:
        """Stop the threads (after their current jobs); a later run() starts new ones."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class BodySizeLimit:
    """ASGI middleware: refuse (413) a request body over `max_bytes`, declared or streamed."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                return await _plain_error(send, 400, "invalid Content-Length header")
            if too_big:
                return await _plain_error(send, 413, f"request body over the limit of {self.max_bytes} bytes")
        received = 0
        chunks: list[dict] = []
        while True:  # read the (small) body up to the limit, then replay it to the app
            message = await receive()
            if message["type"] != "http.request":
                chunks.append(message)
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                return await _plain_error(send, 413, f"request body over the limit of {self.max_bytes} bytes")
            chunks.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            if chunks:
                return chunks.pop(0)
            return await receive()

        return await self.app(scope, replay, send)


async def _plain_error(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
