"""What the DOIT&C operator can see: LSPs, kiosks and devices, as rows for a table or JSON.

Read-only; like :mod:`server_stub.admin`, every function takes the acting person, so a console
(and its audit log) can use the same calls as the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.admin import CLI, Actor
from server_stub.db import devices, kiosks, lsps


@dataclass(frozen=True)
class LspRow:
    lsp_id: str
    name: str
    created_at: int
    kiosks: int
    devices: int


@dataclass(frozen=True)
class KioskRow:
    kiosk_code: str
    lsp_id: str
    name: str
    created_at: int
    enrolled_at: int | None
    enrollment_expires_at: int | None
    devices: int
    district: str | None = None


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    kiosk_code: str
    lsp_id: str
    enrolled_at: int
    revoked_at: int | None
    flagged_at: int | None
    flag_reason: str | None
    head_seq: int
    last_heartbeat_at: int | None


def as_json(rows: list[Any]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def list_lsps(conn: Connection, *, actor: Actor = CLI) -> list[LspRow]:
    kiosk_count = (
        sa.select(sa.func.count()).where(kiosks.c.lsp_id == lsps.c.lsp_id).correlate(lsps).scalar_subquery()
    )
    device_count = (
        sa.select(sa.func.count())
        .select_from(devices.join(kiosks, kiosks.c.kiosk_code == devices.c.kiosk_code))
        .where(kiosks.c.lsp_id == lsps.c.lsp_id)
        .correlate(lsps)
        .scalar_subquery()
    )
    rows = conn.execute(
        sa.select(lsps.c.lsp_id, lsps.c.name, lsps.c.created_at, kiosk_count, device_count).order_by(
            lsps.c.id
        )
    )
    return [LspRow(r[0], r[1], r[2], int(r[3]), int(r[4])) for r in rows]


def list_kiosks(conn: Connection, lsp_id: str | None = None, *, actor: Actor = CLI) -> list[KioskRow]:
    device_count = (
        sa.select(sa.func.count())
        .where(devices.c.kiosk_code == kiosks.c.kiosk_code)
        .correlate(kiosks)
        .scalar_subquery()
    )
    query = sa.select(
        kiosks.c.kiosk_code,
        kiosks.c.lsp_id,
        kiosks.c.name,
        kiosks.c.created_at,
        kiosks.c.enrolled_at,
        kiosks.c.enrollment_expires_at,
        device_count,
        kiosks.c.district,
    ).order_by(kiosks.c.id)
    if lsp_id is not None:
        query = query.where(kiosks.c.lsp_id == lsp_id)
    return [KioskRow(*r[:6], int(r[6]), r[7]) for r in conn.execute(query)]


def list_devices(
    conn: Connection, lsp_id: str | None = None, kiosk_code: str | None = None, *, actor: Actor = CLI
) -> list[DeviceRow]:
    query = (
        sa.select(
            devices.c.device_id,
            devices.c.kiosk_code,
            kiosks.c.lsp_id,
            devices.c.enrolled_at,
            devices.c.revoked_at,
            devices.c.flagged_at,
            devices.c.flag_reason,
            devices.c.head_seq,
            devices.c.last_heartbeat_at,
        )
        .join(kiosks, kiosks.c.kiosk_code == devices.c.kiosk_code)
        .order_by(devices.c.enrolled_at, devices.c.device_id)
    )
    if lsp_id is not None:
        query = query.where(kiosks.c.lsp_id == lsp_id)
    if kiosk_code is not None:
        query = query.where(devices.c.kiosk_code == kiosk_code)
    return [DeviceRow(*r) for r in conn.execute(query)]
