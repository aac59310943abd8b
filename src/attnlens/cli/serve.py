"""`attnlens serve`: the local web app (needs the `server` extra: FastAPI + uvicorn)."""

from __future__ import annotations

import ipaddress
from typing import List, Optional

import typer

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


@app.command("serve")
@user_errors
def serve_cmd(
    model: Optional[List[str]] = typer.Option(None, "--model", "-m",
                                              help="Model folder, pretraining run folder or hub name to serve; repeat for several "
                                                   "(default: all-MiniLM-L6-v2)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0 = any free port)."),
    results: Optional[str] = typer.Option(None, "--results", help="Folder of atlas reports and pretraining runs to browse."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a --host other than loopback (anyone who can "
                                                                    "reach it can use the models)."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest input (tokens) the server accepts."),
    max_chars: int = typer.Option(2000, "--max-chars", help="Longest sentence (characters) the server accepts."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds one request may wait for and run inference."),
    workers: int = typer.Option(2, "--workers", help="Inference threads."),
    queue: int = typer.Option(8, "--queue", help="Requests that may wait for an inference thread; more get 429."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch threads for the whole process "
                                                                    "(default: CPUs / workers, at least 1)."),
):
    """Serve the web app: type sentences and explore every view, compare models, browse results."""
    from ..errors import AttnlensError  # noqa: PLC0415

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
        import uvicorn  # noqa: PLC0415

        from ..server import Limits, create_app  # noqa: PLC0415
    except ImportError:
        raise AttnlensError("the web app needs FastAPI and uvicorn: pip install 'attnlens[server]'") from None
    import os  # noqa: PLC0415

    import torch  # noqa: PLC0415

    if threads is not None and threads < 1:
        raise AttnlensError("--threads must be at least 1")
    torch.set_num_threads(threads or max(1, (os.cpu_count() or 1) // workers))  # workers x threads <= CPUs
    limits = Limits(max_tokens=max_tokens, max_chars=max_chars, request_timeout_s=timeout, workers=workers, queue=queue)
    web = create_app(list(model or []), results_dir=results, limits=limits)
    config = uvicorn.Config(web, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                            timeout_keep_alive=30)  # longer than a queued request waits, so clients reuse connections safely
    server = uvicorn.Server(config)
    shown_host = f"[{host}]" if ":" in host else host

    async def _started():  # print the real address once the socket is bound (port 0 picks one)
        import asyncio  # noqa: PLC0415

        while not server.started:
            await asyncio.sleep(0.05)
        bound = server.servers[0].sockets[0].getsockname()[1] if server.servers else port
        url = f"http://{shown_host}:{bound}/"
        typer.echo(f"attnlens serving {', '.join(web.state.service.models)} on {url} (Ctrl-C to stop)", err=False)
        import sys  # noqa: PLC0415

        sys.stdout.flush()
        if open_page:
            import webbrowser  # noqa: PLC0415

            webbrowser.open(url)

    import asyncio  # noqa: PLC0415

    async def _run():
        watcher = asyncio.create_task(_started())
        try:
            await server.serve()
        finally:
            watcher.cancel()

    asyncio.run(_run())
