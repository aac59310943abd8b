"""`attnlens serve`: the local web app (needs the `server` extra: FastAPI + uvicorn)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import sys
import webbrowser
from typing import List, Optional

import typer

from ..errors import AttnlensError
from .app import app, user_errors

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (port 0: any free one), so the app knows its port before it starts."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and without it
    # a keep-alive response written in two parts waits ~40 ms for the client's delayed ACK (Nagle)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise AttnlensError(f"cannot listen on {host} port {port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


@app.command("serve")
@user_errors
def serve_cmd(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m",
                                              help="Model folder, pretraining or fine-tuning run folder (a "
                                                   "classifier: its predictions are shown) or hub name to serve; "
                                                   "repeat for several (default: all-MiniLM-L6-v2)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0 = any free port)."),
    results: Optional[str] = typer.Option(None, "--results",
                                          help="Folder of atlas reports and pretraining / fine-tuning runs "
                                               "to browse."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    allow_remote: bool = typer.Option(False, "--allow-remote",
                                      help="Allow a --host other than loopback (anyone who can reach it can use "
                                           "the models)."),
    allow_host: Optional[List[str]] = typer.Option(None, "--allow-host",
                                                   help="Also answer requests for this host name (NAME, at the "
                                                        "server's port, or NAME:PORT), e.g. the machine's name with "
                                                        "--allow-remote or a proxy's; repeat for several. Any other "
                                                        "Host header gets 400."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest input (tokens) the server accepts."),
    max_chars: int = typer.Option(2000, "--max-chars", help="Longest sentence (characters) the server accepts."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds one request may wait for and run inference."),
    workers: int = typer.Option(2, "--workers", help="Threads building view data beside each model's batch "
                                                     "thread (captures are batched per model)."),
    queue: int = typer.Option(8, "--queue", help="Requests admitted beyond --workers at once; more get 429."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads for the whole process "
                                                                    "(default: CPUs / workers, at least 1)."),
    search_corpus: str = typer.Option("default", "--search-corpus",
                                      help="What \"Find similar contexts\" searches: a shipped dataset name or "
                                           "a documents (.txt/.txt.gz, folder) or pairs (.tsv) file."),
    search_limit: int = typer.Option(200, "--search-limit",
                                     help="Sentences of --search-corpus indexed (a fixed sample; 0 = all). The "
                                          "first search per model and layer indexes them."),
):
    """Serve the web app: type sentences and explore every view, compare models, browse results."""
    if not is_loopback(host):
        if not allow_remote:
            raise AttnlensError(f"--host {host} is not a loopback address; pass --allow-remote to serve other machines")
        typer.echo(f"warning: serving on {host}: anyone who can reach this port can run the models "
                   "(there is no authentication)", err=True)
    if not 0 <= port <= 65535:
        raise AttnlensError(f"--port must be between 0 and 65535, not {port}")
    for name, value in (("--max-tokens", max_tokens), ("--max-chars", max_chars), ("--workers", workers)):
        if value < 1:
            raise AttnlensError(f"{name} must be at least 1")
    if queue < 0 or timeout <= 0:
        raise AttnlensError("--queue must be >= 0 and --timeout > 0")
    try:
        import uvicorn  # noqa: PLC0415  (uvicorn is the optional `server` extra)

        from ..server import Limits, create_app  # noqa: PLC0415  (FastAPI is the optional `server` extra)
        from ..server.security import served_hosts  # noqa: PLC0415  (importing the server package needs FastAPI)
    except ImportError:
        raise AttnlensError("the web app needs FastAPI and uvicorn: pip install 'attnlens[server]'") from None
    import torch  # noqa: PLC0415  (only `serve` uses torch: to set its threads; the CLI modules stay torch-free)

    if threads is not None and threads < 1:
        raise AttnlensError("--threads must be at least 1")
    if search_limit < 0:
        raise AttnlensError(f"--search-limit must be 0 (all) or more, got {search_limit}")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // workers))  # workers x threads <= CPUs
    limits = Limits(max_tokens=max_tokens, max_chars=max_chars, request_timeout_s=timeout, workers=workers, queue=queue)
    try:
        served_hosts(host, port, allow_host or [])  # a bad --allow-host fails before any model loads
    except ValueError as exc:
        raise AttnlensError(str(exc)) from None
    sock = bind_socket(host, port)
    bound = sock.getsockname()[1]  # the real port (port 0 picks one): the Host names it answers include it
    try:
        web = create_app(list(model or []), results_dir=results, limits=limits,
                         allowed_hosts=served_hosts(host, bound, allow_host or []), search_corpus=search_corpus,
                         search_limit=search_limit or None)
    except BaseException:
        sock.close()
        raise
    if not is_loopback(host) and not allow_host:
        typer.echo(f"note: only {', '.join(web.state.allowed_hosts.names())} are answered; pass --allow-host "
                   "NAME for each name or address other machines use to reach this one", err=True)
    # timeout_keep_alive: longer than a queued request waits, so clients reuse connections safely
    config = uvicorn.Config(web, host=host, port=bound, log_level="warning", timeout_graceful_shutdown=2,
                            timeout_keep_alive=30)
    server = uvicorn.Server(config)
    shown_host = f"[{host}]" if ":" in host else host

    async def _started():  # print the address once the server accepts connections
        while not server.started:
            await asyncio.sleep(0.05)
        url = f"http://{shown_host}:{bound}/"
        typer.echo(f"attnlens serving {', '.join(web.state.service.models)} on {url} (Ctrl-C to stop)", err=False)
        sys.stdout.flush()
        if open_page:
            webbrowser.open(url)

    async def _run():
        watcher = asyncio.create_task(_started())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()

    asyncio.run(_run())
