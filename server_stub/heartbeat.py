"""Heartbeats: a device says it is alive; the server keeps one row per device and day (IST)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub import catalog
from server_stub.db import devices, heartbeat_days, upsert
from server_stub.reconcile import day_of
from sync.wire.protocol import Head, HeartbeatRequest, HeartbeatResponse


def record_heartbeat(
    conn: Connection, device_id: str, kiosk_code: str, req: HeartbeatRequest, now_ms: int, tz: str
) -> HeartbeatResponse:
    upsert(
        conn,
        heartbeat_days,
        {
            "device_id": device_id,
            "day": day_of(now_ms, tz),
            "kiosk_code": kiosk_code,
            "first_at": now_ms,
            "last_at": now_ms,
            "count": 1,
            "head_seq": req.head_seq,
            "queue_depth": req.queue_depth,
        },
        keys=["device_id", "day"],
        update={
            "last_at": now_ms,
            "count": heartbeat_days.c.count + 1,
            "head_seq": req.head_seq,
            "queue_depth": req.queue_depth,
        },
    )
    printer = req.hardware.get("printer")
    conn.execute(
        devices.update()
        .where(devices.c.device_id == device_id)
        .values(last_heartbeat_at=now_ms, printer_state=printer[:32] if printer else None)
    )
    dev = conn.execute(
        sa.select(devices.c.head_seq, devices.c.head_hash, devices.c.flagged_at).where(
            devices.c.device_id == device_id
        )
    ).one()
    messages = []
    if dev.flagged_at is not None:
        messages.append(
            "This kiosk is flagged: the server received two different records for one number. "
            "Contact your LSP before restoring any backup."
        )
    if req.head_seq > dev.head_seq:
        messages.append(f"{req.head_seq - dev.head_seq} records are waiting to be synced.")
    return HeartbeatResponse(
        server_time_ms=now_ms,
        head=Head(seq=dev.head_seq, hash=dev.head_hash),
        catalog_version=catalog.latest_version(conn),
        flagged=dev.flagged_at is not None,
        messages=messages,
    )
