"""The storm's server side: a fresh database, `kiosk-server serve` as a real process, its CPU time
from /proc, the CPU of its PostgreSQL backends, and the integrity check of what it stored; and the do-nothing
server (bench/bare_server.py) that gives the lease storm its ceiling.

The database is read with SQLAlchemy Core on tables reflected from the database itself, so the
check depends on the schema (records, devices, tokens, quarantine, leases), not on where the
server's modules keep it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.kiosks import ROOT, SimKiosk, process, server_argv
from server_stub import admin
from server_stub.db import make_engine
from sync.wire.canonical import genesis_hash

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _now_ms() -> int:
    return int(time.time() * 1000)


def pg_base_url(db: str) -> str | None:
    """The PostgreSQL URL for ``db`` ("postgresql" or a postgresql+psycopg:// URL); None for SQLite."""
    if db == "sqlite":
        return None
    if db == "postgresql":
        return os.environ.get("KIOSK_TEST_POSTGRES_URL") or DEFAULT_PG_URL
    if db.startswith("postgresql"):
        return db
    raise ValueError(f"--db must be sqlite, postgresql or a postgresql+psycopg:// URL, not {db!r}")


@contextlib.contextmanager
def database(db: str, workdir: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in ``workdir``, or a new PostgreSQL schema dropped afterwards
    (the server reaches it through ``options=-csearch_path=<schema>``; its connections carry the
    schema's name as application_name, which is how their backends are found)."""
    base = pg_base_url(db)
    if base is None:
        yield f"sqlite:///{workdir / 'server.db'}"
        return
    schema = "storm_" + secrets.token_hex(6)
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(schema))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}", "application_name": schema})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.schema.DropSchema(schema, cascade=True))
        engine.dispose()


# --- CPU time from /proc ------------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu(root: int) -> tuple[float, frozenset[int]]:
    """CPU seconds of ``root`` and every live descendant (uvicorn's workers), and their pids."""
    stats = {int(e.name): s for e in os.scandir("/proc") if e.name.isdigit() and (s := _stat(int(e.name)))}
    pids, todo = {root}, [root]
    while todo:
        parent = todo.pop()
        kids = [pid for pid, (ppid, _) in stats.items() if ppid == parent and pid not in pids]
        pids.update(kids)
        todo += kids
    return sum(stats[p][1] for p in pids if p in stats), frozenset(pids)


class PgBackendCpu:
    """CPU seconds of the PostgreSQL backends serving one schema, sampled every 0.2 s from
    pg_stat_activity (by application_name) and /proc. A lower bound: a backend that exits between
    two samples loses its last fraction of a second."""

    def __init__(self, base_url: str, application_name: str) -> None:
        self._engine = sa.create_engine(base_url, poolclass=sa.pool.NullPool)
        self._name = application_name
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _pids(self, conn: sa.Connection) -> list[int]:
        activity = sa.table("pg_stat_activity", sa.column("pid"), sa.column("application_name"))
        query = sa.select(activity.c.pid).where(activity.c.application_name == self._name)
        return [int(p) for p in conn.execute(query).scalars()]

    def _sample(self, conn: sa.Connection, baseline: bool) -> None:
        for pid in self._pids(conn):
            st = _stat(pid)
            if st is not None:
                self._first.setdefault(pid, st[1] if baseline else 0.0)
                self._last[pid] = st[1]

    def _run(self) -> None:
        with self._engine.connect() as conn:
            self._sample(conn, baseline=True)
            self._started.set()
            while not self._stop.wait(0.2):
                conn.rollback()  # a new transaction sees backends connected since (a fresh stats snapshot)
                self._sample(conn, baseline=False)
            conn.rollback()
            self._sample(conn, baseline=False)

    def __enter__(self) -> PgBackendCpu:
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self._engine.dispose()

    @property
    def seconds(self) -> float:
        return sum(self._last[p] - self._first[p] for p in self._last)


# --- the server process --------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int
    db_url: str
    engine: sa.Engine
    lsp_id: str
    log: Path
    enroll_shed: int = 0  # enrollments answered 429/503 or failed (timeout), then retried

    def cpu_s(self) -> float:
        return tree_cpu(self.pid)[0]

    def pg_backends(self) -> PgBackendCpu | contextlib.nullcontext[None]:
        url = make_url(self.db_url)
        name = url.query.get("application_name")
        if url.get_backend_name() != "postgresql" or not isinstance(name, str):
            return contextlib.nullcontext()
        base = url.difference_update_query(["options", "application_name"])
        return PgBackendCpu(base.render_as_string(hide_password=False), name)

    def new_kiosks(self, n: int, records: int, workers: int = 8, **backlog: Any) -> list[SimKiosk]:
        """``n`` kiosks added with the admin module, enrolled over HTTP, backlogs pre-signed."""
        with self.engine.begin() as conn:
            codes = [
                admin.create_kiosk(conn, self.lsp_id, f"storm {i}", _now_ms(), 72).enrollment_code
                for i in range(n)
            ]
        kiosks = [SimKiosk() for _ in codes]
        self.enroll_shed += _enroll_all(self.url, kiosks, codes, workers)
        for k in kiosks:
            k.build_backlog(records, **backlog)
        return kiosks

    def exceptions(self) -> Counter[str]:
        """Exception names in the server's log (tracebacks of 5xx answers, pool timeouts, ...)."""
        pattern = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Timeout))\b")
        with contextlib.suppress(OSError), self.log.open(encoding="utf-8", errors="replace") as f:
            return Counter(m.group(1) for line in f if (m := pattern.match(line)))
        return Counter()


def _enroll_all(url: str, kiosks: list[SimKiosk], codes: list[str], workers: int) -> int:
    """Enroll every kiosk over ``workers`` connections; a 429/503 is retried after its Retry-After
    or a failed call (as an operator would), up to 5 times per kiosk. Returns how many were retried."""
    todo = list(zip(kiosks, codes, strict=True))
    lock = threading.Lock()
    failures: list[str] = []
    shed = [0]

    def one(http: requests.Session, kiosk: SimKiosk, code: str) -> None:
        why = ""
        for _ in range(5):
            try:
                resp = kiosk.try_enroll(http, url, code)
            except requests.RequestException as exc:  # e.g. a 60 s read timeout
                why, wait = exc.__class__.__name__, 1.0
            else:
                if resp.status_code == 200:
                    return
                why = f"{resp.status_code}: {resp.text[:200]}"
                if resp.status_code not in (429, 503):
                    break
                wait = min(10.0, float(resp.headers.get("Retry-After") or 1))
            with lock:
                shed[0] += 1
            time.sleep(wait)
        failures.append(f"enrollment failed: {why}")

    def work() -> None:
        with requests.Session() as http:
            while True:
                with lock:
                    if not todo or failures:
                        return
                    kiosk, code = todo.pop()
                one(http, kiosk, code)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise RuntimeError(failures[0])
    return shed[0]


@contextlib.contextmanager
def serve(
    db: str,
    workers: int,
    *,
    rate_limit: float | None = None,
    workdir: Path | None = None,
    flags: tuple[str, ...] = (),
) -> Iterator[Server]:
    """A fresh database and `kiosk-server serve --workers N` on it, with one LSP."""
    with contextlib.ExitStack() as stack:
        tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-storm-")))
        db_url = stack.enter_context(database(db, tmp))
        engine = make_engine(db_url)
        stack.callback(engine.dispose)
        keys_dir = tmp / "keys"  # the server's key files (for PostgreSQL too): with the run, not in the cwd
        admin.init_server(engine, _now_ms(), keys_dir)
        with engine.begin() as conn:
            lsp_id = admin.create_lsp(conn, "storm", _now_ms()).lsp_id
        args = ["--keys-dir", str(keys_dir), "serve", "--host", "127.0.0.1", "--workers", str(workers)]
        args += ["--log-level", "warning"]
        if rate_limit is not None:
            args += ["--rate-limit", str(rate_limit)]
        args += list(flags)
        log = tmp / "server.log"
        url, pid = stack.enter_context(process(server_argv(db_url, *args), tmp, log))
        yield Server(url, pid, db_url, engine, lsp_id, log)


@contextlib.contextmanager
def bare(workers: int, app: str = "bench.bare_server:app") -> Iterator[tuple[str, int]]:
    """bench/bare_server.py (a do-nothing lease endpoint) with `serve`'s uvicorn settings: (url, pid).
    ``app`` "bench.bare_server:ours" is the same route inside the server's own app (a factory)."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
    argv += ["--factory"] if app.endswith(":ours") else []
    argv += ["--workers", str(workers), "--http", "httptools", "--loop", "uvloop", "--backlog", "4096"]
    argv += ["--timeout-keep-alive", "75", "--log-level", "warning", "--no-access-log"]
    with process(argv, ROOT) as running:
        yield running


def settle(server: Server, deadline_s: float = 60.0) -> None:
    """Wait (polling, with a deadline) until the server's processes stop using CPU: every worker
    is up and idle, so what is measured next is the storm's work."""
    deadline = time.monotonic() + deadline_s
    last = server.cpu_s()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = server.cpu_s()
        if now - last < 0.03:
            return
        last = now


# --- integrity ---------------------------------------------------------------------------------------


def _tables(engine: sa.Engine) -> dict[str, sa.Table]:
    md = sa.MetaData()
    md.reflect(engine, only=["records", "devices", "tokens", "quarantine", "leases"])
    return dict(md.tables)


@dataclass(frozen=True)
class Expected:
    """What one kiosk sent and what the server acked to it."""

    kiosk: SimKiosk
    acked_seq: int
    finals: dict[int, str]


def _stored(conn: sa.Connection, t: dict[str, sa.Table]) -> dict[str, list[Any]]:
    r, d, q = t["records"], t["devices"], t["quarantine"]
    return {
        "records": list(
            conn.execute(sa.select(r.c.device_id, r.c.seq, r.c.hash, r.c.token, r.c.final_token))
        ),
        "heads": list(conn.execute(sa.select(d.c.device_id, d.c.head_seq, d.c.head_hash))),
        "quarantine": list(conn.execute(sa.select(q.c.device_id))),
        "tokens": list(conn.execute(sa.select(t["tokens"].c.token))),
    }


def _token_checks(rows: list[Any], token_rows: list[Any]) -> dict[str, int]:
    """Across the whole database: no token on two records, no final token given twice or equal to
    a leased token, every token recorded in the tokens table."""
    tokens = Counter(row.token for row in rows if row.token)
    finals = Counter(row.final_token for row in rows if row.final_token)
    known = {row.token for row in token_rows}
    return {
        "duplicate_tokens": sum(n - 1 for n in tokens.values()),
        "duplicate_final_tokens": sum(n - 1 for n in finals.values()) + len(finals.keys() & tokens.keys()),
        "tokens_not_in_token_table": len((tokens.keys() | finals.keys()) - known),
    }


def verify(engine: sa.Engine, expected: list[Expected]) -> dict[str, Any]:
    """Compare the database with what the kiosks sent: counts of everything that is wrong."""
    with engine.connect() as conn:
        got = _stored(conn, _tables(engine))
    mine = {e.kiosk.device_id: e for e in expected}
    by_device: dict[str, dict[int, Any]] = {d: {} for d in mine}
    dup_seq = 0
    for row in got["records"]:
        if row.device_id in by_device:
            dup_seq += row.seq in by_device[row.device_id]
            by_device[row.device_id][row.seq] = row
    out: dict[str, Any] = {
        "sent": sum(len(e.kiosk.hashes) for e in expected),
        "stored": sum(len(v) for v in by_device.values()),
        "duplicate_seqs": dup_seq,
        **_chain_checks(mine, by_device),
        **_token_checks(got["records"], got["tokens"]),
        "head_wrong": _heads_wrong(mine, by_device, got["heads"]),
        "quarantined": sum(1 for row in got["quarantine"] if row.device_id in mine),
    }
    out["ok"] = out["stored"] == out["sent"] and not any(
        v for k, v in out.items() if k not in ("sent", "stored", "ok")
    )
    return out


def _chain_checks(mine: dict[str, Expected], by_device: dict[str, dict[int, Any]]) -> dict[str, int]:
    missing = lost = extra = wrong_hash = no_final = final_mismatch = 0
    for device_id, e in mine.items():
        rows = by_device[device_id]
        for seq, h in enumerate(e.kiosk.hashes, start=1):
            row = rows.get(seq)
            if row is None:
                missing += 1
                lost += seq <= e.acked_seq  # the server said it had it
                continue
            wrong_hash += row.hash != h
            if e.kiosk.tokens[seq].startswith("P"):
                no_final += not row.final_token
                final_mismatch += seq in e.finals and e.finals[seq] != row.final_token
        extra += sum(1 for seq in rows if not 1 <= seq <= len(e.kiosk.hashes))
    return {
        "missing": missing,
        "lost": lost,
        "extra": extra,
        "hash_mismatch": wrong_hash,
        "provisional_without_final": no_final,
        "final_token_mismatch": final_mismatch,
    }


def _heads_wrong(mine: dict[str, Expected], by_device: dict[str, dict[int, Any]], heads: list[Any]) -> int:
    """Devices whose chain head is not the kiosk's record at the highest stored seq."""
    wrong = 0
    seen = set()
    for row in heads:
        e = mine.get(row.device_id)
        if e is None:
            continue
        seen.add(row.device_id)
        top = max(by_device[row.device_id], default=0)
        want = e.kiosk.hashes[top - 1] if top else genesis_hash(row.device_id)
        wrong += (row.head_seq, row.head_hash) != (top, want)
    return wrong + len(mine.keys() - seen)


def leases_overlapping(engine: sa.Engine, granted: list[tuple[int, int]]) -> dict[str, int]:
    """Overlaps among the ranges the storm was granted, and among every lease the database holds."""
    with engine.connect() as conn:
        t = _tables(engine)["leases"]
        stored = [
            (r.start_serial, r.end_serial) for r in conn.execute(sa.select(t.c.start_serial, t.c.end_serial))
        ]

    def overlaps(ranges: list[tuple[int, int]]) -> int:
        ranges = sorted(ranges)
        return sum(1 for a, b in zip(ranges, ranges[1:], strict=False) if b[0] < a[1])

    missing = len(set(granted) - set(stored))
    return {
        "granted_overlaps": overlaps(granted),
        "stored_overlaps": overlaps(stored),
        "granted_not_stored": missing,
    }
