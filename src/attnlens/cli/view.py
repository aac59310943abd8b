"""`attnlens view`: write the standalone page (head, model and neuron views) of one input."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .app import ModelOpt, app, user_errors


@app.command("view")
@user_errors
def view_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: Optional[str] = typer.Argument(None, help="Optional sentence B (a sentence pair)."),
    model: Optional[str] = ModelOpt,
    output: str = typer.Option("attnlens_view.html", "--output", "-o", help="Where to write the page."),
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
    from ..capturing import capture  # noqa: PLC0415
    from ..errors import AttnlensError  # noqa: PLC0415
    from ..views.html import to_html  # noqa: PLC0415

    for name, value in (("--text", text), ("--png-view", png_view)):
        if value is not None and value not in ("head", "model", "neuron"):
            raise AttnlensError(f"{name} must be head, model or neuron, not {value!r}")
    cap = capture(sentence_a, sentence_b, model=model, truncate=truncate)
    if query is None:
        query = next((i for i, special in enumerate(cap.special_mask) if not special), 0)
    to_html(cap, output, layer=layer, head=head, query=query, theme=theme)
    path = Path(output).resolve()
    typer.echo(f"wrote {path} ({path.stat().st_size:,} bytes, {cap.num_tokens} tokens)")
    if text:
        from ..views import text as text_views  # noqa: PLC0415

        rendering = {"head": lambda: text_views.head_view_text(cap, layer),
                     "model": lambda: text_views.model_view_text(cap),
                     "neuron": lambda: text_views.neuron_view_text(cap, layer, head, query)}[text]()
        typer.echo(rendering)
    if png:
        from ..views.browser import save_png  # noqa: PLC0415

        typer.echo(f"wrote {save_png(path, png, view=png_view)}")
    if open_page:
        import webbrowser  # noqa: PLC0415

        webbrowser.open(path.as_uri())
