"""Dynamic batching of captures: the requests for one model that arrive together run as one padded batch.

Each served model has one CaptureBatcher, a thread fed by the request threads. It takes the inputs
waiting (at most `max_inputs`): at once when its last batch ran alone (one client: no added
latency), else once the first has waited `max_wait_s` or `max_inputs` wait. While a batch runs,
the next one gathers, so under steady load nothing waits on purpose. It checks
each one's token count (one over the limit fails alone, 413) and runs the rest through the one
batcher (capturing.batches: grouped by length, each forward pass at most MAX_BATCH_CELLS
inputs x tokens^2), handing every request its own row (Batch.capture: only its real tokens).
The thread holds the model's lock while it tokenizes and runs the model, and ends after
`idle_s` without work or on close() (the next request starts a new one).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..capturing import Capture, batches
from .limits import LimitError
from .models import ServedModel


def token_limit_error(served: ServedModel, n: int, max_tokens: int) -> LimitError | None:
    """The 413 for an input of `n` tokens over this server's limit (or the model's own), else None."""
    limit = min(max_tokens, served.lm.max_length)
    if n > limit:
        return LimitError(413, f"the input is {n} tokens; this server takes at most {limit} for model {served.name}")
    return None


@dataclass
class _Job:
    pair: tuple[str, str | None]
    arrived: float
    future: Future = field(default_factory=Future)


class CaptureBatcher:
    """Captures of one served model, batched across the requests that wait together."""

    def __init__(self, served: ServedModel, max_tokens: int, *, max_wait_s: float = 0.004, max_inputs: int = 32,
                 idle_s: float = 30.0):
        if max_inputs < 1 or max_wait_s < 0:
            raise ValueError("max_inputs must be >= 1 and max_wait_s >= 0")
        self.served = served
        self.max_tokens = max_tokens
        self.max_wait_s = max_wait_s
        self.max_inputs = max_inputs
        self.idle_s = idle_s
        self._waiting: list[_Job] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batch_sizes: list[int] = [1]  # inputs per run, most recent last (bounded), for tests and benchmarks
        self.taken = 0  # inputs taken into batches so far

    @property
    def waiting(self) -> int:
        """Inputs submitted and not yet taken into a batch."""
        with self._cond:
            return len(self._waiting)

    def submit(self, text_a: str, text_b: str | None) -> Future:
        """A Future of the input's Capture (or of its LimitError / AttnlensError)."""
        job = _Job((text_a, text_b), time.monotonic())
        with self._cond:
            self._closed = False  # after close(), a new request starts a new thread, as InferenceQueue does
            self._waiting.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=f"attnlens-batch-{self.served.name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return job.future

    def capture(self, text_a: str, text_b: str | None) -> Capture:
        """The input's Capture, batched with whatever else waits. Blocking."""
        return self.submit(text_a, text_b).result()

    def close(self) -> None:
        """Fail what still waits and let the thread end (after its current batch); a later submit starts anew."""
        with self._cond:
            self._closed = True
            waiting, self._waiting = self._waiting, []
            self._cond.notify_all()
        for job in waiting:
            job.future.set_exception(LimitError(503, "the server is shutting down"))

    def _next_jobs(self) -> list[_Job] | None:
        """The next batch's jobs, once gathered; None when idle for idle_s or closed (the thread then ends)."""
        with self._cond:
            while not self._waiting:
                if self._closed or not self._cond.wait(self.idle_s):
                    if not self._waiting:
                        self._thread = None
                        return None
            alone = self.batch_sizes[-1] == 1  # nobody to wait for, as far as we know: go at once
            deadline = self._waiting[0].arrived + (0.0 if alone else self.max_wait_s)
            while len(self._waiting) < self.max_inputs and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            jobs, self._waiting = self._waiting[:self.max_inputs], self._waiting[self.max_inputs:]
            self.taken += len(jobs)
            return jobs

    def _loop(self) -> None:
        while (jobs := self._next_jobs()) is not None:
            self._run([job for job in jobs if job.future.set_running_or_notify_cancel()])

    def _run(self, jobs: list[_Job]) -> None:
        lm = self.served.lm
        try:
            with self.served.lock:  # the hooks and the tokenizer serve one job at a time
                ready = []
                for job in jobs:
                    error = token_limit_error(self.served, len(lm.tokenizer(*job.pair)["input_ids"]), self.max_tokens)
                    if error is not None:
                        job.future.set_exception(error)
                    else:
                        ready.append(job)
                if ready:
                    self.batch_sizes.append(len(ready))
                    del self.batch_sizes[:-1000]
                    for batch in batches(lm, [job.pair for job in ready], batch_size=self.max_inputs):
                        for row, i in enumerate(batch.index):
                            ready[i].future.set_result(batch.capture(row))
        except Exception as exc:  # noqa: BLE001  (handed to every request still waiting)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
