"""The local API's front door (pure ASGI, before any route runs).

- **Host** must name the loopback address:port the server is bound to (or
  ``localhost:port``): a page on another site whose DNS name was rebound to
  127.0.0.1 sends its own name as Host and is refused (421).
- **Origin** (or, without it, **Referer**) on POST/PUT/PATCH/DELETE must be this
  same origin when present: a cross-site form or fetch is refused (403).
- ``/api/*`` needs ``Authorization: Bearer <api token>`` (401 otherwise).
- Request bodies are capped (413).
"""

from __future__ import annotations

import hmac
import json
from http import HTTPMethod
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

UNSAFE_METHODS = frozenset({HTTPMethod.POST, HTTPMethod.PUT, HTTPMethod.PATCH, HTTPMethod.DELETE})
MAX_BODY = 64 * 1024


def allowed_hosts(server: tuple[str, int] | None) -> set[str]:
    """The Host header values that name the socket this request came in on."""
    if not server:
        return set()
    host, port = server[0], int(server[1])
    names = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "::1"):
        names.add("localhost")
    out = {f"{n}:{port}" for n in names}
    if port == 80:
        out |= names
    return {h.lower() for h in out}


def _origin_of(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "null"
    return f"{parts.scheme}://{parts.netloc}".lower()


def error_body(code: str, detail: str) -> bytes:
    return json.dumps({"error": code, "detail": detail}).encode()


async def _deny(send: Send, status: int, code: str, detail: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = error_body(code, detail)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app: ASGIApp, *, token: str, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.token = token.encode()
        self.max_body = max_body

    def _refusal(self, scope: Scope) -> tuple[int, str, str, list[tuple[bytes, bytes]]] | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "").strip().lower()
        if host not in allowed_hosts(scope.get("server")):
            return 421, "bad_host", "this API answers only to its own loopback address", []
        if scope["method"] in UNSAFE_METHODS:
            origin = headers.get("origin")
            seen = origin.lower() if origin is not None else _origin_of(headers.get("referer"))
            if seen is not None and seen != f"http://{host}":
                return 403, "cross_origin", "requests from other sites are refused", []
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > self.max_body:
                return 413, "too_large", f"request body over {self.max_body} bytes", []
        path: str = scope["path"]
        if path == "/api" or path.startswith("/api/"):
            scheme, _, cred = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(cred.strip().encode(), self.token):
                return 401, "unauthorized", "missing or wrong API token", [(b"www-authenticate", b"Bearer")]
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            await _deny(send, *refusal)
            return
        limited = self._limited(receive) if scope["method"] in UNSAFE_METHODS else receive
        await self.app(scope, limited, send)

    def _limited(self, receive: Receive) -> Any:
        """Also cap chunked bodies that declared no length."""
        seen = 0

        async def wrapped() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    return {"type": "http.disconnect"}
            return message

        return wrapped
