"""`attnlens capture`: capture one input and print a per-layer summary."""

from __future__ import annotations

from typing import Optional

import typer

from ..capturing import capture
from ..patterns.profile import summarize
from .app import ModelOpt, app, user_errors


@app.command("capture")
@user_errors
def capture_cmd(
    sentence_a: str = typer.Argument(..., help="Sentence A."),
    sentence_b: Optional[str] = typer.Argument(None, help="Optional sentence B (a sentence pair)."),
    model: Optional[str] = ModelOpt,
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Save the capture to this .npz file."),
    truncate: bool = typer.Option(False, "--truncate", help="Cut inputs longer than the model's maximum."),
    top: int = typer.Option(3, "--top", help="Heads shown per layer in the summary."),
):
    """Capture attention and per-head q/k; print a per-layer summary."""
    cap = capture(sentence_a, sentence_b, model=model, truncate=truncate)
    typer.echo(summarize(cap, top=top))
    if output:
        path = cap.save(output)
        typer.echo(f"saved {path}")
