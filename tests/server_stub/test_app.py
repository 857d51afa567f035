"""The app never locks itself: keys loaded at start-up, reads that don't wait for writers, and a
busy database or pool answered 503 with Retry-After (JSON), never a 500 or a 30 s wait."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from server_stub import admin
from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.db import make_engine, read, write
from tests.server_stub.conftest import ThreadServer, free_port, kiosk_server_argv
from tests.server_stub.kiosk_fake import FakeKiosk

ENROLLS = 20


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline_s: float = 60) -> None:
    """Until the port accepts a TCP connection: no HTTP request, so nothing is warmed up."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)  # polling with a deadline
    raise AssertionError("the server never listened")


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """`kiosk-server serve` on a new SQLite file, never asked anything yet; 10 enrollment codes."""
    db = f"sqlite:///{tmp_path / 'server.db'}"
    engine = make_engine(db)
    admin.init_server(engine, int(time.time() * 1000))
    with write(engine) as conn:
        lsp = admin.create_lsp(conn, "Fresh", 0).lsp_id
        codes = [
            admin.create_kiosk(conn, lsp, f"k{i}", int(time.time() * 1000), 1).enrollment_code
            for i in range(10)
        ]
    engine.dispose()
    port = free_port()
    argv = kiosk_server_argv(db, "serve", "--port", str(port), "--rate-limit", "0", "--log-level", "warning")
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_listening(port, proc)
        yield f"http://127.0.0.1:{port}", codes
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        assert b"Traceback" not in err, err.decode(errors="replace")


def test_20_concurrent_enrolls_on_a_fresh_server_all_answer_without_a_lock_wait(
    fresh_server: tuple[str, list[str]],
) -> None:
    url, codes = fresh_server
    start = threading.Barrier(ENROLLS)

    def one(i: int) -> tuple[int, float]:
        fake = FakeKiosk(url, requests.Session())
        code = codes[i // 2] if i % 2 == 0 else f"BOGU-S{i:03d}-CODE"
        body = {"enrollment_code": code, "device_public_key": fake_key(fake), "device_id": fake.device_id}
        start.wait()
        t0 = time.monotonic()
        resp = fake.session.post(f"{url}/v1/enroll", json=body, timeout=60)
        took = time.monotonic() - t0
        deadline = t0 + 30
        while resp.status_code == 429 and time.monotonic() < deadline:  # shed before any work
            assert resp.json()["error"] == "busy"
            time.sleep(int(resp.headers["Retry-After"]))  # the appointment it gave, as the agent keeps it
            resp = fake.session.post(f"{url}/v1/enroll", json=body, timeout=60)
        return resp.status_code, took

    with ThreadPoolExecutor(ENROLLS) as pool:
        answers = list(pool.map(one, range(ENROLLS)))
    assert sorted(status for status, _ in answers) == [200] * 10 + [401] * 10
    # The defect was a self-lock: requests waited out the 30 s lock timeout and got 503s. About 0.3 s
    # on a quiet box; the bound leaves room for a box shared with other test processes.
    slowest = max(took for _, took in answers)
    assert slowest < 10.0, f"the slowest first answer took {slowest:.1f} s"


def fake_key(fake: FakeKiosk) -> str:
    from sync.wire.canonical import public_key_b64

    return public_key_b64(fake.key.public_key())


def test_a_read_does_not_wait_for_an_open_write(tmp_path: Path) -> None:
    """SQLite: a deferred read goes on while another connection holds the write lock."""
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    admin.init_server(engine, 0)
    with write(engine) as conn:
        conn.execute(sa.text("UPDATE serial_counter SET next_serial = next_serial"))
        t0 = time.monotonic()
        with read(engine) as other:
            assert other.execute(sa.text("SELECT count(*) FROM lsps")).scalar() == 0
        assert time.monotonic() - t0 < 1.0
    engine.dispose()


def test_no_free_connection_answers_503_with_retry_after(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    admin.init_server(make_engine(db), 0)
    engine = sa.create_engine(db, pool_size=1, max_overflow=0, pool_timeout=0.2)
    config = ServerConfig(db=db)
    with ThreadServer(create_app(config, engine=engine)) as ts:
        held = engine.connect()  # the only connection in the pool
        try:
            resp = requests.get(ts.url + "/healthz", timeout=30)
        finally:
            held.close()
        assert resp.status_code == 503 and resp.headers["Retry-After"] == "5"
        assert resp.json() == {"error": "unavailable", "detail": "the server is busy; try again"}
        assert requests.get(ts.url + "/healthz", timeout=30).status_code == 200
    engine.dispose()
