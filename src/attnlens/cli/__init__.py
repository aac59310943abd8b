"""The `attnlens` command line: thin wrappers that parse arguments, call the library, formats output."""

from .app import app, main

__all__ = ["app", "main"]
