"""Admission control: the first thing a request meets, before its body is read, its signature
checked or a database connection taken.

Per worker, at most ``max_in_flight`` requests run at once and at most a short queue waits for a
slot: as many as the worker drains in ``queue_wait_s`` at its measured rate (its slots over the
mean time a request holds one). A request beyond that is answered at once with 429 and a
``Retry-After`` that gives it an appointment: shed callers are spaced out at the drain rate
behind the work already admitted (and behind the callers shed before them), with +-20% jitter,
so a statewide storm of kiosks comes back as a stream the server can take instead of a wave.
A request still waiting after ``QUEUE_EXPIRY`` x ``queue_wait_s`` (the rate it was queued at was
wrong: a first burst), and at least a second (the shortest appointment), is turned away the same
way when its turn comes, before any work.

The appointments are spaced a little ahead of what the worker drains while it turns callers
away: during a burst (each 429 costs the event loop, and on one machine the callers' CPU too)
every request holds its slot longer, and spacing at that pace left the worker idle between the
appointments for the rest of the storm (bench/README.md "pace"). Spacing at what its CPU alone
would allow (one over its process CPU time per request finished) is too far ahead when the
turning away goes on (1,000 callers at once, a shared machine): callers come back too soon, are
turned away again, and the agent's backoff grows with each time (a kiosk turned away five times
waits up to a minute), a tail of stragglers. So the pace is :data:`PACE_LEAD` times the slots
over the mean hold, but never above the CPU's rate. The whole seconds of ``Retry-After`` are
rounded down: the agent adds up to a second (its resolution), so it comes back within the second
that holds its appointment, not after it.

A *light* request (a POST whose declared body is at most :data:`LIGHT_BODY_BYTES`: a lease
request, a heartbeat, an enrollment) waits in the queue whenever the worker drains the queue
ahead of it within ``queue_wait_s``, without the per-slot cap that guards against a drain rate
measured on small requests being optimistic for big batches (before the rate is measured at
all, light requests get that cap and batches only the slots): a lease storm of 200 devices is
queued for a few tens of ms instead of being sent away for a second or more, and the enrollments
of a fresh server's first minute are not turned away.

The paths guarded are the kiosks' and LSPs' API (``/v1/...``); health checks always pass.
The counters live in the worker's event loop (one thread): no lock is needed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from server_stub.bodies import ASGIApp, Receive, Scope, Send

GUARDED_PREFIX = "/v1/"
QUEUE_SLOTS = 4  # the queue holds at most this many requests per slot
QUEUE_EXPIRY = 2.0  # a request queued longer than this many times queue_wait_s is turned away
PACE_LEAD = 1.5  # appointments at most this far ahead of the measured drain (see the module)
LIGHT_BODY_BYTES = 4096  # a POST declaring at most this much is light (a batch is tens of KB)
MAX_RETRY_AFTER_S = 900  # the agent's backoff cap: never ask a kiosk to wait longer


@dataclass
class DrainRate:
    """Requests a worker finishes per second when busy, by Little's law: its slots over the mean
    time a request holds one (a moving average). Light load only makes it optimistic, and the
    mean catches up within a few dozen requests once the worker is busy. :meth:`pace` spaces
    the appointments a little ahead of it, within one over the process CPU time per request
    finished (see the module)."""

    slots: int
    # Before anything is measured: optimistic, so the first appointments are too close rather
    # than too far (a caller back too soon is turned away again in a few ms; one sent away too
    # long leaves the worker idle while it waits).
    mean_s: float = 0.1
    weight: float = 0.2
    measured: int = 0  # requests finished so far
    # The process CPU clock when each of the last requests finished (4 per slot).
    _cpu_at: deque[float] = field(default_factory=deque)

    def done(self, took_s: float, cpu_s: float | None = None) -> None:
        """One request finished after holding its slot ``took_s``; ``cpu_s``: the process CPU clock."""
        self.measured += 1
        self.mean_s += self.weight * (max(took_s, 1e-4) - self.mean_s)
        if cpu_s is not None:
            self._cpu_at.append(cpu_s)
            if len(self._cpu_at) > QUEUE_SLOTS * self.slots + 1:
                self._cpu_at.popleft()

    @property
    def known(self) -> bool:
        """Enough requests finished for the rate to mean something (one per slot, twice over)."""
        return self.measured >= 2 * self.slots

    def per_s(self) -> float:
        return self.slots / self.mean_s

    def cpu_per_s(self) -> float | None:
        """One over the process CPU time per request finished, over the last ones (None until
        one per slot, twice over, have finished with the CPU clock read)."""
        n = len(self._cpu_at) - 1
        if n < 2 * self.slots:
            return None
        return n / max(self._cpu_at[-1] - self._cpu_at[0], 1e-4 * n)

    def pace(self) -> float:
        """The appointments' spacing: :data:`PACE_LEAD` x :meth:`per_s`, not above
        :meth:`cpu_per_s` (nor below :meth:`per_s`; only ``per_s`` until the CPU is measured)."""
        return max(self.per_s(), min(self.cpu_per_s() or 0.0, PACE_LEAD * self.per_s()))


@dataclass
class Gate:
    """The slots and the queue of one worker, and the appointments handed to shed callers."""

    max_in_flight: int
    queue_wait_s: float
    clock: Callable[[], float] = time.monotonic
    cpu: Callable[[], float] = time.process_time  # this worker's CPU time (all its threads)
    rng: random.Random = field(default_factory=random.Random)
    running: int = 0
    shed: int = 0
    # Who waits for a slot, and since when: leave() hands it True (the slot) or False (waited
    # too long: turned away).
    _waiting: deque[tuple[float, asyncio.Future[bool]]] = field(default_factory=deque)
    _next_appointment: float = 0.0

    def __post_init__(self) -> None:
        self.drain = DrainRate(self.max_in_flight)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def queue_room(self, light: bool = False) -> int:
        """What the worker drains in ``queue_wait_s``, and never more than
        :data:`QUEUE_SLOTS` times its slots (a rate measured on small requests before a storm is
        optimistic until the storm's own requests finish); until the rate is measured at all (the
        first burst after a start), no more than its slots. A ``light`` request is held to what
        drains alone once the rate is measured, and to the per-slot cap before."""
        room = max(1, math.floor(self.drain.per_s() * self.queue_wait_s))
        if light:
            return room if self.drain.known else min(room, QUEUE_SLOTS * self.max_in_flight)
        return min(room, (QUEUE_SLOTS if self.drain.known else 1) * self.max_in_flight)

    async def enter(self, light: bool = False) -> float | None:
        """Take a slot (waiting in the queue when there is room, see :meth:`queue_room`): the
        time it was taken, or None when this one is shed."""
        if self.running < self.max_in_flight and not self._waiting:
            self.running += 1
            return self.clock()
        if self.waiting >= self.queue_room(light):
            self.shed += 1
            return None
        turn: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        place = (self.clock(), turn)
        self._waiting.append(place)
        try:
            admitted = await turn  # the slot is handed over by leave()
        except asyncio.CancelledError:
            if not turn.done():
                self._waiting.remove(place)
            elif turn.result():
                self.leave(self.clock())
            raise
        if not admitted:
            self.shed += 1
            return None
        return self.clock()

    def leave(self, entered_at: float) -> None:
        now = self.clock()
        self.drain.done(now - entered_at, self.cpu())
        expired = now - max(QUEUE_EXPIRY * self.queue_wait_s, 1.0)
        while self._waiting:
            since, turn = self._waiting.popleft()
            if turn.done():
                continue
            if since < expired:
                turn.set_result(False)  # queued too long: turned away, the slot goes on
                continue
            turn.set_result(True)  # the slot passes to the next in the queue
            return
        self.running -= 1

    def retry_after_s(self) -> int:
        """The shed caller's appointment: after what is admitted and the callers shed before it,
        spaced at the drain rate's :meth:`~DrainRate.pace`, with +-20% jitter (whole seconds
        rounded down, at least 1: the agent adds up to one)."""
        now, rate = self.clock(), self.drain.pace()
        behind = now + (self.running + self.waiting) / rate
        self._next_appointment = max(self._next_appointment, behind) + 1.0 / rate
        wait = (self._next_appointment - now) * self.rng.uniform(0.8, 1.2)
        return int(min(MAX_RETRY_AFTER_S, max(1, math.floor(wait))))


class Admission:
    """ASGI middleware: :class:`Gate` in front of ``/v1/`` requests."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED_PREFIX):
            await self.app(scope, receive, send)
            return
        entered_at = await self.gate.enter(_light(scope))
        if entered_at is None:
            await _shed(send, self.gate.retry_after_s())
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.leave(entered_at)


def _light(scope: Scope) -> bool:
    """A POST that declares a small body (see :data:`LIGHT_BODY_BYTES`)."""
    if scope.get("method") != "POST":
        return False
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.isdigit() and int(value) <= LIGHT_BODY_BYTES
    return False


async def _shed(send: Send, retry_after: int) -> None:
    body = json.dumps(
        {"error": "busy", "detail": f"the server is busy; try again in {retry_after} s"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(retry_after).encode()),
    ]
    await send({"type": "http.response.start", "status": 429, "headers": headers})
    await send({"type": "http.response.body", "body": body})
