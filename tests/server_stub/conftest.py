"""Server fixtures: a database (SQLite file, or a fresh PostgreSQL schema when
KIOSK_TEST_POSTGRES_URL is set), a real uvicorn serving the app on a free loopback port,
and helpers to add LSPs, kiosks and enrolled fake kiosks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import uvicorn

from agent.harness import free_port as free_port  # the one copy, shared with e2e and bench
from server_stub import admin
from server_stub.app import create_app
from server_stub.config import ServerConfig
from server_stub.db import make_engine
from tests.server_stub.kiosk_fake import FakeKiosk

PG_ENV = "KIOSK_TEST_POSTGRES_URL"
PG_URL = os.environ.get(PG_ENV)
PG_SKIP = pytest.mark.skipif(
    not PG_URL,
    reason=f"PostgreSQL tests need {PG_ENV} (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)",
)
DB_KINDS = [pytest.param("sqlite", id="sqlite"), pytest.param("postgresql", id="postgresql", marks=PG_SKIP)]


class Clock:
    """A settable clock (seconds); follows real time unless frozen."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture(params=DB_KINDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from _db_url(request.param, tmp_path)


def _db_url(kind: str, tmp_path: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'server.db'}"
        return
    assert PG_URL
    schema = "kt_" + secrets.token_hex(6)
    base = sa.create_engine(PG_URL)
    with base.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with base.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        base.dispose()


def wait_healthy(base_url: str, deadline_s: float = 30.0, proc: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}")
        try:
            if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.02)  # polling interval with a deadline, not a wait for an event
    raise AssertionError(f"{base_url} did not become healthy")


class ThreadServer:
    """uvicorn serving an app from a background thread on an ephemeral loopback port (port 0)."""

    def __init__(self, app: Any, lifespan: str = "off") -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0
        self.url = ""

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.005)  # polling with a deadline
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        wait_healthy(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Harness:
    url: str
    db_url: str
    engine: sa.Engine
    config: ServerConfig
    clock: Clock
    session: requests.Session = field(default_factory=requests.Session)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def lsp(self, name: str | None = None) -> admin.NewLsp:
        """A new LSP (names are unique: a random one unless given)."""
        with self.engine.begin() as conn:
            return admin.create_lsp(conn, name or f"LSP {secrets.token_hex(4)}", self.now_ms())

    def kiosk(self, lsp_id: str, name: str = "Shop", ttl_hours: int = 72) -> admin.NewKiosk:
        with self.engine.begin() as conn:
            return admin.create_kiosk(conn, lsp_id, name, self.now_ms(), ttl_hours)

    def enrolled(self, lsp_id: str | None = None) -> FakeKiosk:
        lsp_id = lsp_id or self.lsp().lsp_id
        fake = FakeKiosk(self.url, self.session)
        fake.enroll(self.kiosk(lsp_id).enrollment_code)
        return fake

    def lsp_get(self, api_key: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {api_key}", **kw.pop("headers", {})}
        return self.session.get(self.url + path, headers=headers, timeout=30, **kw)


@pytest.fixture
def start_server(db_url: str, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Start a thread server on ``db_url`` with config overrides; stopped at teardown. Its key files
    are in the test's own folder (also for PostgreSQL)."""
    running: list[tuple[ThreadServer, sa.Engine]] = []

    def start(**overrides: Any) -> Harness:
        config = ServerConfig(db=db_url, keys_dir=str(tmp_path / "keys")).replace(**overrides)
        engine = make_engine(db_url)
        admin.init_server(engine, int(time.time() * 1000), config.keys_path())
        clock = Clock()
        ts = ThreadServer(create_app(config, engine=engine, clock=clock)).__enter__()
        running.append((ts, engine))
        return Harness(ts.url, db_url, engine, config, clock)

    yield start
    for ts, engine in running:
        ts.__exit__()
        engine.dispose()


@pytest.fixture
def server(start_server: Callable[..., Harness]) -> Harness:
    return start_server(rate_per_s=0)


def kiosk_server_argv(db_url: str | None, *args: str) -> list[str]:
    """`kiosk-server [--db URL] ARGS` with this interpreter (the venv's console script needs no PATH)."""
    db = ["--db", db_url] if db_url is not None else []
    return [sys.executable, "-c", "from server_stub.cli import main; main()", *db, *args]


def run_cli(db_url: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kiosk_server_argv(db_url, *args), capture_output=True, text=True, timeout=120, cwd=cwd
    )
