"""What the fast paths (:mod:`server_stub.fastlease`, :mod:`server_stub.fastbatch`) share: an ASGI
request's body read (and handed on to the full path when they leave it to FastAPI) and their
answers sent as the FastAPI routes and error handlers send them."""

from __future__ import annotations

import json
from collections.abc import Mapping

from server_stub.bodies import Message, Receive, Scope, Send
from server_stub.errors import ServerError, retry_headers
from server_stub.metrics import ROUTE_BOX
from sync.wire.redact import redact

Answer = tuple[int, bytes, Mapping[str, str]]  # status, JSON body, extra headers


def post_to(scope: Scope, path: str) -> bool:
    """An HTTP ``POST`` to exactly ``path``, with no query string (what a fast path may take)."""
    if scope["type"] != "http" or scope.get("method") != "POST" or scope["path"] != path:
        return False
    return not scope.get("query_string") and scope.get("raw_path", path.encode()) == path.encode()


async def read_body(receive: Receive, limit: int | None = None) -> tuple[list[Message], bytes | None]:
    """The messages received, and the body (None when the client went away or the body is over
    ``limit`` bytes: the full path then reads the rest and answers)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if limit is not None and size > limit:
            return messages, None
        if not message.get("more_body", False):
            if len(messages) == 1:
                return messages, message.get("body", b"")
            return messages, b"".join(m.get("body", b"") for m in messages)


def replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` for the full path: the messages read already, then the client's."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


def error_answer(exc: ServerError) -> Answer:
    """As ``routes.handlers`` answers it: ``{"error", "detail"}``, Retry-After when transient."""
    body = json.dumps({"error": exc.code, "detail": redact(exc.message)}).encode()
    return exc.status, body, retry_headers(exc)


async def send_json(scope: Scope, send: Send, route: str, answer: Answer) -> None:
    """The answer sent, counted by ``MetricsMiddleware`` under ``route`` as the router's would be."""
    status, body, headers = answer
    box = scope.get(ROUTE_BOX)
    if box is not None:
        box.append(route)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
