"""Leases are disjoint under concurrency: 8 threads, 10,000 blocks (and 2 worker processes on PostgreSQL)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from agent.harness import stop_process
from server_stub import admin
from server_stub.db import devices, leases, make_engine
from tests.server_stub.conftest import PG_SKIP, Harness, free_port, kiosk_server_argv, wait_healthy
from tests.server_stub.kiosk_fake import FakeKiosk

THREADS = 8
BLOCKS = 10_000
PER_CALL = 16
NO_CAP = 10**7  # these tests hammer the serial space on purpose: no per-device cap


def _hammer(base_url: str, fakes: list[FakeKiosk]) -> list[tuple[int, int, str]]:
    calls = -(-BLOCKS // (PER_CALL * THREADS))  # per thread

    def worker(fake: FakeKiosk) -> list[tuple[int, int, str]]:
        session = requests.Session()
        fake.session = session
        got = []
        for _ in range(calls):
            resp = fake.call("POST", "/v1/leases", {"count": PER_CALL})
            assert resp.status_code == 200, resp.text
            got += [(x["start_serial"], x["end_serial"], fake.device_id) for x in resp.json()["leases"]]
        return got

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, fakes))
    return [lease for r in results for lease in r]


def _assert_disjoint(blocks: list[tuple[int, int, str]], block_size: int) -> None:
    blocks = sorted(blocks)
    assert all(end - start == block_size for start, end, _ in blocks)
    for (s1, e1, _), (s2, _e2, _) in zip(blocks, blocks[1:], strict=False):
        assert e1 <= s2, f"overlap: [{s1},{e1}) and [{s2},...)"


def test_concurrent_leases_never_overlap(start_server) -> None:  # type: ignore[no-untyped-def]
    h: Harness = start_server(rate_per_s=0, block_size=100, lease_cap_min=NO_CAP, lease_cap_max=NO_CAP)
    lsp = h.lsp().lsp_id
    fakes = [h.enrolled(lsp) for _ in range(THREADS)]
    got = _hammer(h.url, fakes)
    assert len(got) >= BLOCKS
    with h.engine.connect() as conn:
        stored = [(r.start_serial, r.end_serial, r.device_id) for r in conn.execute(sa.select(leases))]
    assert len(stored) == len(got) + THREADS * h.config.initial_blocks
    assert set(got) <= set(stored)
    _assert_disjoint(stored, 100)


def _serve_argv(db_url: str, port: int) -> list[str]:
    flags = {"--port": port, "--workers": 2, "--rate-limit": 0, "--block-size": 100}
    flags |= {"--lease-cap-min": NO_CAP, "--lease-cap-max": NO_CAP, "--log-level": "warning"}
    return kiosk_server_argv(
        db_url, "serve", "--host", "127.0.0.1", *(str(x) for kv in flags.items() for x in kv)
    )


@PG_SKIP
def test_two_worker_processes_on_postgres_never_overlap(tmp_path: Path) -> None:
    from tests.server_stub.conftest import _db_url

    gen = _db_url("postgresql", tmp_path)
    db_url = next(gen)
    port = free_port()
    engine = make_engine(db_url)
    proc = None
    try:
        admin.init_server(engine, int(time.time() * 1000))
        with engine.begin() as conn:
            lsp = admin.create_lsp(conn, "P", 0).lsp_id
            codes = [
                admin.create_kiosk(conn, lsp, f"k{i}", int(time.time() * 1000), 1).enrollment_code
                for i in range(THREADS)
            ]
        proc = subprocess.Popen(_serve_argv(db_url, port), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, 60, proc)
        fakes = []
        for code in codes:
            fake = FakeKiosk(url)
            fake.enroll(code)
            fakes.append(fake)
        got = _hammer(url, fakes)
        assert len(got) >= BLOCKS
        with engine.connect() as conn:
            stored = [(r.start_serial, r.end_serial, r.device_id) for r in conn.execute(sa.select(leases))]
        assert set(got) <= set(stored)
        _assert_disjoint(stored, 100)
    finally:
        if proc is not None:
            stop_process(proc, timeout_s=30)  # SIGTERM, then SIGKILL after 30 s
        engine.dispose()
        with pytest.raises(StopIteration):
            next(gen)  # drops the schema


def test_a_lease_loop_stops_at_the_cap(start_server) -> None:  # type: ignore[no-untyped-def]
    """A device asking for blocks in a loop gets no more than its cap of unused serials, then a
    clear 409; once its tokens are used (records synced) it may ask again."""
    h: Harness = start_server(rate_per_s=0, block_size=1000, lease_cap_min=10_000, lease_cap_max=50_000)
    fake = h.enrolled()
    statuses = []
    for _ in range(50):  # far more than the cap allows
        resp = fake.call("POST", "/v1/leases", {"count": 16})
        statuses.append(resp.status_code)
        if resp.status_code != 200:
            break
        fake.add_leases(resp.json()["leases"])
    assert statuses[-1] == 409 and len(statuses) <= 3, statuses
    assert resp.json()["error"] == "lease_cap_reached"
    held = sum(x["end_serial"] - x["start_serial"] for x in fake.leases)
    assert held == 10_000  # 2 blocks at enrollment, then up to the cap, never beyond
    recs = fake.make_records(1000)  # a busy day: 1,000 tokens used
    for i in range(0, 1000, 500):
        assert {a["status"] for a in fake.push(recs[i : i + 500]).json()["acks"]} == {"accepted"}
    assert len(fake.lease(1)) == 1  # room again


@contextmanager
def _statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL the engine sends while the block runs (the server in the test's thread shares it)."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def _counts_records(sent: list[str]) -> bool:
    return any("count(" in s.lower() and "records" in s for s in sent)


def _ask(fake: FakeKiosk, count: int) -> requests.Response:
    resp = fake.call("POST", "/v1/leases", {"count": count})
    if resp.status_code == 200:
        fake.add_leases(resp.json()["leases"])
    return resp


def test_a_grant_under_the_minimum_cap_counts_no_records_and_one_past_it_does(start_server) -> None:  # type: ignore[no-untyped-def]
    """The cap is never below lease_cap_min: a request that stays under it needs no count of the
    rate window's records (one statement less per grant). Past it the count decides, both ways:
    refused with no rate, granted beyond the minimum once the device has used tokens."""
    h: Harness = start_server(rate_per_s=0, block_size=1000, lease_cap_min=10_000, lease_cap_max=50_000)
    fake = h.enrolled()  # holds 2 blocks
    with _statements(h.engine) as sent:
        assert _ask(fake, 8).status_code == 200  # 10,000 held: at the minimum, not past it
    # PostgreSQL: the fast path's one statement (test_fastlease.py), none through SQLAlchemy
    assert (sent if h.engine.dialect.name == "sqlite" else True) and not _counts_records(sent), sent
    with _statements(h.engine) as sent:
        resp = _ask(fake, 1)  # 11,000 would be past the minimum, and no tokens used: refused
    assert resp.status_code == 409 and resp.json()["error"] == "lease_cap_reached"
    assert _counts_records(sent)
    recs = fake.make_records(1000)  # 1,000 tokens used today: a cap of 30 days x 1,000
    for i in range(0, 1000, 500):
        assert {a["status"] for a in fake.push(recs[i : i + 500]).json()["acks"]} == {"accepted"}
    with _statements(h.engine) as sent:
        resp = _ask(fake, 16)  # 9,000 unused + 16,000: under 30,000, over the minimum
    assert resp.status_code == 200 and len(resp.json()["leases"]) == 16
    assert _counts_records(sent)


def test_a_grant_stores_its_blocks_and_counts_them(start_server) -> None:  # type: ignore[no-untyped-def]
    """Under the minimum cap, a grant on PostgreSQL is the fast path's one statement, sent by psycopg
    (none through SQLAlchemy; see test_fastlease.py); SQLite keeps its plain statements. Either way
    the rows are all there."""
    h: Harness = start_server(rate_per_s=0)
    fake = h.enrolled()
    with _statements(h.engine) as sent:
        granted = _ask(fake, 3).json()["leases"]
    if h.engine.dialect.name == "postgresql":
        assert sent == [], sent
    with h.engine.connect() as conn:
        rows = conn.execute(sa.select(leases).where(leases.c.device_id == fake.device_id)).all()
        leased = conn.execute(
            sa.select(devices.c.serials_leased).where(devices.c.device_id == fake.device_id)
        )
        assert leased.scalar_one() == sum(r.end_serial - r.start_serial for r in rows)
    stored = {(r.lease_id, r.start_serial, r.end_serial, r.sig) for r in rows}
    assert {(g["lease_id"], g["start_serial"], g["end_serial"], g["sig"]) for g in granted} <= stored
    assert len(rows) == 2 + 3


def test_a_lease_request_id_gets_the_same_blocks_again(server: Harness) -> None:
    fake = server.enrolled()
    first = fake.call("POST", "/v1/leases", {"count": 2, "request_id": "ask-0001-aaaa"}).json()["leases"]
    again = fake.call("POST", "/v1/leases", {"count": 2, "request_id": "ask-0001-aaaa"}).json()["leases"]
    other = fake.call("POST", "/v1/leases", {"count": 2, "request_id": "ask-0002-bbbb"}).json()["leases"]
    assert again == first and len(first) == 2
    assert {x["lease_id"] for x in other}.isdisjoint(x["lease_id"] for x in first)
    with server.engine.connect() as conn:
        assert len(conn.execute(sa.select(leases).where(leases.c.device_id == fake.device_id)).all()) == 2 + 4


def test_a_retried_request_id_gets_its_blocks_at_the_cap_and_counts_them_once(start_server) -> None:  # type: ignore[no-untyped-def]
    """The agent sends a request_id with every ask. On PostgreSQL the grant's own statement checks
    it (the fast path's one statement for a new id); a retry gets the same blocks even when the
    device is at its cap now, and the device's counter holds them once."""
    h: Harness = start_server(rate_per_s=0, block_size=1000, lease_cap_min=10_000, lease_cap_max=50_000)
    fake = h.enrolled()  # holds 2 blocks
    ask = {"count": 8, "request_id": "ask-0003-cccc"}
    with _statements(h.engine) as sent:
        first = fake.call("POST", "/v1/leases", ask)
    assert first.status_code == 200 and len(first.json()["leases"]) == 8
    if h.engine.dialect.name == "postgresql":
        assert sent == [], sent  # the fast path (test_fastlease.py)
    again = fake.call("POST", "/v1/leases", ask)  # 10,000 held: a new ask would be refused
    assert again.status_code == 200 and again.json()["leases"] == first.json()["leases"]
    other = fake.call("POST", "/v1/leases", {"count": 1, "request_id": "ask-0004-dddd"})
    assert other.status_code == 409
    with h.engine.connect() as conn:
        rows = conn.execute(sa.select(leases).where(leases.c.device_id == fake.device_id)).all()
    assert len(rows) == 2 + 8
    assert (
        _counters(h.engine, fake.device_id)[0] == sum(r.end_serial - r.start_serial for r in rows) == 10_000
    )


@PG_SKIP
def test_postgres_serials_come_from_ranges_of_a_sequence_disjoint_across_processes(tmp_path: Path) -> None:
    """Two engines stand for two server processes: each takes ranges with nextval and hands out
    serials from memory; none is handed out twice, and the counter row is never touched."""
    from server_stub.db import serial_counter
    from server_stub.leases import SERIAL_RANGE, take_serials
    from tests.server_stub.conftest import _db_url

    gen = _db_url("postgresql", tmp_path)
    db_url = next(gen)
    engines = [make_engine(db_url) for _ in range(2)]
    try:
        admin.init_server(engines[0], 0, tmp_path / "keys")

        def take(i: int) -> list[tuple[int, int]]:
            got = []
            for n in (1, 7, 1000, 16_000, 3) * 30:
                with engines[i % 2].begin() as conn:
                    start = take_serials(conn, n)
                    if i % 3 == 0:
                        conn.rollback()  # a rolled-back batch skips its serials, never reuses them
                got.append((start, start + n))
            return got

        with ThreadPoolExecutor(6) as pool:
            ranges = sorted(r for part in pool.map(take, range(6)) for r in part)
        assert all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:], strict=False)), "overlap"
        assert ranges[0][0] >= 1 and ranges[-1][1] < 1 + SERIAL_RANGE * 200
        with engines[0].connect() as conn:
            assert conn.execute(sa.select(serial_counter.c.next_serial)).scalar() == 1
    finally:
        for e in engines:
            e.dispose()
        with pytest.raises(StopIteration):
            next(gen)


def _counted(engine: sa.Engine, device_id: str) -> tuple[int, int]:
    """What the device row's counters stand for, counted from the leases and records."""
    from server_stub.db import records

    with engine.connect() as conn:
        leased = conn.execute(
            sa.select(sa.func.sum(leases.c.end_serial - leases.c.start_serial)).where(
                leases.c.device_id == device_id
            )
        ).scalar_one()
        used = conn.execute(
            sa.select(sa.func.count()).where(
                records.c.device_id == device_id,
                records.c.kind == "sale",
                records.c.token.is_not(None),
                ~records.c.token.startswith("P"),
            )
        ).scalar_one()
    return int(leased), int(used)


def _counters(engine: sa.Engine, device_id: str) -> tuple[int, int]:
    from server_stub.db import devices

    with engine.connect() as conn:
        row = conn.execute(
            sa.select(devices.c.serials_leased, devices.c.tokens_used).where(devices.c.device_id == device_id)
        ).one()
    return int(row.serials_leased), int(row.tokens_used)


def test_the_device_row_keeps_its_leased_and_used_serials_and_migration_0006_counts_them(
    server: Harness, tmp_path: Path
) -> None:
    """The lease cap reads the device's counters instead of counting its records: they follow
    every grant and every stored record (a resend counts nothing twice), and 0006 fills them in."""
    from alembic import command

    from server_stub.db import _alembic_config, migrate

    fake = server.enrolled()
    recs = fake.make_records(700)
    for i in range(0, 700, 350):
        assert {a["status"] for a in fake.push(recs[i : i + 350]).json()["acks"]} == {"accepted"}
    assert {a["status"] for a in fake.push(recs[:350]).json()["acks"]} == {"duplicate"}
    fake.lease(2)
    counted = _counted(server.engine, fake.device_id)
    assert counted[1] > 0 and _counters(server.engine, fake.device_id) == counted
    keys_dir = tmp_path / "keys"
    with server.engine.begin() as conn:
        command.downgrade(_alembic_config(conn, keys_dir), "0005")
    migrate(server.engine, keys_dir)
    assert _counters(server.engine, fake.device_id) == counted
