"""The lease storm's client: every device at once asks for one block, ``rounds`` times, each on its
own keep-alive connection, each request signed at send time; on 429/503 the agent's Backoff (never
shorter than Retry-After) and the same ask again.

It speaks HTTP/1.1 itself over asyncio streams instead of one ``requests`` thread per device: a
storm's kiosks are separate machines, so what the bench measures should be the server's cost, not
a Python client's. Measured here against a do-nothing endpoint (bench/bare_server.py), 200 devices
on 2 shared cores: threads with ``requests`` reached ~360 answers/s, using a whole core; this client
about twice that.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bench.kiosks import SimKiosk
from sync.engine import Backoff

LEASES = "/v1/leases"
SHED = (429, 503)
ASK = b'{"count":1}'


@dataclass
class LeaseResult:
    wall_s: float = 0.0
    leases: list[tuple[int, int]] = field(default_factory=list)  # (start, end) granted
    status: Counter[int] = field(default_factory=Counter)  # 0: connection error or timeout
    latencies: list[float] = field(default_factory=list)  # of the 200 answers
    failed: int = 0  # asks given up (deadline, another 4xx)


class _Conn:
    """One keep-alive HTTP/1.1 connection (reopened after an error)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(
        self, path: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        got = {}
        for f in fields:
            if f:
                k, _, v = f.partition(":")
                got[k.strip().lower()] = v.strip()
        data = await self.reader.readexactly(int(got.get("content-length", "0")))
        if got.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split(" ", 2)[1]), got, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _retry_after(headers: dict[str, str]) -> float | None:
    try:
        return max(0.0, float(headers["retry-after"]))
    except (KeyError, ValueError):
        return None


async def _ask(conn: _Conn, kiosk: SimKiosk, deadline: float, out: LeaseResult) -> None:
    """One block for ``kiosk``, asked again as the agent would until granted or refused."""
    backoff = Backoff()
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            headers = kiosk.signed_headers("POST", LEASES, ASK, None)
            status, got, data = await asyncio.wait_for(conn.post(LEASES, ASK, headers), timeout=15)
        except (OSError, asyncio.IncompleteReadError, ValueError):  # TimeoutError is an OSError
            conn.close()
            out.status[0] += 1
            await asyncio.sleep(backoff.next_delay())
            continue
        out.status[status] += 1
        if status == 200:
            out.latencies.append(time.perf_counter() - t0)
            out.leases.extend((le["start_serial"], le["end_serial"]) for le in json.loads(data)["leases"])
            return
        if status not in SHED and status < 500:
            break
        await asyncio.sleep(backoff.next_delay(_retry_after(got)))
    out.failed += 1


async def _storm(url: str, kiosks: list[SimKiosk], rounds: int, deadline_s: float) -> LeaseResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conns = [_Conn(host, port) for _ in kiosks]
    for c in conns:  # connected before the storm starts, as the threads' sessions were
        c.reader, c.writer = await asyncio.open_connection(host, port)
    out = LeaseResult()
    deadline = time.monotonic() + deadline_s

    async def one(conn: _Conn, kiosk: SimKiosk) -> None:
        for _ in range(rounds):
            await _ask(conn, kiosk, deadline, out)

    t0 = time.monotonic()
    await asyncio.gather(*(one(c, k) for c, k in zip(conns, kiosks, strict=True)))
    out.wall_s = time.monotonic() - t0
    for c in conns:
        c.close()
    return out


def lease_storm(url: str, kiosks: list[SimKiosk], rounds: int, deadline_s: float = 120.0) -> LeaseResult:
    """Every kiosk at once (one connection each) asks ``rounds`` times for one block."""
    return asyncio.run(_storm(url, kiosks, rounds, deadline_s))
