"""The device directory (``GET /v1/directory?since=``): every enrolled device's public key,
signed by the server's key, so kiosks verify each other's receipts offline.

The version of a device is its ``enrolled_at`` (ms): no migration, and a device enrolled later
always has a later version on one server clock. A page never splits devices of one version, so
``since`` alone resumes it exactly. Revocations are not sent: a receipt printed before a
revocation stays genuine.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.db import devices
from server_stub.keys import ServerKeys
from sync.wire.directory import PAGE_MAX, DirectoryBody, DirectoryEntry, DirectoryPage, sign_page


def _rows(conn: Connection, where: sa.ColumnElement[bool], limit: int) -> list[DirectoryEntry]:
    rows = conn.execute(
        sa.select(devices.c.device_id, devices.c.kiosk_code, devices.c.public_key, devices.c.enrolled_at)
        .where(where)
        .order_by(devices.c.enrolled_at, devices.c.device_id)
        .limit(limit)
    ).all()
    return [DirectoryEntry(**r._asdict()) for r in rows]


def page(conn: Connection, keys: ServerKeys, since: int, limit: int = PAGE_MAX) -> DirectoryPage:
    """The signed page of devices enrolled after ``since``: at most ``limit`` unless one version
    alone holds more (a version is never split, so ``since`` resumes exactly)."""
    found = _rows(conn, devices.c.enrolled_at > since, limit + 1)
    more = len(found) > limit
    if more:
        last = found[limit].enrolled_at  # the first device that does not fit: its version waits
        found = [d for d in found if d.enrolled_at < last]
        if not found:  # more than a page enrolled in one millisecond: send that version whole
            found = _rows(conn, devices.c.enrolled_at == last, 2**31)
    version = found[-1].enrolled_at if found else since
    body = DirectoryBody(since=since, version=version, more=int(more), devices=found)
    return sign_page(keys.sign, body)
