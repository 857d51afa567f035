"""The lease fast path on PostgreSQL (server_stub/fastlease.py): one statement per grant, and every
refusal and idempotency rule of the full path kept (a bad signature, a replay or a revoked device
writes nothing; a request id is granted once even when sent on many connections at once; near the
cap, a request id granted before, and bad bodies are answered by the full path)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import sqlalchemy as sa

from server_stub import admin
from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.db import devices, leases, make_engine, nonces
from tests.server_stub.conftest import PG_SKIP, Clock, Harness, ThreadServer, _db_url
from tests.server_stub.kiosk_fake import FakeKiosk
from tests.server_stub.test_leases import _counts_records, _statements

pytestmark = PG_SKIP


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL only: SQLite has no fast path."""
    yield from _db_url("postgresql", tmp_path)


def _written(h: Harness, device_id: str) -> tuple[int, int, int]:
    """(lease rows, nonce rows, serials_leased) of the device."""
    with h.engine.connect() as conn:
        n_leases = conn.execute(
            sa.select(sa.func.count()).select_from(leases).where(leases.c.device_id == device_id)
        ).scalar_one()
        n_nonces = conn.execute(
            sa.select(sa.func.count()).select_from(nonces).where(nonces.c.device_id == device_id)
        ).scalar_one()
        leased = conn.execute(
            sa.select(devices.c.serials_leased).where(devices.c.device_id == device_id)
        ).scalar_one()
    return int(n_leases), int(n_nonces), int(leased)


def _ask(fake: FakeKiosk, body: dict[str, Any], **kw: Any) -> requests.Response:
    return fake.call("POST", "/v1/leases", body, **kw)


def test_a_grant_is_one_statement_sent_by_psycopg(
    start_server: Callable[..., Harness], monkeypatch: pytest.MonkeyPatch
) -> None:
    h = start_server(rate_per_s=0)
    fake = h.enrolled()
    assert _ask(fake, {"count": 1}).status_code == 200  # the first ask reads the device's key
    sent: list[str] = []
    execute = psycopg.AsyncConnection.execute

    async def recording(self: psycopg.AsyncConnection[Any], query: Any, *a: Any, **kw: Any) -> Any:
        sent.append(str(query))
        return await execute(self, query, *a, **kw)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", recording)
    with _statements(h.engine) as through_sqlalchemy:
        resp = _ask(fake, {"count": 3})
    assert resp.status_code == 200 and len(resp.json()["leases"]) == 3
    assert through_sqlalchemy == [] and len(sent) == 1 and sent[0].startswith("WITH bump AS")
    with h.engine.connect() as conn:
        rows = conn.execute(sa.select(leases).where(leases.c.device_id == fake.device_id)).all()
    stored = {(r.lease_id, r.start_serial, r.end_serial, r.sig, r.request_id) for r in rows}
    assert {
        (g["lease_id"], g["start_serial"], g["end_serial"], g["sig"], None) for g in resp.json()["leases"]
    } <= stored
    assert _written(h, fake.device_id) == (2 + 1 + 3, 2, sum(r.end_serial - r.start_serial for r in rows))


def test_a_bad_signature_writes_no_nonce_and_no_lease(server: Harness) -> None:
    for warm in (False, True):  # the device's key read now, or cached from an earlier grant
        fake = server.enrolled()
        if warm:
            assert _ask(fake, {"count": 1}).status_code == 200
        before = _written(server, fake.device_id)
        nonce = ("ab" if warm else "ba") * 16
        headers = fake.signed_headers("POST", "/v1/leases", b'{"count":2}', nonce=nonce)
        headers["Content-Type"] = "application/json"
        resp = server.session.post(server.url + "/v1/leases", data=b'{"count":1}', headers=headers)
        assert resp.status_code == 401 and resp.json()["error"] == "bad_signature"
        assert _written(server, fake.device_id) == before
        assert _ask(fake, {"count": 1}, nonce=nonce).status_code == 200  # its nonce was not kept
        again = _ask(fake, {"count": 1}, nonce=nonce)
        assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"
        assert _written(server, fake.device_id)[:2] == (before[0] + 1, before[1] + 1)


def test_a_revoked_device_is_refused_and_writes_nothing(server: Harness) -> None:
    cached, cold = server.enrolled(), server.enrolled()
    assert _ask(cached, {"count": 1}).status_code == 200  # its key is cached now
    with server.engine.begin() as conn:
        for fake in (cached, cold):
            assert admin.revoke_device(conn, fake.kiosk_code, server.now_ms()) == [fake.device_id]
    for fake in (cached, cold):
        before = _written(server, fake.device_id)
        resp = _ask(fake, {"count": 1})
        assert resp.status_code == 401 and resp.json()["error"] == "device_revoked"
        assert _written(server, fake.device_id) == before


def test_one_request_id_on_many_connections_at_once_is_granted_once(server: Harness) -> None:
    """Eight connections send the same request id at the same moment (a kiosk retrying while its
    first ask is still in flight), five times over: every answer is the same blocks, stored once."""
    fake = server.enrolled()
    for round_ in range(5):
        body = f'{{"count":2,"request_id":"same-{round_:04d}-aaaa"}}'.encode()
        start = threading.Barrier(8)

        def ask(_: int, body: bytes = body, start: threading.Barrier = start) -> requests.Response:
            headers = fake.signed_headers("POST", "/v1/leases", body)
            headers["Content-Type"] = "application/json"
            with requests.Session() as s:
                start.wait(timeout=30)
                return s.post(server.url + "/v1/leases", data=body, headers=headers, timeout=60)

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, range(8)))
        assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
        assert len({r.text for r in answers}) == 1 and len(answers[0].json()["leases"]) == 2
    n_leases, _, leased = _written(server, fake.device_id)
    assert n_leases == 2 + 5 * 2 and leased == n_leases * server.config.block_size


def test_near_the_cap_and_for_a_request_id_granted_before_the_full_path_answers(
    start_server: Callable[..., Harness],
) -> None:
    """Each of these takes the device's rate limit once: a request the full path answers after the
    fast path let it in is not charged twice."""
    h = start_server(rate_per_s=0.001, rate_burst=4, block_size=1000, lease_cap_min=10_000)
    fake = h.enrolled()  # holds 2 blocks
    ask = {"count": 8, "request_id": "cap-0001-aaaa"}
    with _statements(h.engine) as sent:
        first = _ask(fake, ask)  # 10,000 held: at the minimum, granted by the fast path
    assert first.status_code == 200 and sent == []
    with _statements(h.engine) as sent:
        again = _ask(fake, ask)  # granted before: the full path reads its blocks
    assert again.status_code == 200 and again.json() == first.json() and sent
    with _statements(h.engine) as sent:
        refused = _ask(fake, {"count": 1})  # past the minimum: the full path counts the rate window
    assert refused.status_code == 409 and refused.json()["error"] == "lease_cap_reached"
    assert _counts_records(sent)
    assert _ask(fake, {"count": 1}).status_code == 409  # the 4th request: still within the burst
    limited = _ask(fake, {"count": 1})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_a_body_the_fast_path_does_not_take_gets_the_full_paths_answer(server: Harness) -> None:
    fake = server.enrolled()
    bad = _ask(fake, {"count": 0})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_request"
    gzipped = _ask(fake, {"count": 2}, encoding="gzip")
    assert gzipped.status_code == 200 and len(gzipped.json()["leases"]) == 2
    not_json = fake.call("POST", "/v1/leases", raw=b"count=1", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415


def test_a_lost_database_connection_is_a_503_and_the_next_ask_gets_a_new_one(
    server: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = server.enrolled()
    pids: list[int] = []  # the backend of each statement the fast path sends
    execute = psycopg.AsyncConnection.execute

    async def noting(self: psycopg.AsyncConnection[Any], query: Any, *a: Any, **kw: Any) -> Any:
        pids.append(self.info.backend_pid)
        return await execute(self, query, *a, **kw)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", noting)
    assert _ask(fake, {"count": 1}).status_code == 200 and len(set(pids)) == 1
    killed = pids[-1]
    with server.engine.connect() as conn:
        conn.execute(sa.select(sa.func.pg_terminate_backend(killed)))
    lost = _ask(fake, {"count": 1})
    assert lost.status_code == 503 and lost.json()["error"] == "unavailable"
    assert lost.headers["Retry-After"] == "5" and pids[-1] == killed
    again = _ask(fake, {"count": 1})
    assert again.status_code == 200 and pids[-1] != killed


def test_every_256th_grant_sweeps_the_expired_nonces(start_server: Callable[..., Harness]) -> None:
    h = start_server(rate_per_s=0, lease_cap_min=10**7, lease_cap_max=10**7)
    fake = h.enrolled()
    with h.engine.begin() as conn:
        conn.execute(nonces.insert().values(device_id=fake.device_id, nonce="ee" * 16, expires_at=1))
    for i in range(256):
        with h.engine.connect() as conn:
            held = conn.execute(sa.select(nonces.c.nonce).where(nonces.c.expires_at == 1)).all()
        assert held, f"swept after {i} grants"
        assert _ask(fake, {"count": 1}).status_code == 200
    with h.engine.connect() as conn:
        left = conn.execute(sa.select(nonces.c.expires_at).where(nonces.c.device_id == fake.device_id)).all()
    assert len(left) == 256 and all(r.expires_at > 1 for r in left)


def test_a_big_answer_is_compressed_as_on_the_full_path(server: Harness) -> None:
    fake = server.enrolled()
    resp = _ask(fake, {"count": 16}, headers={"Accept-Encoding": "gzip"})  # ~2.5 KB of JSON
    assert resp.status_code == 200 and len(resp.json()["leases"]) == 16
    assert resp.headers["Content-Encoding"] == "gzip"
    small = _ask(fake, {"count": 1}, headers={"Accept-Encoding": "gzip"})
    assert small.status_code == 200 and "Content-Encoding" not in small.headers


def test_the_lifespan_closes_the_fast_paths_connections(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServerConfig(db=db_url, keys_dir=str(tmp_path / "keys"), rate_per_s=0)
    engine = make_engine(db_url)
    admin.init_server(engine, int(time.time() * 1000), config.keys_path())
    pids: set[int] = set()
    execute = psycopg.AsyncConnection.execute

    async def noting(self: psycopg.AsyncConnection[Any], query: Any, *a: Any, **kw: Any) -> Any:
        pids.add(self.info.backend_pid)
        return await execute(self, query, *a, **kw)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", noting)
    live = sa.select(sa.func.count()).where(sa.column("pid").in_(sa.bindparam("pids", expanding=True)))
    live = live.select_from(sa.table("pg_stat_activity", sa.column("pid")))
    try:
        with ThreadServer(create_app(config, engine=engine), lifespan="on") as ts:
            h = Harness(ts.url, db_url, engine, config, Clock())
            assert _ask(h.enrolled(), {"count": 1}).status_code == 200
            with engine.connect() as conn:
                assert pids and conn.execute(live, {"pids": list(pids)}).scalar_one() == len(pids)
        deadline = time.monotonic() + 10
        with engine.connect() as conn:
            while conn.execute(live, {"pids": list(pids)}).scalar_one() and time.monotonic() < deadline:
                conn.rollback()  # a fresh pg_stat_activity snapshot
                time.sleep(0.05)  # polling with a deadline
            assert conn.execute(live, {"pids": list(pids)}).scalar_one() == 0
    finally:
        engine.dispose()
