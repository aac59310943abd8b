"""Writing files: atomic writes (temporary file in the same folder, then os.replace) and one HTML page shell.

A reader never sees a half-written file: the data goes to a temporary file next to the
target, which replaces the target only once it is complete; on any error the temporary
file is removed and the target is left as it was. This module imports nothing from
attnlens, so every layer may use it.
"""

from __future__ import annotations

import html
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

# A page may load images from its own folder and data: URLs, and nothing from any host.
PAGE_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"
BASE_CSS = ("body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
            "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 5px}"
            "pre{background:#f6f6f6;padding:.5em;overflow:auto}img{max-width:100%}")


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new, empty temporary file next to `path`, opened for writing (permissions as for a plain open)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)  # newlines are Python's job
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:
            continue


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", *, encoding: str | None = "utf-8",
                newline: str | None = None, fsync: bool = False) -> Iterator[IO]:
    """Open `path` for writing ("w" or "wb"); it is replaced only when the block ends without an error.

    fsync: flush the data to disk before the replace (for files that must survive a power loss).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    tmp, fd = _create_temp(path)
    try:
        if mode == "wb":
            fh = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8", fsync: bool = False) -> Path:
    """Write `text` to `path` atomically; returns the path."""
    with atomic_open(path, "w", encoding=encoding, fsync=fsync) as fh:
        fh.write(text)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)
    return Path(path)


def _attribute(text: str) -> str:
    """`text` escaped for a double-quoted attribute (single quotes, common in a CSP, stay readable)."""
    return html.escape(text, quote=False).replace('"', "&quot;")


def html_page(title: str, body_html: str, *, css: str = "", csp: str = PAGE_CSP, lang: str = "en") -> str:
    """A standalone page: doctype, charset, a Content-Security-Policy, the escaped `title`, BASE_CSS + `css`.

    `body_html` is inserted as it is: whoever builds it escapes every text in it. `css` and
    `csp` are the caller's constants, never user text.
    """
    style = BASE_CSS + css
    if "</" in style:
        raise ValueError("css must not contain '</'")
    return (f"<!doctype html>\n<html lang=\"{_attribute(lang)}\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_attribute(csp)}\">"
            f"<title>{html.escape(title)}</title><style>{style}</style></head>"
            f"<body>{body_html}</body></html>\n")
