"""The sync engine (sync/engine.py) on its own: the in-memory outbox on one side, the real
SyncClient over a recording fake of the server's HTTP edge on the other, time, sleep and
randomness injected. No ledger, no processes, no waiting: every test runs in milliseconds."""

from __future__ import annotations

import email.utils
import random
from collections import Counter
from typing import Any

import requests

from sync.client import SyncClient
from sync.engine import Backoff, SyncEngine
from sync.memory import MemoryOutbox
from sync.wire import canonical, protocol
from tests.sync.fake_central import BASE, FakeCentral, Fault


class Clock:
    """Time that moves only when the engine sleeps (wall and monotonic alike)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:  # 2027: far from the real clock
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.t += s


class Edge(random.Random):
    """Full jitter at one edge of its range: uniform(a, b) returns b (``top``) or a; records b."""

    def __init__(self, top: bool = True) -> None:
        super().__init__(0)
        self.top = top
        self.ceilings: list[float] = []

    def uniform(self, a: float, b: float) -> float:
        self.ceilings.append(b)
        return b if self.top else a


def rig(
    n: int = 5, *, rng: random.Random | None = None, **engine_kw: Any
) -> tuple[SyncEngine, MemoryOutbox, FakeCentral, Clock]:
    clock = Clock()
    outbox = MemoryOutbox(tokens=10_000, now_ms=lambda: int(clock() * 1000))
    for i in range(n):
        outbox.add(amount_paise=100 + i)
    central = FakeCentral(outbox.device_id, clock=clock)
    outbox.server_sign_key = central.sign_key.public_key()
    client = SyncClient(
        BASE,
        device_id=outbox.device_id,
        private_key=outbox.private_key,
        session=central.session(),
        timeout_s=7.5,
        clock=clock,
    )
    backoff = Backoff(base_s=2, cap_s=60, rng=rng or Edge())
    engine = SyncEngine(outbox, client, backoff=backoff, sleep=clock.sleep, min_remaining=0, **engine_kw)
    return engine, outbox, central, clock


def failing(status: int, n: int = 1, **headers: str) -> list[Fault]:
    return [Fault(status=status, headers=headers) for _ in range(n)]


# -- backoff ---------------------------------------------------------------------------------------
def test_full_jitter_ceilings_double_from_base_to_the_cap_and_reset() -> None:
    b = Backoff(base_s=2, cap_s=60, rng=Edge())
    assert [b.next_delay() for _ in range(7)] == [2, 4, 8, 16, 32, 60, 60]
    b.reset()
    assert b.next_delay() == 2


def test_full_jitter_spreads_over_the_whole_range() -> None:
    """uniform(0, ceiling), not ceiling/2 + jitter: retries of many kiosks don't bunch up."""
    b = Backoff(base_s=2, cap_s=60, rng=random.Random(1))
    delays = []
    for _ in range(300):
        b.failures = 3  # ceiling 16
        delays.append(b.next_delay())
    assert all(0 <= d <= 16 for d in delays)
    assert min(delays) < 1 and max(delays) > 15


def test_retry_after_is_a_floor_and_the_cap_still_holds() -> None:
    b = Backoff(base_s=2, cap_s=60, rng=Edge(top=False))
    assert (b.next_delay(), b.next_delay(7), b.next_delay(5000)) == (0, 7, 60)


def test_a_retry_after_is_an_appointment_that_does_not_grow_the_exponent() -> None:
    """Turned away five times with Retry-After 3, a kiosk comes back at 3-4 s each time (not at
    up to 2 * 2**n s, as when a shed counted as a failure); a timeout after that starts from the
    base, and one before it keeps its place."""
    b = Backoff(base_s=2, cap_s=60, rng=Edge())
    assert [b.next_delay(3) for _ in range(5)] == [4, 4, 4, 4, 4]
    assert b.failures == 0 and b.next_delay() == 2
    b = Backoff(base_s=2, cap_s=60, rng=Edge())
    assert (b.next_delay(), b.next_delay(), b.next_delay(3), b.next_delay()) == (2, 4, 4, 8)


def test_a_storm_turned_away_again_and_again_ends_at_its_appointments() -> None:
    """1,000 kiosks each shed 6 times in a row, told 2-9 s each time: each one's wait is its
    appointments summed plus under a second each, with no stragglers past them."""
    for k in range(1000):
        rng = random.Random(k)
        b, told = Backoff(rng=random.Random(-k)), [rng.randint(2, 9) for _ in range(6)]
        waited = sum(b.next_delay(t) for t in told)
        assert sum(told) <= waited < sum(told) + 6


def test_a_fleet_spreads_its_first_attempts_after_an_outage() -> None:
    """1,000 kiosks retry through a 2-hour outage with the agent's backoff (2 s base, 900 s cap):
    their first attempts after it are spread over the cap, not a wave at the moment it ends."""
    outage_s = 7200.0
    first: list[float] = []
    for k in range(1000):
        b, t = Backoff(base_s=2, cap_s=900, rng=random.Random(k)), random.Random(-k).uniform(0, 60)
        while t < outage_s:  # each attempt fails: the link is down
            t += b.next_delay()
        first.append(t - outage_s)
    per_10s = Counter(int(d // 10) for d in first)
    assert max(first) > 600 and max(per_10s.values()) <= 40  # ~1,000 over ~900 s: ~11 per 10 s
    assert sum(d < 10 for d in first) <= 40


def test_kiosks_told_the_same_retry_after_spread_over_that_second() -> None:
    delays = [Backoff(rng=random.Random(i)).next_delay(30) for i in range(500)]
    assert all(30 <= d < 31 for d in delays)
    assert len({int(d * 10) for d in delays}) == 10  # every tenth of the second is used


# -- drain: transient, permanent, Retry-After, deadline ----------------------------------------------
def test_drain_waits_out_the_servers_retry_after_seconds() -> None:
    engine, outbox, central, clock = rig(rng=Edge(top=False))
    central.faults = failing(429, **{"Retry-After": "7"})
    report = engine.drain(600, clock=clock)
    assert clock.slept == [7]
    assert (report.accepted, report.pending, report.error) == (5, 0, None)
    assert len(central.chain) == 5


def test_retry_after_as_a_date_is_read_against_the_servers_clock() -> None:
    engine, _outbox, central, clock = rig(rng=Edge(top=False))
    central.faults = failing(503, **{"Retry-After": email.utils.formatdate(clock() + 30, usegmt=True)})
    assert engine.drain(600, clock=clock).pending == 0
    assert clock.slept == [30]


def test_transient_failures_back_off_growing_then_everything_syncs_once() -> None:
    engine, outbox, central, clock = rig()
    central.faults = [
        Fault(status=503),
        Fault(raises=requests.ConnectionError),
        Fault(raises=requests.ReadTimeout),
    ]
    report = engine.drain(600, clock=clock)
    assert clock.slept == [2, 4, 8]  # full-jitter ceilings (the rng answers the top)
    assert (report.accepted, report.duplicate, report.pending) == (5, 0, 0)
    assert [rec["seq"] for _h, rec in central.chain] == [1, 2, 3, 4, 5]
    assert engine.backoff.failures == 0  # a good round resets the backoff


def test_a_permanent_error_stops_at_once_and_loses_nothing() -> None:
    engine, outbox, central, clock = rig()
    central.faults = [Fault(status=403, body={"error": "device_revoked", "detail": "revoked"})]
    report = engine.drain(600, clock=clock)
    assert clock.slept == [] and len(central.batches()) == 1
    assert report.transient is False and report.error is not None and "device_revoked" in report.error
    assert outbox.counts() == {"pending": 0, "sent": 5, "acked": 0, "rejected": 0}


def test_rows_stay_pending_when_no_connection_was_made() -> None:
    engine, outbox, central, _clock = rig()
    central.faults = [Fault(raises=requests.ConnectTimeout)]  # the request never left
    report = engine.run_once()
    assert report.error is not None and report.pending == 5 and report.sent == 0
    assert outbox.counts() == {"pending": 5, "sent": 0, "acked": 0, "rejected": 0}
    assert set(outbox.attempts.values()) == {0}
    central.faults = [Fault(raises=requests.ConnectionError)]  # reset on the way: it may have arrived
    engine.run_once()
    assert outbox.counts() == {"pending": 0, "sent": 5, "acked": 0, "rejected": 0}


def test_drain_gives_up_at_its_deadline() -> None:
    engine, outbox, central, clock = rig()
    central.faults = failing(503, 50)
    report = engine.drain(30, clock=clock)
    assert clock.slept == [2, 4, 8, 16]  # the next ceiling (32) would pass the deadline
    assert report.transient is True and report.pending == 5


def test_every_call_carries_the_clients_timeout() -> None:
    engine, _outbox, central, _clock = rig()
    engine.run_once()
    engine.heartbeat()
    assert {s.path for s in central.seen} == {"/v1/batches", "/v1/catalog", "/v1/heartbeat"}
    assert {s.timeout for s in central.seen} == {7.5}


# -- acks: once, lost answers, stalls, rejections -----------------------------------------------------
def test_an_answer_lost_after_the_commit_is_resent_and_counted_once() -> None:
    engine, outbox, central, clock = rig()
    central.faults = [Fault(raises=requests.ReadTimeout, after_commit=True)]
    report = engine.drain(600, clock=clock)
    assert len(central.chain) == 5  # the server committed on the first try
    assert central.batches() == [[1, 2, 3, 4, 5]] * 2
    assert (report.accepted, report.duplicate, report.pending) == (0, 5, 0)
    assert outbox.counts()["acked"] == 5 and outbox.acks_applied == [[1, 2, 3, 4, 5]]


def test_each_ack_set_is_stored_once_and_nothing_is_sent_twice() -> None:
    engine, outbox, central, _clock = rig(7, batch_max_records=3)
    assert engine.run_once().accepted == 7
    assert outbox.acks_applied == [[1, 2, 3], [4, 5, 6], [7]]
    again = engine.run_once()
    assert (again.sent, again.batches) == (0, 0) and len(central.batches()) == 3
    assert outbox.acks_applied == [[1, 2, 3], [4, 5, 6], [7]]


def test_a_server_that_keeps_answering_gap_stalls_the_round_after_three_batches() -> None:
    engine, outbox, central, _clock = rig(batch_max_records=2)
    central.answer_all = "gap"
    report = engine.run_once()
    assert central.batches() == [[1, 2]] * 3
    assert report.transient is True and report.error is not None and "gap" in report.error
    assert outbox.counts()["pending"] == 5  # transient: back to pending, nothing lost


def test_a_rejected_record_is_kept_and_does_not_block_the_rest() -> None:
    engine, outbox, central, _clock = rig()
    central.reject = lambda rec: "token_used" if rec["amount_paise"] == 102 else None
    report = engine.run_once()
    assert (report.accepted, report.rejected, report.reasons) == (4, 1, {"token_used": 1})
    assert outbox.state[3] == "rejected" and outbox.last_error[3] == "token_used"
    assert engine.run_once().sent == 0  # kept for the operator, not resent


# -- batches ------------------------------------------------------------------------------------------
def test_batches_are_bounded_by_count() -> None:
    engine, _outbox, central, _clock = rig(25, batch_max_records=10)
    assert engine.run_once().accepted == 25
    assert central.batches() == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert rig(0, batch_max_records=5000)[0].batch_max_records == protocol.MAX_BATCH_RECORDS


def test_batches_are_bounded_by_canonical_bytes_and_chain_on() -> None:
    size = len(canonical.canonical_json(rig(1)[1].records[0]))
    engine, outbox, central, _clock = rig(12, batch_max_bytes=3 * size + size // 2)
    assert engine.run_once().accepted == 12  # the server checked each batch's prev_hash
    batches = [s.body["records"] for s in central.seen if s.path == "/v1/batches"]
    assert [len(b) for b in batches] == [3, 3, 3, 3]
    assert all(sum(len(canonical.canonical_json(r)) for r in b) <= 3 * size + size // 2 for b in batches)
    tiny, _o, central2, _c = rig(2, batch_max_bytes=10)  # a record larger than the bound goes alone
    tiny.run_once()
    assert central2.batches() == [[1], [2]]


def test_progress_counts_up_to_the_total() -> None:
    seen: list[tuple[int, int]] = []
    engine, _outbox, _central, _clock = rig(5, batch_max_records=2, progress=lambda d, t: seen.append((d, t)))
    engine.run_once()
    assert seen == [(2, 5), (4, 5), (5, 5)]


# -- leases and catalog ---------------------------------------------------------------------------------
def test_leases_are_topped_up_to_the_days_target_in_few_round_trips() -> None:
    engine, outbox, central, _clock = rig(0, days_target=14)
    outbox.spare_tokens, outbox.rate_per_day = 0, 30.0  # want 30 * 14 = 420 tokens
    assert engine.top_up_leases() == 5
    assert [s.body["count"] for s in central.seen if s.path == "/v1/leases"] == [1, 4]
    assert outbox.tokens_remaining() == 500  # blocks of 100, each verified with the server's key


def test_a_round_pulls_a_newer_catalog_once_and_marks_the_sync() -> None:
    engine, outbox, central, clock = rig(1)
    central.catalog = {
        "version": 3,
        "services": [
            {
                "code": "WATER_BILL",
                "fee_paise": 500,
                "max_amount_paise": 10**7,
                "online_only": False,
                "commission": {},
            }
        ],
    }
    engine.run_once()
    assert outbox.catalog is not None and outbox.catalog[0] == 3
    assert outbox.synced_at_ms == int(clock() * 1000)
    assert engine.pull_catalog() is False  # already current
