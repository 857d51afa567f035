"""Token leases: disjoint blocks of one global serial space, signed by the server.

The serial space is a single counter row advanced with ``UPDATE ... RETURNING`` inside the
caller's transaction: on PostgreSQL the row lock, on SQLite the write lock, make the step
atomic across threads, workers and processes, so two blocks can never overlap.
Final tokens for provisional records come from the same counter.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.db import leases, serial_counter
from server_stub.errors import Unavailable
from server_stub.keys import ServerKeys
from sync.wire.protocol import Lease
from sync.wire.signing import sign_lease
from sync.wire.verhoeff import TOKEN_SERIAL_DIGITS

SERIAL_LIMIT = 10**TOKEN_SERIAL_DIGITS  # serials are 1 .. 10**10 - 1


def take_serials(conn: Connection, n: int) -> int:
    """Reserve ``n`` consecutive serials; returns the first."""
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


def allocate(
    conn: Connection, keys: ServerKeys, device_id: str, count: int, block_size: int, now_ms: int
) -> list[Lease]:
    """``count`` new blocks of ``block_size`` serials for ``device_id``, signed."""
    first = take_serials(conn, count * block_size)
    out = []
    for i in range(count):
        start = first + i * block_size
        end = start + block_size
        # The lease id is its first serial: unique, and known before the row is written.
        sig = sign_lease(keys.sign, device_id, start, start, end)
        out.append(Lease(lease_id=start, start_serial=start, end_serial=end, sig=sig))
    conn.execute(
        leases.insert(),
        [
            {
                "lease_id": x.lease_id,
                "device_id": device_id,
                "start_serial": x.start_serial,
                "end_serial": x.end_serial,
                "issued_at": now_ms,
                "sig": x.sig,
            }
            for x in out
        ],
    )
    return out


def device_leases(conn: Connection, device_id: str) -> list[Lease]:
    rows = conn.execute(
        sa.select(leases).where(leases.c.device_id == device_id).order_by(leases.c.start_serial)
    )
    return [
        Lease(lease_id=r.lease_id, start_serial=r.start_serial, end_serial=r.end_serial, sig=r.sig)
        for r in rows
    ]
