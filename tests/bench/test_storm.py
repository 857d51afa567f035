"""A small reconnect storm (bench/storm.py) as a test: a few hundred kiosks push their backlogs at
once to `kiosk-server serve` (a real process), and the database must hold every record once with
every chain head right. The figures are printed, never asserted: benchmarks are not timed tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import pytest

from bench import lease_client, storm
from bench.storm_client import fire
from bench.storm_server import Expected, Server, leases_overlapping, serve, verify
from tests.e2e.faultproxy import Fault, FaultProxy

PG_URL = os.environ.get("KIOSK_TEST_POSTGRES_URL")
# SQLite with one worker, PostgreSQL with two: the shapes the server is deployed in.
DBS = [
    pytest.param("sqlite", 1, id="sqlite-1-worker"),
    pytest.param(
        PG_URL or "postgresql",
        2,
        id="postgresql-2-workers",
        marks=pytest.mark.skipif(not PG_URL, reason="needs KIOSK_TEST_POSTGRES_URL"),
    ),
]
# Sized for 2 shared cores: ~20 s per database on a busy box. The deadline keeps a collapse from hanging.
# Each worker runs 2 requests at once and queues what it drains in 0.2 s, so 300 kiosks at once are
# mostly turned away with 429 + Retry-After and must come back when told: the shedding is tested too.
OPTS = storm.Options(
    deadline_s=120.0, backoff_base_s=0.5, serve_flags=("--max-in-flight", "2", "--queue-wait-s", "0.2")
)


def _honoured_retry_after(result: dict) -> None:
    assert result["shed_429"] > 0, result["status"]
    assert result["retry_after_ignored"] == 0
    assert result["batches_per_kiosk_mean"] <= 1.05 * result["batches_per_kiosk_needed"]  # shed != resent


@pytest.mark.parametrize(("db", "workers"), DBS)
def test_a_storm_of_300_kiosks_is_stored_once_with_no_5xx_and_no_timeouts(db: str, workers: int) -> None:
    result = storm.storm(kiosks=300, records=20, concurrency=300, db=db, workers=workers, opts=OPTS)
    print(result)  # the figures, for whoever reads the log
    _honoured_retry_after(result)
    integrity = result["integrity"]
    assert integrity["sent"] == 300 * 20
    assert integrity["ok"], integrity
    assert integrity["stored"] == integrity["sent"]
    assert integrity["lost"] == integrity["duplicate_seqs"] == integrity["duplicate_tokens"] == 0
    assert integrity["head_wrong"] == 0
    assert result["http_5xx"] == 0, result["status"]
    assert result["client_timeouts"] == 0
    assert result["connection_errors"] == 0
    assert result["kiosks_unfinished"] == result["kiosks_failed"] == 0
    assert result["records_acked"] == 300 * 20
    assert not result["rejected"] and not result["other_4xx"]
    assert result["server_exceptions"] == {}


@pytest.fixture
def sqlite_server() -> Iterator[Server]:
    with serve("sqlite", 1, rate_limit=0) as server:
        yield server


def test_the_integrity_check_sees_a_missing_a_lost_and_a_wrong_record(sqlite_server: Server) -> None:
    kiosks = sqlite_server.new_kiosks(3, 5, provisional_share=0.4)
    runs = fire(sqlite_server.url, kiosks, 3, deadline_s=60).runs
    expected = [Expected(r.kiosk, r.acked_seq, r.finals) for r in runs]
    good = verify(sqlite_server.engine, expected)
    assert good["ok"] and good["stored"] == good["sent"] == 15, good
    assert all(len(r.finals) == 2 for r in runs)  # 40% of 5 provisional, each given a final token

    kiosks[0].build_backlog(1)  # signed, never sent
    kiosks[1].hashes[4] = "0" * 64  # the kiosk's seq 5 (its head) is not what the server holds
    claimed = replace(expected[2], acked_seq=6)
    kiosks[2].build_backlog(1)  # ... and the server "acked" a record it does not hold
    bad = verify(sqlite_server.engine, [expected[0], expected[1], claimed])
    assert not bad["ok"]
    assert bad["missing"] == 2 and bad["lost"] == 1 and bad["hash_mismatch"] == 1, bad
    assert bad["head_wrong"] == 1


def test_the_storm_client_resends_like_the_agent_after_429_5xx_cuts_and_timeouts(
    sqlite_server: Server,
) -> None:
    kiosks = sqlite_server.new_kiosks(10, 5)
    faults = [
        *[Fault("ratelimit", retry_after=1)] * 3,
        Fault("error", status=503),  # no Retry-After: counted as a 5xx
        Fault("error", status=500),
        *[Fault("cut")] * 2,  # stored, but the answer is lost: the resend is acked duplicate
        Fault("stall", seconds=2.0),  # never forwarded; the client times out first
    ]
    port = int(sqlite_server.url.rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        proxy.set_schedule(faults, only="/v1/batches")
        fired = fire(proxy.url, kiosks, 3, timeout_s=1.0, deadline_s=60, backoff_base_s=0.05)
    t = fired.tally
    assert all(r.done and not r.failed for r in fired.runs)
    assert t.shed == {429: 3} and t.retry_after == [1.0, 1.0, 1.0]
    assert t.status[503] == t.status[500] == 1
    assert t.conn_errors == 2 and t.timeouts == 1
    assert sum(r.sent for r in fired.runs) == 10 + len(faults)  # each fault costs one resend, no more
    for r in fired.runs:  # the next attempt after a 429 waits at least its Retry-After (1 s)
        for (at, outcome), (again, _) in zip(r.history, r.history[1:], strict=False):
            assert outcome != "429" or again - at >= 1.0
    assert sum(outcome == "429" for r in fired.runs for _, outcome in r.history) == 3
    # The acks of a cut batch never arrive; its resend is acked duplicate (a batch may be cut twice).
    assert t.duplicate in (5, 10) and t.accepted + t.duplicate == 50
    expected = [Expected(r.kiosk, r.acked_seq, r.finals) for r in fired.runs]
    assert verify(sqlite_server.engine, expected)["ok"]


def test_the_lease_storm_client_asks_again_after_429s_and_cuts_and_leases_stay_disjoint(
    sqlite_server: Server,
) -> None:
    kiosks = sqlite_server.new_kiosks(20, 0)
    enrolled = [(le["start_serial"], le["end_serial"]) for k in kiosks for le in k.leases]
    port = int(sqlite_server.url.rsplit(":", 1)[1])
    with FaultProxy(port) as proxy:
        # a cut answer's block was granted and stored, never received: the device asks again
        proxy.set_schedule([*[Fault("ratelimit", retry_after=1)] * 2, *[Fault("cut")] * 2], only="/v1/leases")
        got = lease_client.lease_storm(proxy.url, kiosks, 2, deadline_s=60)
    assert got.failed == 0 and len(got.leases) == 40 and len(got.latencies) == 40
    assert got.status == {200: 40, 429: 2, 0: 2}, got.status
    checks = leases_overlapping(sqlite_server.engine, got.leases + enrolled)
    assert checks["granted_overlaps"] == checks["stored_overlaps"] == 0, checks


def test_the_lease_storm_reports_its_grants_beside_the_do_nothing_ceiling(sqlite_server: Server) -> None:
    result = storm.lease_storm_on(sqlite_server, 10, 2, workers=1)
    print(result)  # the figures, for whoever reads the log
    assert result["grants"] == 20 and result["disjoint"] and not result["failed"]
    assert result["bare"]["answers_per_s"] > 0 and result["over_bare"] is not None
