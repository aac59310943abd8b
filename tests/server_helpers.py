"""Helpers for the server tests: tiny random models (one with a masked-LM head, saved to a folder) and apps."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import default_tokenizer, tiny_config


def save_tiny_mlm(folder: Path, seed: int = 0, extra_tokens=()) -> Path:
    """A random tiny BertForMaskedLM with the default WordPiece tokenizer, saved to `folder`.

    extra_tokens: tokens added to the tokenizer (and the vocabulary); each is kept whole in any text,
    e.g. an HTML tag that the WordPiece vocabulary alone would split into harmless pieces.
    """
    import copy

    import torch
    from transformers import BertForMaskedLM

    tokenizer = default_tokenizer()
    if extra_tokens:
        tokenizer = copy.deepcopy(tokenizer)  # the shared one stays as it is
        tokenizer.add_tokens(list(extra_tokens))
    torch.manual_seed(seed)
    model = BertForMaskedLM(tiny_config("bert", vocab_size=len(tokenizer)))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def decode_fetched(client, capture_id: str):
    """Fetch a capture's meta and every buffer over HTTP, decoded as a page would see them."""
    from attnlens.views.payload import decode_payload

    meta = client.get(f"/api/captures/{capture_id}/meta").json()
    buffers = {}
    for name in meta["buffers"]:
        r = client.get(f"/api/captures/{capture_id}/{name}")
        assert r.status_code == 200, (name, r.text)
        assert r.headers["content-type"] == "application/octet-stream"
        buffers[name] = r.content
    return meta, decode_payload(meta, buffers)


def in_thread(fn, *args, timeout: float = 300.0):
    """fn(*args) on a fresh thread; its result, or its exception re-raised here.

    A session-wide Playwright (sync API) keeps an asyncio loop marked running on the main
    thread, so asyncio.run() and a second Playwright must run on another thread.
    """
    import threading

    box: dict = {}

    def target():
        try:
            box["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller)
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{getattr(fn, '__name__', fn)} did not finish in {timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class BrowserThread:
    """A headless chromium (Playwright sync API) confined to its own thread; run(fn) calls fn(browser) there."""

    def __init__(self, executable: str, args: list[str]):
        import queue
        import threading

        self._jobs: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, args=(executable, args), daemon=True)
        self._thread.start()
        self._ready.wait(120)
        if self._error is not None:
            raise self._error

    def _loop(self, executable, args):
        try:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=executable, args=args)
                self._ready.set()
                while True:
                    job = self._jobs.get()
                    if job is None:
                        break
                    fn, box, done = job
                    try:
                        box["value"] = fn(browser)
                    except BaseException as exc:  # noqa: BLE001  (handed to the calling thread)
                        box["error"] = exc
                    done.set()
                browser.close()
        except BaseException as exc:  # noqa: BLE001  (handed to the calling thread)
            self._error = exc
            self._ready.set()

    def run(self, fn, timeout: float = 300.0):
        import threading

        box: dict = {}
        done = threading.Event()
        self._jobs.put((fn, box, done))
        if not done.wait(timeout):
            raise TimeoutError("the browser job did not finish in time")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self):
        self._jobs.put(None)
        self._thread.join(30)


SRC = Path(__file__).resolve().parents[1] / "src"


@contextmanager
def running_server(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 180.0):
    """`attnlens serve --port 0 ARGS` in its own process (this checkout's src first on the path);
    yields the URL it prints once it listens, and always stops it."""
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "attnlens", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    try:
        url, lines, deadline = None, [], time.monotonic() + timeout
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            found = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        if url is None:
            pytest.fail("attnlens serve did not start: " + "".join(lines)[-2000:])
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
