"""The `attnlens` Typer app and what every command shares (error handling, common options).

Every command turns an AttnlensError (bad input) into one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import os

import typer

from ..errors import AttnlensError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="See, measure and explain what every attention head of a BERT-style model does.")



@app.callback()
def _root() -> None:
    """See, measure and explain what every attention head of a BERT-style model does."""


ModelOpt = typer.Option(None, "--model", "-m", help="Model folder or hub name (default: all-MiniLM-L6-v2).")


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(fn):
    """Turn bad-input errors into a one-line message and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AttnlensError as exc:
            fail(str(exc))
        except (FileNotFoundError, IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
            fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    return wrapper


def main() -> None:
    """Entry point of the `attnlens` console script."""
    from . import commands  # noqa: F401,PLC0415  (registers every command on `app`)

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app(prog_name="attnlens")

