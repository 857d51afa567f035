"""A recording fake of the central server at the HTTP edge: a ``requests`` transport adapter
mounted on the session the engine's :class:`SyncClient` is given (as httpx's MockTransport is
for httpx). Nothing of the engine or the outbox is replaced; every byte goes through the real
client (signing, gzip, status mapping, Retry-After).

It keeps one device's chain the way the real server does (accepted / duplicate / gap / fork,
business rejections kept on the chain), hands out signed lease blocks, answers the catalog and
heartbeats, records every request, and plays scripted faults first.
"""

from __future__ import annotations

import email.utils
import gzip
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from sync.wire import canonical, signing

BASE = "http://central.test"


@dataclass
class Fault:
    """What the next matching request gets instead of (or after) the normal answer."""

    path: str = "/v1/batches"
    status: int | None = None  # answer this status and body, do nothing
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=lambda: {"error": "unavailable", "detail": "scripted"})
    raises: type[requests.RequestException] | None = None  # the connection fails ...
    after_commit: bool = False  # ... after the server has done the work (the answer is lost)


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    timeout: Any


class FakeCentral(BaseAdapter):
    def __init__(
        self, device_id: str, *, block_size: int = 100, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__()
        self.device_id = device_id
        self.block_size = block_size
        self.clock = clock
        self.sign_key = Ed25519PrivateKey.generate()
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self.chain: list[tuple[str, dict[str, Any]]] = []  # (hash, wire record), seq order
        self.reject: Callable[[dict[str, Any]], str | None] = lambda rec: None  # a business rule
        self.answer_all: str | None = None  # e.g. "gap": every record gets this transient reason
        self.catalog: dict[str, Any] | None = None
        self.next_lease = 1
        self.next_serial = 1

    def session(self) -> requests.Session:
        s = requests.Session()
        s.mount(BASE, self)
        return s

    def batches(self) -> list[list[int]]:
        """The seqs of every batch POSTed, in order."""
        return [[r["seq"] for r in s.body["records"]] for s in self.seen if s.path == "/v1/batches"]

    # -- the transport -------------------------------------------------------
    def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:  # type: ignore[override]
        url = urlsplit(request.url or "")
        raw = request.body or b""
        raw = raw.encode() if isinstance(raw, str) else raw
        if request.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        seen = Seen(
            request.method or "",
            url.path,
            json.loads(raw) if raw else None,
            dict(request.headers),
            kw.get("timeout"),
        )
        self.seen.append(seen)
        fault = next((f for f in self.faults if f.path == url.path), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.status is not None:
                return self._response(request, fault.status, fault.body, fault.headers)
            if fault.raises is not None and not fault.after_commit:
                raise fault.raises("scripted")
        status, body = self._answer(seen, parse_qs(url.query))
        if fault is not None and fault.raises is not None:
            raise fault.raises("scripted, after the commit")
        return self._response(request, status, body, {})

    def close(self) -> None:
        pass

    def _response(
        self, request: requests.PreparedRequest, status: int, body: Any, headers: dict[str, str]
    ) -> requests.Response:
        resp = requests.Response()
        resp.status_code = status
        resp.reason = HTTPStatus(status).phrase
        resp.headers = CaseInsensitiveDict(
            {"Content-Type": "application/json", "Date": email.utils.formatdate(self.clock(), usegmt=True)}
        )
        resp.headers.update(headers)
        resp.raw = io.BytesIO(json.dumps(body).encode())
        resp.url = request.url or ""
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    # -- the server's side ---------------------------------------------------
    def _answer(self, seen: Seen, query: dict[str, list[str]]) -> tuple[int, Any]:
        if seen.path == "/v1/batches":
            return 200, self._batch(seen.body)
        if seen.path == "/v1/leases":
            return 200, self._leases(int(seen.body["count"]))
        if seen.path == "/v1/catalog":
            since = int(query["since"][0])
            version = self.catalog["version"] if self.catalog else 0
            return 200, {"version": version, "catalog": self.catalog if since < version else None}
        if seen.path == "/v1/heartbeat":
            return 200, {
                "server_time_ms": int(self.clock() * 1000),
                "head": self.head(),
                "catalog_version": self.catalog["version"] if self.catalog else 0,
                "flagged": False,
                "messages": [],
            }
        return 404, {"error": "not_found", "detail": seen.path}

    def head(self) -> dict[str, Any]:
        if not self.chain:
            return {"seq": 0, "hash": canonical.genesis_hash(self.device_id)}
        return {"seq": len(self.chain), "hash": self.chain[-1][0]}

    def _batch(self, body: dict[str, Any]) -> dict[str, Any]:
        prev, acks = body["prev_hash"], []
        for rec in body["records"]:
            seq = rec["seq"]
            h = canonical.record_hash({**{k: v for k, v in rec.items() if k != "sig"}, "prev_hash": prev})
            links, prev = prev == self.head()["hash"], h
            if self.answer_all is not None:
                acks.append(self._rejected(seq, self.answer_all))
            elif seq <= len(self.chain):
                same = self.chain[seq - 1][0] == h
                acks.append({"seq": seq, "status": "duplicate"} if same else self._rejected(seq, "fork"))
            elif seq == len(self.chain) + 1 and links:
                self.chain.append((h, rec))  # a business rejection stays on the chain too
                reason = self.reject(rec)
                acks.append(self._rejected(seq, reason) if reason else {"seq": seq, "status": "accepted"})
            else:
                acks.append(self._rejected(seq, "gap"))
        return {"acks": acks, "head": self.head(), "flagged": False}

    @staticmethod
    def _rejected(seq: int, reason: str) -> dict[str, Any]:
        return {"seq": seq, "status": "rejected", "reason": reason}

    def _leases(self, count: int) -> dict[str, Any]:
        leases = []
        for _ in range(count):
            start, end = self.next_serial, self.next_serial + self.block_size
            sig = signing.sign_lease(self.sign_key, self.device_id, self.next_lease, start, end)
            leases.append({"lease_id": self.next_lease, "start_serial": start, "end_serial": end, "sig": sig})
            self.next_lease += 1
            self.next_serial = end
        return {"block_size": self.block_size, "leases": leases}
