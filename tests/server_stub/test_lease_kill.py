"""SIGKILL the whole server (2 worker processes, PostgreSQL) in the middle of lease grants.

8 enrolled kiosks ask for leases in a loop, each with its own request ids, the way the agent asks:
a connection error, a timeout, a 429 or a 5xx is asked again with the SAME request_id (a new nonce
and signature); a 200 moves on to a new id (and now and then asks an answered id once more, as an
agent that lost the answer would). Three times (after a seeded random number of answers) the
server's process group is SIGKILLed and started again on the same port.

The worst moment is made to happen, not hoped for: just before each kill the test holds a random
half of the devices' rows (``SELECT ... FOR UPDATE`` on its own connection) until their grants are
waiting on those rows inside PostgreSQL, kills the server, then lets go. Those statements run on
after their server died (PostgreSQL does not look for a gone client while a statement runs) and
commit a grant whose answer nobody receives: the retry must get exactly those blocks. At the
second kill the rows stay held until the restarted server's retries of those very requests wait
on them too, so a dead server's grant and its retry meet in the database (the retry's statement
then fails on REPEATABLE READ and the full path reads the grant). The other half of the devices
are wherever the kill finds them.

Then the database must hold every block a kiosk was given, for its device, disjoint; one grant per
request id, the same blocks each time it was answered; each device's ``serials_leased`` equal to
its lease rows (the cap's bookkeeping); nothing for a request refused with a 4xx.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from server_stub import admin
from server_stub.db import devices, leases, make_engine
from tests.server_stub.conftest import PG_SKIP, _db_url, free_port, kiosk_server_argv, wait_healthy
from tests.server_stub.kiosk_fake import FakeKiosk
from tests.server_stub.test_leases import _assert_disjoint

SEED = 20261202
DEVICES = 8
ANSWERS = 30  # 200s per device before it stops
KILLS = 3
REPLAY_ONE_IN = 8  # after a 200, ask the same request id once more
BLOCK = 100
NO_CAP = 10**7  # every grant stays under lease_cap_min: the fast path's one statement
HELD_ACROSS_RESTART = (1,)  # which kills keep the rows held until the new server's retries wait too
ATTEMPT_TIMEOUT_S = 15
DEADLINE_S = 120  # the whole run; a loop past it fails the test
PATH = "/v1/leases"

Block = tuple[int, int, int, str]  # lease_id, start_serial, end_serial, sig


def _block(x: dict[str, Any]) -> Block:
    return (x["lease_id"], x["start_serial"], x["end_serial"], x["sig"])


@dataclass
class Asked:
    """One request id and what became of it."""

    request_id: str
    count: int
    lost: list[int] = field(default_factory=list)  # runs in which an attempt got no answer
    answers: list[tuple[int, frozenset[Block]]] = field(default_factory=list)  # (run, blocks) per 200
    refused: int | None = None  # a 4xx: the agent gives the request up


class Server:
    """``kiosk-server serve --workers 2`` in a session of its own: SIGKILL reaches the supervisor and
    both workers at once (``os.killpg``); started again on the same port and database."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.argv, self.env, self.log = argv, env, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.up = threading.Event()  # set while a started server answers
        self.run = -1  # which start is running (0, 1, ...)
        self.started_ms: list[int] = []  # when each start began (a lease's issued_at names its start)

    def start(self) -> None:
        self.started_ms.append(int(time.time() * 1000))
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        wait_healthy(self.url, 60, self.proc)
        self.run += 1
        self.up.set()

    def kill(self) -> None:
        assert self.proc is not None
        self.up.clear()
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        _wait_group_gone(self.proc.pid)
        self.proc = None


def _wait_group_gone(pgid: int, deadline_s: float = 15) -> None:
    """Until no live process of the group is left (a worker still alive would keep the port)."""
    deadline = time.monotonic() + deadline_s
    while _group_members(pgid):
        assert time.monotonic() < deadline, f"processes of group {pgid} outlived SIGKILL"
        time.sleep(0.01)  # polling with a deadline


def _group_members(pgid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


class Clients:
    """The 8 kiosks' threads, and how many 200s they have had."""

    def __init__(self, server: Server, fakes: list[FakeKiosk], seed: int) -> None:
        self.server, self.fakes = server, fakes
        self.rngs = [random.Random(seed + i) for i in range(len(fakes))]
        self.cond = threading.Condition()
        self.answered = [0] * len(fakes)
        self.deadline = time.monotonic() + DEADLINE_S
        self.futures: list[Future[list[Asked]]] = []
        self.halt = threading.Event()  # the test failed: the kiosks stop

    def total(self) -> int:
        return sum(self.answered)

    def running(self) -> list[int]:
        return [i for i, n in enumerate(self.answered) if n < ANSWERS - 1]  # not about to finish

    def failed(self) -> bool:
        return any(f.done() and f.exception() is not None for f in self.futures)

    def wait_for(self, answers: int) -> None:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: self.total() >= answers or self.failed(), self.deadline - time.monotonic()
            )
        assert ok and not self.failed(), f"{self.total()} answers of the {answers} awaited"

    def device(self, i: int) -> list[Asked]:
        fake, rng = self.fakes[i], self.rngs[i]
        fake.session = requests.Session()
        asked: list[Asked] = []
        while self.answered[i] < ANSWERS:
            req = Asked(f"kg-{i}-{len(asked):04d}-{rng.getrandbits(32):08x}", rng.randint(1, 16))
            asked.append(req)
            self.ask(fake, req)
            if req.answers:
                with self.cond:
                    self.answered[i] += 1
                    self.cond.notify_all()
                if rng.randrange(REPLAY_ONE_IN) == 0:
                    self.ask(fake, req)  # an answer the agent lost: the same id once more
        return asked

    def ask(self, fake: FakeKiosk, req: Asked) -> None:
        """Until answered: a 200 (its blocks kept) or a 4xx (given up)."""
        body = json.dumps({"count": req.count, "request_id": req.request_id}).encode()
        while True:
            left = self.deadline - time.monotonic()
            assert left > 0, f"{req.request_id} was never answered"
            assert self.server.up.wait(left), "the server did not come back"
            assert not self.halt.is_set(), "stopped: the test failed"
            run = self.server.run
            headers = {"Content-Type": "application/json", **fake.signed_headers("POST", PATH, body)}
            try:
                resp = fake.session.post(
                    self.server.url + PATH, data=body, headers=headers, timeout=ATTEMPT_TIMEOUT_S
                )
            except requests.RequestException:  # as the agent: no answer (a refused or cut link, a timeout)
                req.lost.append(run)
                continue
            if resp.status_code == 200:
                req.answers.append((run, frozenset(_block(x) for x in resp.json()["leases"])))
                return
            if resp.status_code == 429 or resp.status_code >= 500:
                req.lost.append(run)
                self.halt.wait(min(1.0, float(resp.headers.get("Retry-After", "0.05"))))  # as the agent
                continue
            req.refused = resp.status_code
            return


@contextmanager
def _rows_held(engine: sa.Engine, device_ids: list[str]) -> Iterator[sa.Connection]:
    """The devices' rows locked (``FOR UPDATE``) until the block ends (then rolled back)."""
    with engine.connect() as conn:
        query = sa.select(devices.c.device_id).where(devices.c.device_id.in_(device_ids))
        assert len(conn.execute(query.with_for_update()).all()) == len(device_ids)
        yield conn
        conn.rollback()


def _waiting_on(engine: sa.Engine, holder: sa.Connection, want: int, deadline_s: float = 10) -> int:
    """How many statements wait, directly or behind another waiter, on ``holder``'s locks; polled
    until ``want`` or the deadline."""
    pid = holder.execute(sa.select(sa.func.pg_backend_pid())).scalar_one()
    activity = sa.table("pg_stat_activity", sa.column("pid"), sa.column("wait_event_type"))
    waits = sa.select(activity.c.pid, sa.func.pg_blocking_pids(activity.c.pid)).where(
        activity.c.wait_event_type == "Lock"
    )
    deadline = time.monotonic() + deadline_s
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        while True:
            blockers = {int(w): {int(b) for b in by} for w, by in conn.execute(waits)}
            behind, grew = {pid}, True
            while grew:  # the waiters queued behind the holder, transitively
                more = {w for w, by in blockers.items() if by & behind} - behind
                behind, grew = behind | more, bool(more)
            n = len(behind) - 1
            if n >= want or time.monotonic() > deadline:
                return n
            time.sleep(0.005)  # polling with a deadline


def _serve_argv(db_url: str, keys: Path, port: int) -> list[str]:
    flags = {"--port": port, "--workers": 2, "--rate-limit": 0, "--block-size": BLOCK}
    flags |= {"--lease-cap-min": NO_CAP, "--lease-cap-max": NO_CAP}
    serve = ["serve", "--host", "127.0.0.1", "--log-level", "warning"]
    serve += [str(x) for kv in flags.items() for x in kv]
    return kiosk_server_argv(db_url, "--keys-dir", str(keys), *serve)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from _db_url("postgresql", tmp_path)


@PG_SKIP
def test_sigkill_mid_grant_loses_no_lease_and_grants_no_request_twice(pg_url: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    engine = make_engine(pg_url)
    keys = tmp_path / "keys"
    now_ms = int(time.time() * 1000)
    admin.init_server(engine, now_ms, keys)
    with engine.begin() as conn:
        lsp = admin.create_lsp(conn, "P", now_ms).lsp_id
        codes = [admin.create_kiosk(conn, lsp, f"k{i}", now_ms, 1).enrollment_code for i in range(DEVICES)]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    port = free_port()
    server = Server(_serve_argv(pg_url, keys, port), env, tmp_path / "server.log", port)
    try:
        server.start()
        fakes = [FakeKiosk(server.url) for _ in codes]
        for fake, code in zip(fakes, codes, strict=True):
            fake.enroll(code)
        asked = _run_with_kills(server, fakes, engine, rng)
    finally:
        if server.proc is not None:
            server.kill()
    try:
        _check(engine, server, fakes, asked)
    finally:
        engine.dispose()


def _run_with_kills(
    server: Server, fakes: list[FakeKiosk], engine: sa.Engine, rng: random.Random
) -> list[list[Asked]]:
    """The kiosks' loops and the kills; returns what each kiosk asked."""
    clients = Clients(server, fakes, rng.randrange(2**32))
    total = DEVICES * ANSWERS
    moments = sorted(rng.sample(range(total // 6, total * 5 // 6), KILLS))
    held = []
    with ThreadPoolExecutor(DEVICES) as pool:
        clients.futures = [pool.submit(clients.device, i) for i in range(DEVICES)]
        try:
            for k, moment in enumerate(moments):
                clients.wait_for(moment)
                held.append(_kill_mid_grant(server, clients, engine, rng, across=k in HELD_ACROSS_RESTART))
        except BaseException:
            clients.halt.set()
            server.up.set()  # wakes the kiosks waiting for a server, to stop
            raise
        asked = [f.result(timeout=DEADLINE_S) for f in clients.futures]
    assert all(n >= 1 for n, _ in held), f"grants waiting in the database at each kill: {held}"
    return asked


def _kill_mid_grant(
    server: Server, clients: Clients, engine: sa.Engine, rng: random.Random, *, across: bool
) -> tuple[int, int]:
    """One SIGKILL with a random half of the running devices' grants waiting on their rows in the
    database; the rows let go before the restart, or (``across``) once the new server's retries of
    those requests wait on them too: the dead server's statements and their retries then meet.
    Returns how many statements waited at the kill, and at the release."""
    running = clients.running()
    assert running, "every kiosk finished before the kill"
    chosen = rng.sample(running, max(1, len(running) // 2))
    with _rows_held(engine, [clients.fakes[i].device_id for i in chosen]) as holder:
        at_kill = at_release = _waiting_on(engine, holder, len(chosen))
        server.kill()
        if across:
            server.start()
            at_release = _waiting_on(engine, holder, at_kill + len(chosen))
            assert at_release > at_kill, f"no retry met the dead server's {at_kill} waiting statements"
    if not across:
        server.start()
    return at_kill, at_release


def _run_of(server: Server, issued_at: int) -> int:
    """Which start of the server granted a lease issued at ``issued_at`` (ms)."""
    runs = [r for r, started in enumerate(server.started_ms) if started <= issued_at]
    assert runs, issued_at
    return runs[-1]


def _starts(blocks: set[Block] | frozenset[Block] | None) -> list[int]:
    """Blocks as their first serials, for a readable failure."""
    return sorted(b[1] for b in blocks or ())


def _grants(rows: list[sa.Row[Any]]) -> dict[tuple[str, str], tuple[set[Block], set[int]]]:
    """The stored blocks and their issue times per (device, request id)."""
    out: dict[tuple[str, str], tuple[set[Block], set[int]]] = {}
    for r in rows:
        if r.request_id is not None:
            blocks, issued = out.setdefault((r.device_id, r.request_id), (set(), set()))
            blocks.add((r.lease_id, r.start_serial, r.end_serial, r.sig))
            issued.add(r.issued_at)
    return out


def _check(engine: sa.Engine, server: Server, fakes: list[FakeKiosk], asked: list[list[Asked]]) -> None:
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(leases)).all())
        leased = dict(conn.execute(sa.select(devices.c.device_id, devices.c.serials_leased)).all())
    _assert_disjoint([(r.start_serial, r.end_serial, r.device_id) for r in rows], BLOCK)
    stored = {(r.device_id, (r.lease_id, r.start_serial, r.end_serial, r.sig)) for r in rows}
    grants = _grants(rows)
    recovered = 0
    for fake, mine in zip(fakes, asked, strict=True):
        held = {(fake.device_id, _block(x)) for x in fake.enrollment["leases"]}
        for req in mine:
            blocks_stored, issued = grants.get((fake.device_id, req.request_id), (set(), set()))
            if not req.answers:  # refused with a 4xx: the agent gave it up
                assert not blocks_stored, f"{req.request_id} refused {req.refused}, yet granted"
                continue
            got = {blocks for _run, blocks in req.answers}
            assert len(got) == 1, f"{req.request_id} answered twice, differently: {list(map(_starts, got))}"
            (blocks,) = got
            assert blocks_stored == blocks, (
                f"{req.request_id}: answered {_starts(blocks)}, stored {_starts(blocks_stored)}"
            )
            assert len(blocks) == req.count
            held |= {(fake.device_id, b) for b in blocks}
            (granted_in,) = {_run_of(server, t) for t in issued}
            if granted_in < req.answers[0][0]:  # granted by a server that died before answering
                assert granted_in in req.lost, req
                recovered += 1
        assert held <= stored, (
            f"blocks given to {fake.device_id} are not stored: {_starts({b for _, b in held - stored})}"
        )
        mine_rows = [r for r in rows if r.device_id == fake.device_id]
        assert leased[fake.device_id] == sum(r.end_serial - r.start_serial for r in mine_rows), fake.device_id
    sent = {(f.device_id, req.request_id) for f, mine in zip(fakes, asked, strict=True) for req in mine}
    assert set(grants) <= sent, "a lease row names a request id nobody sent"
    assert recovered >= KILLS, (
        f"only {recovered} grants were committed by a server that died before answering"
    )
