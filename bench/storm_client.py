"""The storm's client side: many simulated kiosks pushing their backlogs the way the agent does.

At most C requests are in flight (C worker threads, one ``requests.Session`` each); a kiosk that
is backing off holds no connection, so the server always faces up to C callers while any kiosk is
ready. Each kiosk behaves like the agent's sync client and engine: 15 s timeout, every request
signed at send time, on 429/503 the agent's :class:`sync.engine.Backoff` (full jitter, never
shorter than ``Retry-After``) then the same batch again, the same on a timeout, a connection error
or another 5xx; the next batch as soon as one is acked; a reject or another 4xx stops the kiosk.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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


def retry_after_s(resp: requests.Response) -> float | None:
    try:
        return max(0.0, float(resp.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _error_code(resp: requests.Response) -> str:
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


def attempt(http: requests.Session, url: str, run: KioskRun, tally: Tally, timeout_s: float) -> float | None:
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
        resp = http.post(url + BATCHES, data=batch.body, headers=headers, timeout=timeout_s)
    except requests.Timeout:
        tally.timeline.append((start, time.monotonic(), 0, None))
        tally.timeouts += 1
        run.history[-1] = (run.history[-1][0], "timeout")
        return run.backoff.next_delay()
    except requests.RequestException as exc:
        tally.timeline.append((start, time.monotonic(), 0, None))
        tally.conn_errors += 1
        cause = exc.__context__ or exc
        tally.conn_error_kinds[f"{type(exc).__name__}: {type(cause).__name__}"] += 1
        run.history[-1] = (run.history[-1][0], "connection")
        return run.backoff.next_delay()
    elapsed = time.perf_counter() - t0
    run.history[-1] = (run.history[-1][0], str(resp.status_code))
    tally.status[resp.status_code] += 1
    retry_after = retry_after_s(resp)
    tally.timeline.append((start, time.monotonic(), resp.status_code, retry_after))
    if resp.status_code in SHED and retry_after is not None:
        run.shed += 1
        run.told = (time.monotonic(), retry_after)
        tally.shed[resp.status_code] += 1
        tally.retry_after.append(retry_after)
        return run.backoff.next_delay(retry_after)
    tally.latencies.append(elapsed)
    if resp.status_code >= 500 or resp.status_code == 429:
        return run.backoff.next_delay(retry_after)
    if resp.status_code != 200:
        tally.errors[f"{resp.status_code} {_error_code(resp)}"] += 1
        run.failed = str(resp.status_code)
        return None
    return _apply_acks(run, batch, resp.json(), tally)


def _worker(sched: Schedule, runs: list[KioskRun], url: str, tally: Tally, timeout_s: float) -> None:
    with session() as http:
        while (i := sched.take()) is not None:
            delay = attempt(http, url, runs[i], tally, timeout_s)
            if delay is None:
                sched.finish()
            else:
                sched.put(i, time.monotonic() + delay)


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
