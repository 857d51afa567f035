"""ASGI guard in front of the app: body size limits, decompression, content type.

- The body on the wire is capped at ``max_bytes`` (Content-Length or counted), and so is
  the decompressed body: a gzip or zstd bomb stops at the cap with 413.
- ``Content-Encoding: gzip`` (and ``zstd`` when the zstandard package is installed) is undone
  here; handlers see plain JSON. Broken compressed data is a 400.
- A request with a body must say ``Content-Type: application/json`` (415 otherwise); the
  console's HTML forms (paths under ``/console/``) may also send
  ``application/x-www-form-urlencoded``.
- The SHA-256 of the body *as sent* is left in the scope for the signature check.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WIRE_DIGEST_KEY = "kiosk.wire_digest"
FORM_PREFIX = "/console/"  # server-rendered forms post urlencoded bodies

zstandard: Any
try:  # optional: zstd bodies
    import zstandard
except ImportError:  # pragma: no cover - depends on the environment
    zstandard = None  # type: ignore[no-redef]


class BodyError(Exception):
    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def supported_encodings() -> list[str]:
    return ["gzip", "zstd"] if zstandard is not None else ["gzip"]


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    too_big = BodyError(413, "body_too_large", f"the decompressed body is larger than {max_bytes} bytes")
    if encoding == "gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(body, max_bytes + 1)
        except zlib.error:
            raise BodyError(400, "bad_encoding", "the gzip body is corrupt") from None
        if len(out) > max_bytes:
            raise too_big
        if not d.eof or d.unused_data:
            raise BodyError(400, "bad_encoding", "the gzip body is truncated or has trailing data")
        return out
    if encoding == "zstd" and zstandard is not None:
        return _unzstd(body, max_bytes, too_big)
    raise BodyError(
        415,
        "unsupported_encoding",
        f"Content-Encoding {encoding!r} is not supported; use {' or '.join(supported_encodings())}",
    )


def _unzstd(body: bytes, max_bytes: int, too_big: BodyError) -> bytes:
    """One zstd frame, whole, at most ``max_bytes`` once decompressed.

    A frame that declares its size (the agent's client always does) is checked against the cap
    and decompressed in one call, which refuses a truncated frame and trailing data (~18 us for a
    50-record batch where the two passes below took ~65). A frame of unknown (or zero) size is
    read up to the cap, then checked whole in a second pass."""
    try:
        declared = zstandard.frame_content_size(body)  # -1: not declared
    except zstandard.ZstdError:
        raise BodyError(400, "bad_encoding", "the zstd body is corrupt") from None
    if declared > max_bytes:
        raise too_big
    if declared > 0:
        try:
            return bytes(zstandard.ZstdDecompressor().decompress(body, allow_extra_data=False))
        except zstandard.ZstdError:
            raise BodyError(
                400, "bad_encoding", "the zstd body is corrupt, truncated or has trailing data"
            ) from None
    try:
        out = zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True).read(max_bytes + 1)
        if len(out) > max_bytes:
            raise too_big
        check = zstandard.ZstdDecompressor().decompressobj()  # bounded: the output fits in max_bytes
        check.decompress(body)
    except zstandard.ZstdError:
        raise BodyError(400, "bad_encoding", "the zstd body is corrupt") from None
    if not check.eof or check.unused_data:
        raise BodyError(400, "bad_encoding", "the zstd body is truncated or has trailing data")
    return bytes(out)


async def _send_error(send: Send, err: BodyError) -> None:
    body = json.dumps({"error": err.code, "detail": err.detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": err.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            wire, body, headers = await self._read(scope, receive)
        except BodyError as err:
            await _send_error(send, err)
            return
        scope = dict(scope)
        scope["headers"] = headers
        scope[WIRE_DIGEST_KEY] = hashlib.sha256(wire).hexdigest()
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
        raw_headers: list[tuple[bytes, bytes]] = list(scope.get("headers", []))
        hdr = {k.lower(): v for k, v in raw_headers}
        length = hdr.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                raise BodyError(400, "bad_request", "Content-Length is not a number")
            if int(length) > self.max_bytes:
                raise BodyError(413, "body_too_large", f"the body is larger than {self.max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BodyError(400, "bad_request", "the client went away")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyError(413, "body_too_large", f"the body is larger than {self.max_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        wire = b"".join(chunks)
        if not wire:
            return wire, wire, raw_headers
        ctype = hdr.get(b"content-type", b"").split(b";")[0].strip().lower()
        is_form = ctype == b"application/x-www-form-urlencoded" and scope["path"].startswith(FORM_PREFIX)
        if ctype != b"application/json" and not is_form:
            raise BodyError(415, "unsupported_media_type", "send the body as Content-Type: application/json")
        encoding = hdr.get(b"content-encoding", b"").decode("latin-1")
        body = decompress(wire, encoding, self.max_bytes)
        if body is wire:
            return wire, body, raw_headers
        headers = [
            (k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        return wire, body, headers
