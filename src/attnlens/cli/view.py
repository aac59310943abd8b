"""`attnlens view`: write the standalone page (head, model and neuron views) of one input."""

from __future__ import annotations

import tempfile
import webbrowser
from pathlib import Path
from typing import Optional

import typer

from ..capturing import capture
from ..errors import AttnlensError
from ..views import text as text_views
from ..views.browser import save_png
from ..views.html import to_html
from .app import ModelOpt, app, user_errors


@app.command("view")
@user_errors
def view_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: Optional[str] = typer.Argument(None, help="Optional sentence B (a sentence pair)."),
    model: Optional[str] = ModelOpt,
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Where to write the page (default: "
                                         "attnlens_view.html; with --png and no -o, no page is written)."),
    open_page: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
    png: Optional[str] = typer.Option(None, "--png", help="Also save a picture of a view (headless chromium)."),
    png_view: str = typer.Option("head", "--png-view", help="Which view the picture shows: head, model or neuron."),
    text: Optional[str] = typer.Option(None, "--text", help="Also print a view as text: head, model or neuron."),
    layer: int = typer.Option(0, "--layer", help="Layer shown first."),
    head: int = typer.Option(0, "--head", help="Head shown first in the neuron view."),
    query: Optional[int] = typer.Option(None, "--query", help="Query token index for the neuron view."),
    theme: Optional[str] = typer.Option(None, "--theme", help="light or dark (default: the browser's)."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut inputs longer than the model's maximum."),
):
    """Write one self-contained, offline HTML page with the head, model and neuron views."""
    for name, value in (("--text", text), ("--png-view", png_view)):
        if value is not None and value not in ("head", "model", "neuron"):
            raise AttnlensError(f"{name} must be head, model or neuron, not {value!r}")
    cap = capture(sentence_a, sentence_b, model=model, truncate=truncate)
    if query is None:
        query = next((i for i, special in enumerate(cap.special_mask) if not special), 0)
    # with --png and no -o (nor --open) only the picture is wanted: its page is a temporary file
    scratch = tempfile.TemporaryDirectory(prefix="attnlens-view-") if png and output is None and not open_page else None
    path = Path(scratch.name) / "view.html" if scratch else Path(output or "attnlens_view.html").resolve()
    try:
        to_html(cap, path, layer=layer, head=head, query=query, theme=theme)
        if scratch is None:
            typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes, {cap.num_tokens} tokens)")
        if text:
            rendering = {"head": lambda: text_views.head_view_text(cap, layer),
                         "model": lambda: text_views.model_view_text(cap),
                         "neuron": lambda: text_views.neuron_view_text(cap, layer, head, query)}[text]()
            typer.echo(rendering)
        if png:
            typer.echo(f"wrote {save_png(path, png, view=png_view)}")
        if open_page:
            webbrowser.open(path.as_uri())
    finally:
        if scratch is not None:
            scratch.cleanup()
