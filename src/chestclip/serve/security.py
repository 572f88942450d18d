"""What the server checks before a request reaches the app, so that it can be opened in a browser
and, with a token, exposed on a network: the Host header against an allow-list (Starlette's
``TrustedHostMiddleware``; defeats DNS rebinding), the Origin of every request that is not a read
(a web page may POST to a loopback server: forms need no CORS pre-flight), and an optional
bearer token for ``/api/``. Also what answers may say: no server paths.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
TOKEN_ENV = "CHESTCLIP_SERVE_TOKEN"
READS = ("GET", "HEAD", "OPTIONS")
# an absolute path of two or more parts (POSIX or Windows), not inside a URL
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w:/.])(?:[A-Za-z]:)?[/\\](?:[^\s/\\:'\"]+[/\\])+([^\s/\\:'\"]*)"
)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_hosts(bind: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host header names the server answers to: the loopback names, the address it binds
    (unless a wildcard such as 0.0.0.0) and ``extra`` (the names clients use to reach it)."""
    names = [*LOOPBACK_NAMES, *extra]
    try:
        address = ipaddress.ip_address(bind.strip("[]"))
        if not address.is_unspecified:
            names.append(f"[{address}]" if address.version == 6 else str(address))
    except ValueError:
        names.append(bind)
    return list(dict.fromkeys(name.lower() for name in names))


class RequestGuard:
    """ASGI middleware: a request that is not a read and carries an ``Origin`` other than the
    server's own (or ``Sec-Fetch-Site: cross-site``) gets 403; with a ``token``, ``/api/``
    requests without ``Authorization: Bearer <token>`` get 401."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        problem = self._cross_origin(scope, headers) or self._unauthorised(scope, headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        status, detail = problem
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await _answer(send, status, detail, extra)

    @staticmethod
    def _cross_origin(scope: Scope, headers: Headers) -> tuple[int, str] | None:
        if scope["method"] in READS:
            return None
        origin = headers.get("origin")
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        if origin is not None and origin.lower() != own:
            return 403, f"cross-origin request refused (Origin {origin[:100]})"
        if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
            return 403, "cross-origin request refused (Sec-Fetch-Site)"
        return None

    def _unauthorised(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        if self.token is None or not scope["path"].startswith("/api/"):
            return None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        expected = self.token.encode()
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return 401, "this server needs its token: Authorization: Bearer <token>"


async def _answer(send: Send, status: int, detail: str, extra: list) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


def strip_paths(text: str) -> str:
    """``text`` with every absolute path shortened to its last part: answers never show where
    the server keeps its files."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "<path>", text)


def without_paths(value: Any) -> Any:
    """A JSON-like value with ``strip_paths`` applied to every string in it."""
    if isinstance(value, str):
        return strip_paths(value)
    if isinstance(value, dict):
        return {key: without_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_paths(item) for item in value]
    return value
