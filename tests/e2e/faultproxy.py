"""A fault-injecting HTTP/1.1 proxy for tests and benches, on loopback only.

It sits between the agent and a real server and, per request, does what a
schedule says (:class:`Fault`): pass it on, drop the connection before
forwarding, stall (hold the request so the client times out, optionally
delivering it late), cut the response after the server has committed (all of
it, or after sending part of it), answer a 5xx or a 429 with ``Retry-After``
itself, or hold the server's answer for a while (so a test can kill the agent
between the server's commit and the agent's ack). It can also throttle both
directions (bits per second plus one-way latency) and counts the real TCP
payload bytes each way.

asyncio in one background thread; bounded: at most ``max_conns`` connections,
heads of 64 KiB, bodies of 32 MiB, every upstream read under a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MAX_HEAD = 64 * 1024
MAX_BODY = 32 * 1024 * 1024
UPSTREAM_TIMEOUT_S = 60.0
SEGMENT = 1460  # TCP payload per segment, for the throttled link's header overhead
SEGMENT_OVERHEAD = 40  # IPv4 + TCP headers per segment

KINDS = ("pass", "drop", "stall", "stall_forward", "cut", "partial", "error", "ratelimit", "hold")


@dataclass(frozen=True)
class Fault:
    """What to do with one request.

    - ``pass``: forward it and relay the answer.
    - ``drop``: close the client's connection; the server never sees the request.
    - ``stall``: hold the request ``seconds`` (the client times out), then close; never forwarded.
    - ``stall_forward``: hold it ``seconds``, then forward it anyway (a late delivery) and
      throw the answer away.
    - ``cut``: forward it, read the server's whole answer, close without sending any of it.
    - ``partial``: the same, but send the first ``keep`` fraction of the answer's bytes first.
    - ``error``: answer ``status`` (5xx) without forwarding.
    - ``ratelimit``: answer 429 with ``Retry-After: retry_after`` without forwarding.
    - ``hold``: forward it, read the answer, signal :meth:`FaultProxy.wait_held`, wait
      ``seconds``, then send it.
    """

    kind: str = "pass"
    seconds: float = 0.0
    status: int = 503
    retry_after: int = 1
    keep: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}")


PASS = Fault()


@dataclass(frozen=True)
class Seen:
    index: int
    method: str
    path: str
    fault: str
    upstream_status: int | None  # the server's status when the request reached it


Schedule = Callable[[int, str, str], Fault]


def from_list(faults: Iterable[Fault], *, only: str | None = None) -> Schedule:
    """A schedule that hands out ``faults`` in order (to requests whose path starts with
    ``only``, when given) and passes everything after them."""
    pending = list(faults)
    lock = threading.Lock()

    def pick(_index: int, _method: str, path: str) -> Fault:
        if only is not None and not path.startswith(only):
            return PASS
        with lock:
            return pending.pop(0) if pending else PASS

    return pick


# Stalls cost real time (the client's timeout), so they are drawn less often than the rest.
WEIGHTS = {
    "pass": 4,
    "drop": 2,
    "stall": 1,
    "stall_forward": 1,
    "cut": 3,
    "partial": 3,
    "error": 2,
    "ratelimit": 2,
}


def random_faults(rng: random.Random, n: int, *, stall_s: float) -> list[Fault]:
    """``n`` faults drawn from every kind (``pass`` included, so faults land on various requests)."""
    out = []
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        out.append(
            Fault(
                kind,
                seconds=stall_s,
                status=rng.choice([500, 502, 503, 504]),
                retry_after=rng.choice([1, 5, 30, 120]),
                keep=rng.choice([0.0, 0.1, 0.5, 0.9, 0.99]),
            )
        )
    return out


@dataclass
class _Link:
    """One direction of a throttled link: serialisation at ``bps`` then ``latency_s``."""

    bps: float
    latency_s: float
    free_at: float = 0.0

    def arrival(self, now: float, nbytes: int) -> float:
        segments = max(1, -(-nbytes // SEGMENT))
        start = max(now, self.free_at)
        self.free_at = start + (nbytes + segments * SEGMENT_OVERHEAD) * 8 / self.bps if self.bps else start
        return self.free_at + self.latency_s


@dataclass
class _Message:
    head: bytes
    body: bytes
    first_line: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def raw(self) -> bytes:
        return self.head + self.body


async def _read_message(reader: asyncio.StreamReader, *, response_to: str | None = None) -> _Message | None:
    """One HTTP/1.1 message (Content-Length or chunked body); None on a clean EOF before it."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ConnectionError("connection closed inside a message head") from None
    except asyncio.LimitOverrunError:
        raise ConnectionError("message head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = b""
    no_body = response_to == "HEAD" or (
        response_to is not None and lines[0].split(" ")[1:2] in (["204"], ["304"])
    )
    if no_body:
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size > MAX_BODY:
                raise ConnectionError("chunk too large")
            chunk = await reader.readexactly(size + 2)
            parts.append(chunk)
            if size == 0:
                break
        body = b"".join(parts)
    else:
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            raise ConnectionError("body too large")
        body = await reader.readexactly(length)
    return _Message(head, body, lines[0], headers)


def _synth(status: int, code: str, extra: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"error": code, "detail": "injected by the test proxy"}).encode()
    reason = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}.get(
        status, "Service Unavailable"
    )
    lines = [f"HTTP/1.1 {status} {reason}", "content-type: application/json", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FaultProxy:
    """``with FaultProxy(upstream_port, schedule=...) as proxy:`` then point the agent at ``proxy.url``."""

    def __init__(
        self,
        upstream_port: int,
        *,
        schedule: Schedule | None = None,
        bps: float = 0.0,
        latency_s: float = 0.0,
        max_conns: int = 64,
    ) -> None:
        self.upstream_port = upstream_port
        self.schedule: Schedule = schedule or (lambda _i, _m, _p: PASS)
        self.offline = False  # refuse every connection (accept, then close at once)
        self.bps = bps
        self.latency_s = latency_s
        self.max_conns = max_conns
        self.bytes_up = 0  # client -> proxy, HTTP bytes (heads and bodies) as they came over TCP
        self.bytes_down = 0  # proxy -> client
        self.head_bytes_up = 0  # of which request lines and headers
        self.head_bytes_down = 0  # of which status lines and headers (answers relayed whole)
        self.requests = 0
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._held = threading.Condition(self._lock)
        self._held_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control (any thread) --------------------------------------------------
    def set_schedule(self, schedule: Schedule | Iterable[Fault], *, only: str | None = None) -> None:
        self.schedule = schedule if callable(schedule) else from_list(schedule, only=only)

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_up = self.bytes_down = self.head_bytes_up = self.head_bytes_down = 0

    def held_count(self) -> int:
        with self._lock:
            return self._held_count

    def wait_held(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` answers in total have been held (``hold`` faults)."""
        with self._held:
            return self._held.wait_for(lambda: self._held_count >= count, timeout=timeout_s)

    def start(self) -> FaultProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_HEAD)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=run, name="faultproxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the proxy ---------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._conns += 1
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        links = (_Link(self.bps, self.latency_s), _Link(self.bps, self.latency_s))
        first = True
        try:
            if self.offline or self._conns > self.max_conns:
                return
            while True:
                req = await _read_message(reader)
                if req is None:
                    return
                with self._lock:
                    self.bytes_up += len(req.raw)
                    self.head_bytes_up += len(req.head)
                    index = self.requests
                    self.requests += 1
                method, _, rest = req.first_line.partition(" ")
                path = rest.rpartition(" ")[0]
                fault = self.schedule(index, method, path)
                if self.bps or self.latency_s:
                    now = time.monotonic()
                    # A new connection costs one round trip (the TCP handshake) first.
                    extra = 2 * self.latency_s if first else 0.0
                    await asyncio.sleep(max(0.0, links[0].arrival(now + extra, len(req.raw)) - now))
                first = False
                note = self._noter(index, method, path, fault.kind)
                status, keep_alive = await self._apply(fault, req, method, writer, up, links, note)
                note(status)
                if keep_alive is None:
                    return
                up = keep_alive
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            OSError,
        ):
            return
        except asyncio.CancelledError:  # stopping: end quietly (3.11 logs a task that ends cancelled)
            return
        finally:
            self._conns -= 1
            self._tasks.discard(task)
            if up is not None:
                up[1].close()
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    def _noter(self, index: int, method: str, path: str, fault: str) -> Callable[[int | None], None]:
        """Records a request in `seen` once, before the client can read an answer: a test that has its
        answer always finds the request there."""
        done = False

        def note(status: int | None) -> None:
            nonlocal done
            if not done:
                done = True
                with self._lock:
                    self.seen.append(Seen(index, method, path, fault, status))

        return note

    async def _forward(
        self, req: _Message, method: str, up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None
    ) -> tuple[_Message, tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        for attempt in (0, 1):  # a kept-alive upstream connection the server closed: reconnect once
            if up is None:
                up = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.upstream_port, limit=MAX_HEAD), 10
                )
            try:
                up[1].write(req.raw)
                await up[1].drain()
                resp = await asyncio.wait_for(_read_message(up[0], response_to=method), UPSTREAM_TIMEOUT_S)
            except (ConnectionError, asyncio.IncompleteReadError):
                up[1].close()
                up = None
                if attempt:
                    raise
                continue
            if resp is None:
                up[1].close()
                up = None
                if attempt:
                    raise ConnectionError("upstream closed")
                continue
            return resp, up
        raise ConnectionError("unreachable")

    async def _send(self, writer: asyncio.StreamWriter, data: bytes, link: _Link) -> None:
        if self.bps or self.latency_s:
            now = time.monotonic()
            await asyncio.sleep(max(0.0, link.arrival(now, len(data)) - now))
        with self._lock:  # counted before the write: the client may read it before drain() returns
            self.bytes_down += len(data)
        writer.write(data)
        await writer.drain()

    async def _apply(
        self,
        fault: Fault,
        req: _Message,
        method: str,
        writer: asyncio.StreamWriter,
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None,
        links: tuple[_Link, _Link],
        note: Callable[[int | None], None],
    ) -> tuple[int | None, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
        """(the server's status if it saw the request, the upstream to keep or None to close).
        ``note(status)`` is called before anything is written back to the client."""
        kind = fault.kind
        if kind == "drop":
            return None, None
        if kind == "stall":
            await asyncio.sleep(fault.seconds)
            return None, None
        if kind == "error":
            note(None)
            await self._send(writer, _synth(fault.status, "injected"), links[1])
            return None, None
        if kind == "ratelimit":
            note(None)
            await self._send(
                writer, _synth(429, "rate_limited", {"retry-after": str(fault.retry_after)}), links[1]
            )
            return None, None
        if kind == "stall_forward":
            await asyncio.sleep(fault.seconds)
            resp, up = await self._forward(req, method, up)
            up[1].close()
            return int(resp.first_line.split(" ")[1]), None
        resp, up = await self._forward(req, method, up)
        status = int(resp.first_line.split(" ")[1])
        if kind == "cut":
            up[1].close()
            return status, None
        if kind == "partial":
            up[1].close()
            note(status)
            n = int(len(resp.raw) * fault.keep)
            if n:
                await self._send(writer, resp.raw[:n], links[1])
            return status, None
        if kind == "hold":
            with self._held:
                self._held_count += 1
                self._held.notify_all()
            await asyncio.sleep(fault.seconds)
        with self._lock:
            self.head_bytes_down += len(resp.head)
        note(status)
        await self._send(writer, resp.raw, links[1])
        if resp.headers.get("connection", "").lower() == "close":
            up[1].close()
            return status, None
        return status, up
