"""Admission control: a worker beyond its slots and queue answers 429 at once, before any work,
with a Retry-After appointment spaced at its drain rate; the kiosk's client honours it."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from server_stub.admission import (
    LIGHT_BODY_BYTES,
    MAX_RETRY_AFTER_S,
    QUEUE_EXPIRY,
    DrainRate,
    Gate,
    _light,
)
from server_stub.db import write
from tests.server_stub.conftest import Harness


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: the test holds SQLite's write lock to keep a request running."""
    yield f"sqlite:///{tmp_path / 'server.db'}"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_drain_rate_is_slots_over_the_mean_time_a_request_holds_one() -> None:
    rate = DrainRate(slots=4)
    for _ in range(200):
        rate.done(0.1)
    assert abs(rate.per_s() - 40.0) < 1.0


def test_shed_callers_get_appointments_spaced_at_the_drain_rate_with_jitter() -> None:
    clock = FakeClock()
    gate = Gate(max_in_flight=2, queue_wait_s=1.0, clock=clock, rng=random.Random(3))
    for _ in range(200):
        gate.drain.done(0.2)  # 2 slots / 0.2 s = 10 requests a second
    gate.running = 2
    waits = [gate.retry_after_s() for _ in range(300)]
    # The n-th shed caller is sent ~n/10 s into the future (+-20%): 300 callers over ~30 s.
    assert waits[0] == 1 and 24 <= waits[-1] <= 37
    assert all(w >= 1 for w in waits)
    assert len(set(waits)) > 20  # spread over many seconds, not one wave
    per_second = max(waits.count(w) for w in set(waits))
    assert per_second <= 20  # at most about two seconds' worth of work return in the same second
    clock.now += 60  # a minute later the appointments are used up: a new caller waits little
    assert gate.retry_after_s() <= 2


class Midpoint(random.Random):
    """No jitter: every uniform(a, b) is its middle."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


def test_the_cpu_pace_is_requests_finished_over_the_process_cpu_they_took() -> None:
    rate = DrainRate(slots=4)
    cpu = 50.0
    for i in range(8):
        rate.done(0.1, cpu + i * 0.02)
    assert rate.cpu_per_s() is None  # 7 intervals: fewer than one per slot, twice over
    rate.done(0.1, cpu + 8 * 0.02)
    assert abs((rate.cpu_per_s() or 0) - 50.0) < 0.1  # 20 ms of CPU per request
    assert abs(rate.pace() - 50.0) < 0.1  # 1.5 x 40 (4 slots / 0.1 s) is more: the CPU's 50
    for i in range(9, 100):
        rate.done(0.1, cpu + 8 * 0.02 + (i - 8) * 0.2)  # now 200 ms of CPU each: only the last count
    assert abs((rate.cpu_per_s() or 0) - 5.0) < 0.01 and abs(rate.pace() - 40.0) < 1.0  # never below


def _burst(cpu_per_request_s: float) -> Gate:
    """A gate after a burst that starved its worker: 8 slots each held 0.4 s (20 a second by
    Little's law), each request ``cpu_per_request_s`` of the process's CPU."""
    clock, cpu = FakeClock(), FakeClock()
    gate = Gate(max_in_flight=8, queue_wait_s=1.5, clock=clock, cpu=cpu.__call__, rng=random.Random(5))
    gate.running = 8
    for _ in range(64):  # 8 finish every 0.4 s
        clock.now += 0.05
        cpu.now += cpu_per_request_s
        gate.leave(clock.now - 0.4)
        gate.running += 1  # the slot is taken again at once
    assert 19 < gate.drain.per_s() < 21
    return gate


def _back_within(gate: Gate, callers: int, seconds: float) -> int:
    """How many of ``callers`` shed now come back within ``seconds`` (the agent adds up to 1 s)."""
    agent = random.Random(6)
    return sum(1 for _ in range(callers) if gate.retry_after_s() + agent.uniform(0, 1.0) < seconds)


def test_after_a_burst_the_appointments_are_a_little_ahead_of_what_it_drained() -> None:
    """20 ms of CPU a request: 50 a second once the turning away stops, 20 while it went on.
    Spaced at 20 a second (as main did), 600 callers shed take 30 s and the worker idles behind
    them; at the CPU's 50 they are back too soon if the turning away goes on. 1.5x: 30 a second."""
    back = _back_within(_burst(0.02), 600, 11.0)
    assert 270 <= back <= 330, back  # ~30 a second for 10 s, behind the 8 running (20/s: ~200)


def test_the_appointments_are_never_ahead_of_what_the_cpu_allows() -> None:
    back = _back_within(_burst(0.04), 600, 11.0)  # 40 ms of CPU a request: 25 a second at most
    assert 220 <= back <= 270, back


def test_retry_after_is_rounded_down_because_the_agent_adds_up_to_a_second() -> None:
    clock = FakeClock()
    gate = Gate(max_in_flight=1, queue_wait_s=1.0, clock=clock, rng=Midpoint())
    gate.drain.mean_s = 0.4  # 2.5 a second
    gate.running = 5  # 2 s of work ahead (5 x 0.4 s), then 0.4 s for this caller: 2.4 s
    assert gate.retry_after_s() == 2  # the agent comes back in 2-3 s, around 2.4 s


def test_a_request_queued_past_the_expiry_is_turned_away_when_its_turn_comes() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        gate = Gate(max_in_flight=1, queue_wait_s=1.0, clock=clock)
        gate.drain.mean_s, gate.drain.measured = 0.5, 10  # measured: room for 2 waiting
        first = await gate.enter()
        assert first is not None
        stale = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0)
        clock.now += QUEUE_EXPIRY * 1.0 + 0.1  # the first request held its slot too long
        fresh = asyncio.ensure_future(gate.enter())
        await asyncio.sleep(0)
        assert gate.waiting == 2
        gate.leave(first)
        assert await stale is None  # turned away (429), nothing done
        got = await fresh
        assert got is not None and gate.running == 1 and gate.shed == 1
        gate.leave(got)
        assert gate.running == 0 and gate.waiting == 0

    asyncio.run(scenario())


def test_before_the_rate_is_measured_the_queue_is_no_longer_than_the_slots() -> None:
    gate = Gate(max_in_flight=4, queue_wait_s=10.0)
    assert gate.queue_room() == 4  # not 4 / 0.1 s x 10 s = 400: the first burst is not over-admitted
    for _ in range(8):
        gate.drain.done(0.5)
    assert gate.queue_room() == 16  # 80 drain in 10 s, but at most 4 per slot wait


def test_a_light_request_queues_for_what_drains_in_the_wait_without_the_per_slot_cap() -> None:
    gate = Gate(max_in_flight=4, queue_wait_s=1.5)
    assert gate.queue_room() == 4  # before the rate is measured: a batch waits only for the slots
    assert gate.queue_room(light=True) == 16  # a lease request or an enrollment: 4 per slot
    gate.drain.mean_s, gate.drain.measured = 0.02, 8  # measured: 200 a second
    assert gate.queue_room() == 16  # a batch: at most 4 per slot wait
    assert gate.queue_room(light=True) == 300  # a lease request: what drains in 1.5 s
    gate.drain.mean_s = 2.0  # 2 a second
    assert gate.queue_room(light=True) == gate.queue_room() == 3  # never more than drains in the wait


def test_only_a_post_declaring_a_small_body_is_light() -> None:
    def scope(method: str, length: bytes | None) -> dict[str, object]:
        headers = [(b"content-type", b"application/json")]
        if length is not None:
            headers.append((b"content-length", length))
        return {"method": method, "headers": headers}

    assert _light(scope("POST", b"11"))
    assert _light(scope("POST", str(LIGHT_BODY_BYTES).encode()))
    assert not _light(scope("POST", str(LIGHT_BODY_BYTES + 1).encode()))  # a batch
    assert not _light(scope("POST", None))  # chunked: its size is not known
    assert not _light(scope("POST", b"-1"))
    assert not _light(scope("GET", b"0"))  # a GET may be big to answer (the directory)


def test_the_queue_is_what_drains_in_the_wait_when_that_is_less() -> None:
    gate = Gate(max_in_flight=4, queue_wait_s=1.0)
    for _ in range(40):
        gate.drain.done(2.0)  # 2 a second
    assert gate.queue_room() == 2


def test_the_appointment_never_exceeds_the_agents_backoff_cap() -> None:
    gate = Gate(max_in_flight=1, queue_wait_s=1.0, clock=FakeClock())
    gate.drain.mean_s = 10_000.0  # a worker that drains almost nothing
    assert gate.retry_after_s() == MAX_RETRY_AFTER_S


def test_the_queue_holds_what_drains_in_the_wait_and_hands_slots_over_in_order() -> None:
    async def scenario() -> tuple[list[object], int, int]:
        gate = Gate(max_in_flight=1, queue_wait_s=1.0)
        gate.drain.mean_s, gate.drain.measured = 0.5, 10  # measured: 2 a second, room for 2 waiting
        first = await gate.enter()
        waiters = [asyncio.ensure_future(gate.enter()) for _ in range(2)]
        await asyncio.sleep(0)
        shed = await gate.enter()
        assert first is not None and shed is None and gate.waiting == 2
        gate.leave(first)
        got = await waiters[0]
        assert got is not None and not waiters[1].done()
        gate.leave(got)
        gate.leave(await waiters[1])
        return [first, shed], gate.running, gate.shed

    _, running, shed = asyncio.run(scenario())
    assert running == 0 and shed == 1


def _hold_write_lock(engine: sa.Engine, release: Callable[[], bool]) -> None:
    """Hold SQLite's write lock until ``release()`` is true (polled with a deadline)."""
    deadline = time.monotonic() + 30
    with write(engine) as conn:
        conn.execute(sa.text("UPDATE serial_counter SET next_serial = next_serial"))
        while not release() and time.monotonic() < deadline:
            time.sleep(0.01)


def test_a_full_worker_answers_429_with_retry_after_at_once_and_health_checks_still_pass(
    start_server: Callable[..., Harness],
) -> None:
    h = start_server(rate_per_s=0, max_in_flight=1, queue_wait_s=0.01)
    fakes = [h.enrolled() for _ in range(4)]
    batches = [(f, f.make_records(3)) for f in fakes]
    done = {"n": 0}
    with ThreadPoolExecutor(5) as pool:
        holder = pool.submit(_hold_write_lock, h.engine, lambda: done["n"] >= 2)
        pushes = [pool.submit(f.push, recs) for f, recs in batches]
        shed = []
        deadline = time.monotonic() + 20
        while len(shed) < 2 and time.monotonic() < deadline:  # 1 running + 1 queued; 2 shed
            shed = [p.result() for p in pushes if p.done()]
            time.sleep(0.01)
        health = requests.get(h.url + "/healthz", timeout=10)  # the worker is full: 1 running, 1 queued
        done["n"] = len(shed)
        holder.result()
        answers = [p.result() for p in pushes]
    assert health.status_code == 200
    codes = sorted(r.status_code for r in answers)
    assert codes == [200, 200, 429, 429], [r.text for r in answers]
    for r in answers:
        if r.status_code == 429:
            assert r.json()["error"] == "busy" and int(r.headers["Retry-After"]) >= 1
    # Nothing of a shed batch was stored, and its resend is taken.
    for fake, recs in batches:
        again = fake.push(recs)
        assert again.status_code == 200
        assert {a["status"] for a in again.json()["acks"]} <= {"accepted", "duplicate"}
