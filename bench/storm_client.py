"""The storm's client side: many simulated kiosks pushing their backlogs the way the agent does.

At most C requests are in flight (C worker threads, one keep-alive connection each); a kiosk that
is backing off holds no connection, so the server always faces up to C callers while any kiosk is
ready. Each kiosk behaves like the agent's sync client and engine: 15 s timeout, every request
signed at send time, on 429/503 the agent's :class:`sync.engine.Backoff` (``Retry-After`` plus up
to a second; full jitter when the server named no time) then the same batch again, the same on a
timeout, a connection error or another 5xx; the next batch as soon as one is acked; a reject or
another 4xx stops the kiosk.

The threads speak HTTP/1.1 with ``http.client`` rather than ``requests``: a storm's kiosks are
separate machines, and on the bench's 2 shared cores every millisecond the client spends is one
the server's workers do not get. A py-spy profile put 92% of this client's CPU in requests'
preparation, proxy and adapter layers (~2.8 ms a request); ``http.client`` does the same exchange
(keep-alive, a dropped idle connection reopened before use, as urllib3 does) for a fraction.
"""

from __future__ import annotations

import gzip
import heapq
import http.client
import json
import random
import select
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from bench.kiosks import Batch, SimKiosk
from sync.engine import Backoff

BATCHES = "/v1/batches"
SHED = (429, 503)


@dataclass
class KioskRun:
    """One kiosk's progress through its backlog (touched only by the worker holding it)."""

    kiosk: SimKiosk
    backoff: Backoff
    next: int = 0  # index of the next batch to send
    sent: int = 0  # POSTs, resends included
    shed: int = 0  # of them answered 429/503 with a Retry-After (turned away before any work)
    acked_seq: int = 0
    finals: dict[int, str] = field(default_factory=dict)  # seq -> final token from the acks
    failed: str | None = None
    history: list[tuple[float, str]] = field(default_factory=list)  # (monotonic start, outcome)
    told: tuple[float, float] | None = None  # (monotonic answer time, Retry-After) of the last shed
    early: int = 0  # attempts made sooner after a shed than its Retry-After

    @property
    def done(self) -> bool:
        return self.failed is not None or self.next >= len(self.kiosk.batches)


@dataclass
class Tally:
    """What one worker saw; merged at the end."""

    status: Counter[int] = field(default_factory=Counter)
    shed: Counter[int] = field(default_factory=Counter)  # 429/503 answers with a Retry-After
    retry_after: list[float] = field(default_factory=list)  # their Retry-After
    latencies: list[float] = field(default_factory=list)  # of admitted requests (not shed)
    timeouts: int = 0
    conn_errors: int = 0
    conn_error_kinds: Counter[str] = field(default_factory=Counter)  # exception class names
    accepted: int = 0
    duplicate: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # 4xx other than 429: "401 bad_signature"
    # Every request: (monotonic start, monotonic end, HTTP status or 0 for a timeout or a
    # connection error, Retry-After or None), for storm.py --timeline.
    timeline: list[tuple[float, float, int, float | None]] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.status.update(other.status)
        self.shed.update(other.shed)
        self.retry_after += other.retry_after
        self.latencies += other.latencies
        self.timeouts += other.timeouts
        self.conn_errors += other.conn_errors
        self.conn_error_kinds.update(other.conn_error_kinds)
        self.accepted += other.accepted
        self.duplicate += other.duplicate
        self.rejected.update(other.rejected)
        self.errors.update(other.errors)
        self.timeline += other.timeline


class Schedule:
    """A heap of (ready_at, kiosk index) that C workers take from until all are done or the deadline."""

    def __init__(self, n: int, deadline_s: float) -> None:
        self._heap: list[tuple[float, int]] = []
        self._open = n
        self._cond = threading.Condition()
        self._deadline_s = deadline_s
        self._timing = False  # a worker is waiting for the heap's top to become ready
        self.deadline = float("inf")  # set by release()
        self.started = 0.0

    def release(self, spread_s: float, rng: random.Random) -> None:
        """Make every kiosk ready now (or spread uniformly over ``spread_s``)."""
        with self._cond:
            self.started = time.monotonic()
            self.deadline = self.started + self._deadline_s
            self._heap = [(self.started + rng.uniform(0, spread_s), i) for i in range(self._open)]
            heapq.heapify(self._heap)
            self._cond.notify_all()

    def take(self) -> int | None:
        """The next ready kiosk. One idle worker at a time watches the clock for the heap's top
        (waking at most every 50 ms); the others sleep until notified, so a thousand idle
        threads do not all wake for every appointment (that cost more CPU than the server)."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._open == 0 or now >= self.deadline:
                    self._cond.notify_all()
                    return None
                if self._heap and self._heap[0][0] <= now:
                    self._cond.notify()  # another may be ready too, or must take over the clock
                    return heapq.heappop(self._heap)[1]
                if self._timing:
                    self._cond.wait(5.0)
                    continue
                self._timing = True
                try:
                    wait = self._heap[0][0] - now if self._heap else self.deadline - now
                    self._cond.wait(min(wait, self.deadline - now, 0.05))
                finally:
                    self._timing = False

    def put(self, i: int, at: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, i))
            self._cond.notify()

    def finish(self) -> None:
        with self._cond:
            self._open -= 1
            if self._open == 0:
                self._cond.notify_all()


def session() -> requests.Session:
    """One keep-alive connection, no retries of its own (the caller retries as the agent does)."""
    s = requests.Session()
    s.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0))
    return s


@dataclass
class Answer:
    status: int
    retry_after: float | None
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One keep-alive HTTP/1.1 connection, no retries of its own (the caller retries as the agent
    does); reopened after an error, and before a request when the server closed it while idle."""

    def __init__(self, url: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout_s = parts.hostname or "127.0.0.1", parts.port, timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        conn = self._usable()
        try:
            conn.request("POST", path, body=body, headers={**headers, "Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            data = resp.read()
        except BaseException:
            self.close()
            raise
        if resp.will_close:
            self.close()
        if resp.getheader("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return Answer(resp.status, retry_after_s(resp.getheader("Retry-After")), data)

    def _usable(self) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None:
            idle = select.poll()  # readable while idle: the server closed it (poll: no fd limit)
            idle.register(conn.sock, select.POLLIN)
            if idle.poll(0):
                self.close()
                conn = None
        if conn is None:
            conn = self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def retry_after_s(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def _error_code(resp: Answer) -> str:
    try:
        return str(resp.json().get("error", ""))
    except ValueError:
        return ""


def _apply_acks(run: KioskRun, batch: Batch, doc: dict[str, Any], tally: Tally) -> float | None:
    acked = set()
    for ack in doc["acks"]:
        if ack["status"] == "rejected":
            tally.rejected[str(ack.get("reason"))] += 1
            continue
        tally.accepted += ack["status"] == "accepted"
        tally.duplicate += ack["status"] == "duplicate"
        acked.add(ack["seq"])
        if ack.get("final_token"):
            run.finals[ack["seq"]] = ack["final_token"]
    if acked != set(range(batch.first_seq, batch.last_seq + 1)):
        run.failed = "rejected"
        return None
    run.acked_seq = batch.last_seq
    run.next += 1
    run.backoff.reset()
    return None if run.done else 0.0


def attempt(conn: Connection, run: KioskRun, tally: Tally) -> float | None:
    """Send the kiosk's next batch once; the delay before its next attempt, or None when it is done."""
    batch = run.kiosk.batches[run.next]
    headers = run.kiosk.signed_headers("POST", BATCHES, batch.body, batch.encoding)
    run.sent += 1
    t0 = time.perf_counter()
    start = time.monotonic()
    run.history.append((start, "?"))
    if run.told is not None:
        run.early += time.monotonic() - run.told[0] < run.told[1]
        run.told = None
    try:
        resp = conn.post(BATCHES, batch.body, headers)
    except TimeoutError:
        tally.timeline.append((start, time.monotonic(), 0, None))
        tally.timeouts += 1
        run.history[-1] = (run.history[-1][0], "timeout")
        return run.backoff.next_delay()
    except (OSError, http.client.HTTPException) as exc:
        tally.timeline.append((start, time.monotonic(), 0, None))
        tally.conn_errors += 1
        tally.conn_error_kinds[type(exc).__name__] += 1
        run.history[-1] = (run.history[-1][0], "connection")
        return run.backoff.next_delay()
    elapsed = time.perf_counter() - t0
    run.history[-1] = (run.history[-1][0], str(resp.status))
    tally.status[resp.status] += 1
    retry_after = resp.retry_after
    tally.timeline.append((start, time.monotonic(), resp.status, retry_after))
    if resp.status in SHED and retry_after is not None:
        run.shed += 1
        run.told = (time.monotonic(), retry_after)
        tally.shed[resp.status] += 1
        tally.retry_after.append(retry_after)
        return run.backoff.next_delay(retry_after)
    tally.latencies.append(elapsed)
    if resp.status >= 500 or resp.status == 429:
        return run.backoff.next_delay(retry_after)
    if resp.status != 200:
        tally.errors[f"{resp.status} {_error_code(resp)}"] += 1
        run.failed = str(resp.status)
        return None
    return _apply_acks(run, batch, resp.json(), tally)


def _worker(sched: Schedule, runs: list[KioskRun], url: str, tally: Tally, timeout_s: float) -> None:
    conn = Connection(url, timeout_s)
    try:
        while (i := sched.take()) is not None:
            delay = attempt(conn, runs[i], tally)
            if delay is None:
                sched.finish()
            else:
                sched.put(i, time.monotonic() + delay)
    finally:
        conn.close()


@dataclass
class FireResult:
    wall_s: float
    tally: Tally
    runs: list[KioskRun]
    started: float = 0.0  # monotonic time the kiosks were released (the timeline's zero)


def fire(
    url: str,
    kiosks: list[SimKiosk],
    concurrency: int,
    *,
    timeout_s: float = 15.0,
    deadline_s: float = 600.0,
    spread_s: float = 0.0,
    backoff_base_s: float = 2.0,
    backoff_cap_s: float = 900.0,
    seed: int = 1,
) -> FireResult:
    """Push every kiosk's backlog with ``concurrency`` connections until all are acked or the deadline."""
    rng = random.Random(seed)
    runs = [KioskRun(k, Backoff(backoff_base_s, backoff_cap_s, random.Random(rng.random()))) for k in kiosks]
    sched = Schedule(len(runs), deadline_s)
    tallies = [Tally() for _ in range(min(concurrency, len(runs)))]
    threads = [
        threading.Thread(target=_worker, args=(sched, runs, url, t, timeout_s), daemon=True) for t in tallies
    ]
    for th in threads:
        th.start()
    sched.release(spread_s, rng)
    for th in threads:
        th.join()
    wall = time.monotonic() - sched.started
    total = Tally()
    for t in tallies:
        total.merge(t)
    return FireResult(wall, total, runs, sched.started)


def send_in_turn(url: str, kiosks: list[SimKiosk], timeout_s: float = 60.0) -> Counter[str]:
    """Every kiosk's batches once, one request at a time on one connection: the ack statuses."""
    statuses: Counter[str] = Counter()
    with session() as http:
        for kiosk in kiosks:
            for b in kiosk.batches:
                headers = kiosk.signed_headers("POST", BATCHES, b.body, b.encoding)
                resp = http.post(url + BATCHES, data=b.body, headers=headers, timeout=timeout_s)
                if resp.status_code != 200:
                    statuses[f"http {resp.status_code}"] += b.count
                    continue
                statuses.update(a["status"] for a in resp.json()["acks"])
    return statuses
