"""Token leases: disjoint blocks of one global serial space, signed by the server.

The serial space is handed out so that two blocks can never overlap, across threads, workers,
processes and hosts:

- PostgreSQL: each process reserves ranges of :data:`SERIAL_RANGE` serials with ``nextval`` on the
  ``serial_ranges`` sequence (migration 0003) and hands them out from memory under a lock. A
  sequence takes no row lock and is never rolled back, so no transaction waits on another for a
  serial (the old counter row was the top lock wait in every storm); the cost is up to one range
  left unused per engine (process start), and serials a rolled-back transaction took are skipped.
- SQLite: a single counter row advanced with ``UPDATE ... RETURNING`` inside the caller's
  transaction (the write lock makes it atomic; there is one writer at a time anyway).

Final tokens for provisional records come from the same space.

Bounded (:func:`grant`): a device may hold at most its cap of **unused** serials (leased to it
and not yet seen in a record): ``lease_cap_days`` days of its observed rate (tokens the server
received from it over the last :data:`RATE_WINDOW_DAYS` days, per day since it enrolled if that
is shorter), never less than ``lease_cap_min`` and never more than ``lease_cap_max``. The unused
count is kept on the device row (``serials_leased`` grows as leases are granted, ``tokens_used``
as records carrying leased tokens are stored; migration 0006), so a request reads it with the
device instead of counting every record the device ever sent; only the rate window's records are
counted, and only for a request that would leave the device holding more than ``lease_cap_min``
(under it the cap cannot matter). A request is
granted the blocks that fit under the cap; one that fits none is refused with 409
``lease_cap_reached`` (use the tokens first). A request carrying a ``request_id`` is answered once:
the same id from the same device gets the very same leases again (a lost answer wastes nothing).

On PostgreSQL the usual grant (under ``lease_cap_min``, a new request_id) is answered by
:mod:`server_stub.fastlease` in the event loop with one statement, :data:`FAST_GRANT_PG`; the rest
(near the cap, a request_id granted before) comes here: two statements, the nonce written with the
locked device read (:mod:`server_stub.auth`), then the leases inserted by a data-modifying CTE of
the counter's UPDATE, both guarded by the request_id (a retry writes nothing and reads the blocks
it was granted). SQLite runs the plain statements (one writer at a time: round trips cost little).
"""

from __future__ import annotations

import math
import threading
import weakref

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import Connection, Engine

from server_stub.auth import Device
from server_stub.config import ServerConfig
from server_stub.db import devices, is_postgres, leases, nonces, records, serial_counter
from server_stub.errors import Conflict, Unavailable
from server_stub.keys import ServerKeys
from sync.wire.protocol import Lease, LeaseRequest
from sync.wire.signing import sign_lease
from sync.wire.verhoeff import TOKEN_SERIAL_DIGITS

SERIAL_LIMIT = 10**TOKEN_SERIAL_DIGITS  # serials are 1 .. 10**10 - 1
RATE_WINDOW_DAYS = 14
DAY_MS = 86_400_000


SERIAL_RANGE = 100_000  # serials per nextval of serial_ranges (= migration 0003's)


class _Ranges:
    """This process's current range on PostgreSQL: [next, end)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next = self.end = 0

    def take(self, conn: Connection, n: int) -> int:
        if n > SERIAL_RANGE:
            raise Unavailable(f"at most {SERIAL_RANGE} serials can be taken at once")
        with self.lock:
            if self.end - self.next < n:  # the rest of the range is too short: a new one
                start = int(conn.execute(sa.select(sa.func.nextval("serial_ranges"))).scalar_one())
                self.next, self.end = start, start + SERIAL_RANGE
            first = self.next
            self.next += n
        if first + n > SERIAL_LIMIT:
            raise Unavailable("the token serial space is exhausted")
        return first


_RANGES: weakref.WeakKeyDictionary[Engine, _Ranges] = weakref.WeakKeyDictionary()
_RANGES_LOCK = threading.Lock()


def _ranges(conn: Connection) -> _Ranges:
    """The ranges of ``conn``'s engine (one database: a range is never used in another)."""
    with _RANGES_LOCK:
        return _RANGES.setdefault(conn.engine, _Ranges())


def take_serials(conn: Connection, n: int) -> int:
    """Reserve ``n`` consecutive serials; returns the first."""
    if is_postgres(conn):
        return _ranges(conn).take(conn, n)
    stmt = (
        serial_counter.update()
        .where(serial_counter.c.id == 1)
        .values(next_serial=serial_counter.c.next_serial + n)
        .returning(serial_counter.c.next_serial)
    )
    after = conn.execute(stmt).scalar_one_or_none()
    if after is None:
        raise Unavailable("the serial space is not set up; run `kiosk-server init`")
    if after > SERIAL_LIMIT:
        raise Unavailable("the token serial space is exhausted")
    return int(after) - n


_INSERT_LEASE = leases.insert()


def allocate(
    conn: Connection,
    keys: ServerKeys,
    device_id: str,
    count: int,
    block_size: int,
    now_ms: int,
    request_id: str | None = None,
) -> list[Lease]:
    """``count`` new blocks of ``block_size`` serials for ``device_id``, signed. On PostgreSQL the
    statement that writes them checks ``request_id`` too: when it was granted before, nothing is
    written and those blocks are the answer (the serials just taken are skipped)."""
    first = take_serials(conn, count * block_size)
    out = []
    for i in range(count):
        start = first + i * block_size
        end = start + block_size
        # The lease id is its first serial: unique, and known before the row is written.
        sig = sign_lease(keys.sign, device_id, start, start, end)
        out.append(Lease(lease_id=start, start_serial=start, end_serial=end, sig=sig))
    added = {"of_device": device_id, "n": count * block_size}
    if is_postgres(conn):  # one round trip: the leases inserted in the counter's UPDATE
        starts, sigs = [x.start_serial for x in out], [x.sig for x in out]
        row = {"starts": starts, "sigs": sigs, "block_size": block_size, "issued_at": now_ms}
        done = conn.execute(_ADD_LEASED_WITH_LEASES_PG, {**added, **row, "request_id": request_id})
        return out if done.rowcount == 1 else device_leases(conn, device_id, request_id)
    rows = [
        {
            "lease_id": x.lease_id,
            "device_id": device_id,
            "start_serial": x.start_serial,
            "end_serial": x.end_serial,
            "issued_at": now_ms,
            "sig": x.sig,
            "request_id": request_id,
        }
        for x in out
    ]
    conn.execute(_INSERT_LEASE, rows)
    conn.execute(_ADD_LEASED, added)
    return out


def device_leases(conn: Connection, device_id: str, request_id: str | None = None) -> list[Lease]:
    """The device's leases (only those granted to ``request_id`` when given), oldest first."""
    query = sa.select(leases).where(leases.c.device_id == device_id)
    if request_id is not None:
        query = query.where(leases.c.request_id == request_id)
    rows = conn.execute(query.order_by(leases.c.start_serial))
    return [
        Lease(lease_id=r.lease_id, start_serial=r.start_serial, end_serial=r.end_serial, sig=r.sig)
        for r in rows
    ]


def unused_serials(conn: Connection, device_id: str) -> int:
    """Serials leased to the device that no record the server holds has used yet."""
    row = conn.execute(_UNUSED, {"device_id": device_id}).one()
    return max(0, int(row.serials_leased) - int(row.tokens_used))


_DEVICE: sa.BindParameter[str] = sa.bindparam("device_id", type_=sa.String)
_UNUSED = sa.select(devices.c.serials_leased, devices.c.tokens_used).where(devices.c.device_id == _DEVICE)
# Tokens used since the rate window opened (a count over at most RATE_WINDOW_DAYS of records).
_USED_SINCE = sa.select(sa.func.count()).where(
    records.c.device_id == _DEVICE,
    records.c.kind == "sale",
    records.c.token.is_not(None),
    ~records.c.token.startswith("P"),
    records.c.received_at >= sa.bindparam("since_ms", type_=sa.BigInteger),
)
_ADD_LEASED = (
    devices.update()
    .where(devices.c.device_id == sa.bindparam("of_device", type_=sa.String))
    .values(serials_leased=devices.c.serials_leased + sa.bindparam("n", type_=sa.BigInteger))
)

# PostgreSQL: the blocks (first serial and signature each, from two arrays) inserted by a
# data-modifying CTE of the same UPDATE, both only when no block was granted to the request's id
# before (a NULL id never matches).
_NOT_GRANTED_BEFORE = ~sa.exists().where(
    leases.c.device_id == sa.bindparam("of_device", type_=sa.String),
    leases.c.request_id == sa.bindparam("request_id", type_=sa.String),
)
_NEW = (
    sa.func.unnest(
        sa.bindparam("starts", type_=pg.ARRAY(sa.BigInteger)), sa.bindparam("sigs", type_=pg.ARRAY(sa.String))
    )
    .table_valued("start_serial", "sig")
    .render_derived(name="blocks")
)
_INSERT_FROM_ARRAYS = leases.insert().from_select(
    ["lease_id", "device_id", "start_serial", "end_serial", "issued_at", "sig", "request_id"],
    sa.select(
        _NEW.c.start_serial,
        sa.bindparam("of_device", type_=sa.String),
        _NEW.c.start_serial,
        _NEW.c.start_serial + sa.bindparam("block_size", type_=sa.BigInteger),
        sa.bindparam("issued_at", type_=sa.BigInteger),
        _NEW.c.sig,
        sa.bindparam("request_id", type_=sa.String),
    ).where(_NOT_GRANTED_BEFORE),
)
_ADD_LEASED_WITH_LEASES_PG = _ADD_LEASED.where(_NOT_GRANTED_BEFORE).add_cte(
    _INSERT_FROM_ARRAYS.cte("new_leases")
)


# --- the fast path's statements (server_stub/fastlease.py): compiled once, run by psycopg ---------
# The whole grant under lease_cap_min in one autocommit statement. The UPDATE of the device row
# drives it: only an unrevoked device, left at most cap_min unused serials by the grant, with no
# block granted to the request id before; the nonce and the leases are inserted only from its
# RETURNING row. The last SELECT reads the row as the statement began (revoked or not; no row: an
# unknown device).
_OF_DEVICE: sa.BindParameter[str] = sa.bindparam("of_device", type_=sa.String)
_N = sa.bindparam("n", type_=sa.BigInteger)
_BUMP = (
    devices.update()
    .where(
        devices.c.device_id == _OF_DEVICE,
        devices.c.revoked_at.is_(None),
        sa.func.greatest(devices.c.serials_leased - devices.c.tokens_used, sa.literal_column("0")) + _N
        <= sa.bindparam("cap_min", type_=sa.BigInteger),
        _NOT_GRANTED_BEFORE,
    )
    .values(serials_leased=devices.c.serials_leased + _N)
    .returning(devices.c.device_id)
    .cte("bump")
)
_NONCE_FROM_BUMP = nonces.insert().from_select(
    ["device_id", "nonce", "expires_at"],
    sa.select(
        _BUMP.c.device_id,
        sa.bindparam("nonce", type_=sa.String),
        sa.bindparam("expires_at", type_=sa.BigInteger),
    ),
)
_LEASES_FROM_BUMP = leases.insert().from_select(
    ["lease_id", "device_id", "start_serial", "end_serial", "issued_at", "sig", "request_id"],
    sa.select(
        _NEW.c.start_serial,
        _BUMP.c.device_id,
        _NEW.c.start_serial,
        _NEW.c.start_serial + sa.bindparam("block_size", type_=sa.BigInteger),
        sa.bindparam("issued_at", type_=sa.BigInteger),
        _NEW.c.sig,
        sa.bindparam("request_id", type_=sa.String),
    ).select_from(_NEW.join(_BUMP, sa.true())),
)
_FAST_GRANT = (
    sa.select(
        sa.select(sa.func.count()).select_from(_BUMP).scalar_subquery().label("granted"),
        devices.c.revoked_at,
    )
    .where(devices.c.device_id == _OF_DEVICE)
    .add_cte(_BUMP)
    .add_cte(_NONCE_FROM_BUMP.cte("new_nonce"))
    .add_cte(_LEASES_FROM_BUMP.cte("new_leases"))
)
_PSYCOPG = PGDialect_psycopg()
FAST_GRANT_PG = str(_FAST_GRANT.compile(dialect=_PSYCOPG))
"""Params: of_device, n, cap_min, request_id, nonce, expires_at, starts, sigs, block_size,
issued_at. One row (granted 0 or 1, revoked_at), none for an unknown device."""
DEVICE_KEY_PG = str(
    sa.select(devices.c.public_key, devices.c.revoked_at)
    .where(devices.c.device_id == sa.bindparam("device_id", type_=sa.String))
    .compile(dialect=_PSYCOPG)
)
SWEEP_NONCES_PG = str(
    nonces.delete()
    .where(nonces.c.expires_at < sa.bindparam("now", type_=sa.BigInteger))
    .compile(dialect=_PSYCOPG)
)
NEXT_RANGE_PG = str(
    sa.select(sa.func.nextval("serial_ranges")).compile(
        dialect=_PSYCOPG, compile_kwargs={"literal_binds": True}
    )
)


def _used_since(conn: Connection, device_id: str, since_ms: int) -> int:
    return int(conn.execute(_USED_SINCE, {"device_id": device_id, "since_ms": since_ms}).scalar_one())


def cap_for(used_in_window: int, enrolled_at: int, config: ServerConfig, now_ms: int) -> int:
    """How many unused serials a device may hold, from the tokens it used in the rate window."""
    window_start = _window_start(enrolled_at, now_ms)
    days = max(1.0, (now_ms - window_start) / DAY_MS)
    per_day = used_in_window / days
    return min(config.lease_cap_max, max(config.lease_cap_min, math.ceil(per_day * config.lease_cap_days)))


def _window_start(enrolled_at: int, now_ms: int) -> int:
    return max(enrolled_at, now_ms - RATE_WINDOW_DAYS * DAY_MS)


def cap(conn: Connection, device_id: str, enrolled_at: int, config: ServerConfig, now_ms: int) -> int:
    """How many unused serials this device may hold now."""
    used = _used_since(conn, device_id, _window_start(enrolled_at, now_ms))
    return cap_for(used, enrolled_at, config, now_ms)


def _cap_for_asking(conn: Connection, device: Device, config: ServerConfig, now_ms: int, held: int) -> int:
    """The device's cap, as far as a request that would leave it ``held`` unused serials needs it:
    the cap is never below ``lease_cap_min``, so when ``held`` fits under that the rate window's
    records are not counted (the answer is the same: a device far under its cap, the usual case,
    saves a statement per grant). Near or over ``lease_cap_min`` the cap is counted as always."""
    if held <= config.lease_cap_min:
        return config.lease_cap_min
    return cap(conn, device.device_id, device.enrolled_at, config, now_ms)


def _granted_before(conn: Connection, device: Device, req: LeaseRequest) -> list[Lease]:
    return [] if req.request_id is None else device_leases(conn, device.device_id, req.request_id)


def grant(
    conn: Connection, keys: ServerKeys, device: Device, req: LeaseRequest, config: ServerConfig, now_ms: int
) -> list[Lease]:
    """Answer a lease request in ``conn``'s write transaction. ``device`` was read with its row
    locked (:func:`server_stub.auth.read_device` with ``lock``), so a device's requests are
    answered one at a time and its counts are current. A ``request_id`` granted before gets the
    same blocks: looked up first on SQLite; on PostgreSQL checked by :func:`allocate`'s statement
    (no lookup for the usual new id), and looked up here only before a refusal."""
    on_pg = is_postgres(conn)
    if not on_pg and (again := _granted_before(conn, device, req)):
        return again
    unused = max(0, device.serials_leased - device.tokens_used)
    asked = min(req.count, config.max_blocks_per_request)
    room = _cap_for_asking(conn, device, config, now_ms, unused + asked * config.block_size) - unused
    count = min(asked, max(0, room) // config.block_size)
    if count < 1:
        if on_pg and (again := _granted_before(conn, device, req)):
            return again
        raise Conflict(
            "this device already holds as many unused tokens as it may; use them before asking for more",
            code="lease_cap_reached",
        )
    return allocate(conn, keys, device.device_id, count, config.block_size, now_ms, req.request_id)
