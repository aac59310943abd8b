"""The server has no authentication, so its origin is its only boundary.

`HostPolicy` is the set of `Host:` values a server answers (what it was bound for), and
`OriginGuard` (ASGI middleware) refuses any other host with 400 (a web page on another site
reaching the API through DNS rebinding sends its own name) and a state-changing request whose
`Origin` is another origin with 403. `SecurityHeaders` gives every response
`X-Content-Type-Options: nosniff` and a Content-Security-Policy with `frame-ancestors 'none'`.
`RESULT_CSP` sandboxes every file served from the results folder: a report (or an `.html` /
`.svg` someone sent you) opens and its links work, but its scripts run in an opaque origin
that can neither read nor call the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Iterable

from .limits import _plain_error

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
TEST_CLIENT_HOSTS = ("testserver",)  # what Starlette's TestClient sends
DEFAULT_HOSTS = LOOPBACK_HOSTS + TEST_CLIENT_HOSTS  # create_app's default: these names on any port
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Result files: a sandbox without allow-same-origin (an opaque origin: no access to the app's
# pages, cookies or API responses), no forms, no popups, no requests but data:/blob:; inline
# scripts and styles still run, so the standalone view pages draw; images load from the folder.
RESULT_CSP = ("sandbox allow-scripts; default-src 'self'; script-src 'unsafe-inline'; "
              "style-src 'self' 'unsafe-inline'; "
              "img-src 'self' data:; connect-src data: blob:; object-src 'none'; frame-src 'none'; worker-src 'none'; "
              "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
FALLBACK_CSP = "default-src 'none'; frame-ancestors 'none'"  # responses that set no policy of their own

_NAME = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])$")


def parse_host(value: str | None) -> tuple[str, int | None] | None:
    """(name, port or None) of a `Host:` header or an --allow-host value, lowercased; None when
    malformed. A bare IPv6 address ("::1") is bracketed ("[::1]")."""
    if value is None:
        return None
    value = value.strip().lower()
    if not value or len(value) > 300 or not value.isascii():
        return None
    if value.count(":") > 1 and not value.startswith("["):
        value = f"[{value}]"
    if value.startswith("["):
        end = value.find("]")
        name, rest = (value[:end + 1], value[end + 1:]) if end > 0 else (value, "")
    else:
        name, sep, port = value.partition(":")
        rest = sep + port
    if not _NAME.match(name):
        return None
    if not rest:
        return name, None
    digits = rest[1:]
    if not rest.startswith(":") or not digits.isdigit() or len(digits) > 5 or int(digits) > 65535:
        return None
    return name, int(digits)


class HostPolicy:
    """The `Host:` values a server answers: entries "name" (any port) or "name:port"."""

    def __init__(self, hosts: Iterable[str]):
        self.entries: set[tuple[str, int | None]] = set()
        for host in hosts:
            parsed = parse_host(host)
            if parsed is None:
                raise ValueError(f"not a host name: {host!r}")
            self.entries.add(parsed)

    def allows(self, host: str | None) -> bool:
        parsed = parse_host(host)
        if parsed is None:
            return False
        name, port = parsed
        return (name, None) in self.entries or (name, 80 if port is None else port) in self.entries

    def names(self) -> list[str]:
        """The entries as text ("name" or "name:port"), sorted."""
        return sorted(n if p is None else f"{n}:{p}" for n, p in self.entries)

    def __repr__(self) -> str:
        return f"HostPolicy({', '.join(self.names())})"


def served_hosts(host: str, port: int, extra: Iterable[str] = ()) -> list[str]:
    """What `attnlens serve --host host --port port --allow-host ...` answers: the loopback names
    and a non-wildcard --host at the bound port, plus each extra name (at that port unless it names one)."""
    hosts = [f"{name}:{port}" for name in LOOPBACK_HOSTS]
    if host not in ("0.0.0.0", "::", ""):
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        hosts.append(f"{bracketed}:{port}")
    for name in extra:
        parsed = parse_host(name)
        if parsed is None:
            raise ValueError(f"--allow-host {name!r} is not a host name (NAME or NAME:PORT)")
        hosts.append(f"{parsed[0]}:{port if parsed[1] is None else parsed[1]}")
    return hosts


def _short(value: str) -> str:
    return repr(value[:80] + ("\u2026" if len(value) > 80 else ""))


class OriginGuard:
    """ASGI middleware: 400 for a `Host:` outside `policy`; 403 for a request other than
    GET/HEAD/OPTIONS whose `Origin` (or, without one, `Sec-Fetch-Site: cross-site`) is another origin."""

    def __init__(self, app, policy: HostPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host:
            return await _plain_error(send, 400, "the request has no Host header")
        if not self.policy.allows(host):
            return await _plain_error(send, 400, f"host {_short(host)} is not served here (start the server with "
                                                 "--allow-host NAME to answer another name)")
        if scope.get("method", "GET") not in SAFE_METHODS or scope["type"] == "websocket":
            origin = headers.get(b"origin")
            if origin is not None:
                text = origin.decode("latin-1")
                scheme, sep, authority = text.lower().partition("://")
                if not sep or scheme not in ("http", "https") or authority != host.lower():
                    return await _plain_error(send, 403, f"cross-origin request refused: Origin {_short(text)} "
                                                         f"is not this server's origin")
            elif headers.get(b"sec-fetch-site") == b"cross-site":
                return await _plain_error(send, 403, "cross-origin request refused (Sec-Fetch-Site: cross-site)")
        return await self.app(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: every response gets nosniff, X-Frame-Options DENY, a Referrer-Policy and a
    Content-Security-Policy with frame-ancestors 'none' (its own policy plus that, or FALLBACK_CSP);
    API responses also get Cross-Origin-Resource-Policy: same-origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope.get("path", "").startswith("/api/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured(list(message.get("headers") or []), api)}
            await send(message)

        return await self.app(scope, receive, send_with_headers)


def secured(headers: list[tuple[bytes, bytes]], api: bool = False) -> list[tuple[bytes, bytes]]:
    """`headers` (raw ASGI pairs) with the security headers added where missing."""
    names = {k.lower() for k, _ in headers}
    out = []
    for key, value in headers:
        if key.lower() == b"content-security-policy" and b"frame-ancestors" not in value:
            value = value.rstrip(b"; ") + b"; frame-ancestors 'none'"
        out.append((key, value))
    for key, value in ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                       (b"referrer-policy", b"same-origin"), (b"content-security-policy", FALLBACK_CSP.encode())):
        if key not in names:
            out.append((key, value))
    if api and b"cross-origin-resource-policy" not in names:
        out.append((b"cross-origin-resource-policy", b"same-origin"))
    return out


_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def inline_script_csp(page: str, connect: str = "'self'") -> str:
    """A policy for `page` that allows its own inline scripts by hash (and 'self' for the rest)."""
    hashes = " ".join("'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
                      for s in _INLINE_SCRIPT.findall(page))
    return (f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
