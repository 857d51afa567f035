"""The kiosk's HTTP client for the central server.

One ``requests.Session`` (injected), every device call signed
(:mod:`sync.wire.signing`) over the bytes on the wire, request bodies gzip-
(or zstd-) compressed, timeouts on every call, and the clock offset learned
from the server's ``Date`` header so a kiosk with a wrong clock still signs
timestamps the server accepts.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import urllib3.exceptions
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ValidationError

from sync.errors import PermanentSyncError, SyncError, TransientSyncError
from sync.wire import protocol, signing
from sync.wire.directory import DirectoryPage

M = TypeVar("M", bound=BaseModel)

try:  # zstd compresses these batches a little better and faster; gzip is the fallback
    import zstandard
except ImportError:  # pragma: no cover - depends on the install
    zstandard = None  # type: ignore[assignment]


def compress(body: bytes, encoding: str) -> bytes:
    if encoding == "zstd" and zstandard is not None:
        return bytes(zstandard.ZstdCompressor(level=9).compress(body))
    return gzip.compress(body, compresslevel=9, mtime=0)


class SyncClient:
    def __init__(
        self,
        base_url: str,
        *,
        device_id: str = "",
        private_key: Ed25519PrivateKey | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 15.0,
        encoding: str = "gzip",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.private_key = private_key
        self.session = session or requests.Session()
        self.timeout_s = timeout_s
        self.encoding = encoding if (encoding != "zstd" or zstandard is not None) else "gzip"
        self.clock = clock
        self.offset_s = 0.0  # server time minus our clock, from the last Date header
        self.offset_known = False  # True once an answer carried a Date
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- plumbing ---------------------------------------------------------
    def server_now(self) -> float:
        return self.clock() + self.offset_s

    def _learn_offset(self, resp: requests.Response) -> None:
        date = resp.headers.get("Date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        # Date has 1 s resolution: only correct offsets that matter for the +-5 min window.
        off = server - self.clock()
        self.offset_known = True
        if abs(off - self.offset_s) > 2:
            self.offset_s = off

    def _send(self, method: str, path: str, body: Any = None, *, signed: bool = True) -> requests.Response:
        raw = b"" if body is None else json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            if len(raw) > 512:
                raw = compress(raw, self.encoding)
                headers["Content-Encoding"] = self.encoding
        if signed:
            if self.private_key is None:
                raise PermanentSyncError("this kiosk is not enrolled yet", code="not_enrolled", left=False)
            headers.update(
                signing.sign_request(
                    self.private_key, self.device_id, method, path, raw, now=self.server_now()
                )
            )
        try:
            resp = self.session.request(
                method, self.base_url + path, data=raw or None, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise TransientSyncError(
                f"cannot reach the server ({exc.__class__.__name__})",
                code="unreachable",
                left=not _never_connected(exc),
            ) from None
        self.bytes_sent += len(raw) + _request_head_len(resp.request)
        wire = getattr(resp.raw, "tell", None)  # bytes as they came off the socket (compressed)
        body_len = len(resp.content)
        self.bytes_received += (wire() if callable(wire) else 0) or body_len
        self.bytes_received += _response_head_len(resp)
        self._learn_offset(resp)
        return resp

    def _call(self, method: str, path: str, model: type[M], body: Any = None, *, signed: bool = True) -> M:
        resp = self._send(method, path, body, signed=signed)
        if resp.status_code == 401 and signed:
            code = _error_code(resp)
            if code == "stale_timestamp":  # our clock was off; the offset is now learned: one retry
                resp = self._send(method, path, body, signed=signed)
        _raise_for(resp, now=self.server_now())
        try:
            return model.model_validate(resp.json())
        except (ValueError, ValidationError):
            raise TransientSyncError(
                "the server sent an answer this agent can't read", code="bad_response"
            ) from None

    # -- calls ------------------------------------------------------------
    def enroll(self, code: str, public_key_b64: str, device_id: str) -> protocol.EnrollResponse:
        req = protocol.EnrollRequest(
            enrollment_code=code, device_public_key=public_key_b64, device_id=device_id
        )
        return self._call("POST", "/v1/enroll", protocol.EnrollResponse, req.model_dump(), signed=False)

    def push(self, prev_hash: str, records: list[dict[str, Any]]) -> protocol.BatchResponse:
        return self._call(
            "POST", "/v1/batches", protocol.BatchResponse, {"prev_hash": prev_hash, "records": records}
        )

    def leases(self, count: int, request_id: str | None = None) -> protocol.LeaseResponse:
        body: dict[str, Any] = {"count": count}
        if request_id is not None:
            body["request_id"] = request_id
        return self._call("POST", "/v1/leases", protocol.LeaseResponse, body)

    def catalog(self, since: int) -> protocol.CatalogResponse:
        return self._call("GET", f"/v1/catalog?since={since}", protocol.CatalogResponse)

    def heartbeat(self, req: protocol.HeartbeatRequest) -> protocol.HeartbeatResponse:
        return self._call(
            "POST", "/v1/heartbeat", protocol.HeartbeatResponse, req.model_dump(exclude_none=True)
        )

    def token_status(self, token: str) -> protocol.TokenStatus:
        from urllib.parse import quote

        return self._call("GET", f"/v1/tokens/{quote(token, safe='')}", protocol.TokenStatus)

    def directory(self, since: int) -> DirectoryPage:
        """One signed page of the device directory (devices enrolled after ``since``)."""
        return self._call("GET", f"/v1/directory?since={since}", DirectoryPage)

    def healthy(self) -> bool:
        try:
            return self._send("GET", "/healthz", signed=False).status_code == 200
        except SyncError:
            return False


def _never_connected(exc: requests.RequestException) -> bool:
    """The connection was never made (refused, no route, DNS, connect timeout): nothing was sent.
    Anything later (reset, read timeout) may have delivered the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0] if exc.args else None, "reason", None)
        never = urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError
        return isinstance(reason, never)
    return False


def _request_head_len(req: requests.PreparedRequest) -> int:
    """The request line and every header as sent: ours, the ones requests adds (User-Agent,
    Accept-Encoding, Connection, Content-Length) and Host, which http.client adds itself."""
    host = "" if "Host" in req.headers else f"Host: {urlsplit(req.url or '').netloc}\r\n"
    line = f"{req.method} {req.path_url} HTTP/1.1\r\n"
    return len(line) + len(host) + sum(len(k) + len(v) + 4 for k, v in req.headers.items()) + 2


def _response_head_len(resp: requests.Response) -> int:
    line = f"HTTP/1.1 {resp.status_code} {resp.reason}\r\n"
    return len(line) + sum(len(k) + len(v) + 4 for k, v in resp.headers.items()) + 2


def _error_code(resp: requests.Response) -> str:
    try:
        return str(resp.json().get("error", "error"))
    except ValueError:
        return "error"


def _retry_after(resp: requests.Response, now: float) -> float | None:
    """Seconds, or an HTTP date read against ``now`` (the server's clock as this client knows it)."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        return max(0.0, when - now)


def _raise_for(resp: requests.Response, now: float) -> None:
    status = resp.status_code
    if status < 400:
        return
    code = _error_code(resp)
    try:
        detail = str(resp.json().get("detail", ""))[:200]
    except ValueError:
        detail = ""
    msg = f"server answered {status} {code}" + (f": {detail}" if detail else "")
    if status == 429 or status >= 500 or status == 408:
        raise TransientSyncError(msg, code=code, retry_after_s=_retry_after(resp, now))
    if status == 401 and code == "stale_timestamp":
        raise TransientSyncError(msg, code=code)
    raise PermanentSyncError(msg, code=code)
