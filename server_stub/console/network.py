"""The fleet as the console shows it: each kiosk's state by its last heartbeat, last sync, queue
depth and printer as reported, tokens left, forks and rejected records; and the network at a
glance (counts by state, per LSP and per district).

State: ``online`` (a heartbeat within ``stale_after_minutes``), ``stale`` (older), ``offline``
(none for more than ``offline_after_hours``, or never since enrolling), ``not_enrolled`` (no
device yet). A kiosk whose every device is revoked is ``revoked``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.config import ServerConfig
from server_stub.db import devices, heartbeat_days, kiosks, quarantine, records
from server_stub.leases import unused_serials

STATES = ("online", "stale", "offline", "not_enrolled", "revoked")


@dataclass
class KioskState:
    kiosk_code: str
    lsp_id: str
    name: str
    district: str | None
    state: str = "not_enrolled"
    last_heartbeat_at: int | None = None
    last_sync_at: int | None = None
    queue_depth: int | None = None
    tokens_left: int = 0
    printer: str | None = None
    forks: int = 0
    rejected: int = 0
    flagged: bool = False
    devices: list[str] = field(default_factory=list)


def state_of(last_heartbeat_at: int | None, now_ms: int, config: ServerConfig) -> str:
    if last_heartbeat_at is None or now_ms - last_heartbeat_at > config.offline_after_hours * 3_600_000:
        return "offline"
    if now_ms - last_heartbeat_at > config.stale_after_minutes * 60_000:
        return "stale"
    return "online"


def _base(conn: Connection, lsp_id: str | None, kiosk_code: str | None) -> dict[str, KioskState]:
    query = sa.select(kiosks.c.kiosk_code, kiosks.c.lsp_id, kiosks.c.name, kiosks.c.district)
    if lsp_id is not None:
        query = query.where(kiosks.c.lsp_id == lsp_id)
    if kiosk_code is not None:
        query = query.where(kiosks.c.kiosk_code == kiosk_code)
    return {r[0]: KioskState(*r) for r in conn.execute(query.order_by(kiosks.c.kiosk_code))}


def _add_devices(
    conn: Connection, out: dict[str, KioskState], now_ms: int, config: ServerConfig, tokens: bool
) -> None:
    live: dict[str, bool] = {}
    for d in conn.execute(sa.select(devices).where(devices.c.kiosk_code.in_(list(out)))):
        k = out[d.kiosk_code]
        k.devices.append(d.device_id)
        k.flagged = k.flagged or d.flagged_at is not None
        live[d.kiosk_code] = live.get(d.kiosk_code, False) or d.revoked_at is None
        if tokens and d.revoked_at is None:
            k.tokens_left += unused_serials(conn, d.device_id)
        if d.last_heartbeat_at is not None and (k.last_heartbeat_at or 0) < d.last_heartbeat_at:
            k.last_heartbeat_at, k.printer = d.last_heartbeat_at, d.printer_state
    for code, any_live in live.items():
        k = out[code]
        k.state = state_of(k.last_heartbeat_at, now_ms, config) if any_live else "revoked"


def _add_counts(conn: Connection, out: dict[str, KioskState]) -> None:
    codes = list(out)
    for code, at in conn.execute(
        sa.select(records.c.kiosk_code, sa.func.max(records.c.received_at))
        .where(records.c.kiosk_code.in_(codes))
        .group_by(records.c.kiosk_code)
    ):
        out[code].last_sync_at = int(at)
    for code, reason, n in conn.execute(
        sa.select(quarantine.c.kiosk_code, quarantine.c.reason, sa.func.count())
        .where(quarantine.c.kiosk_code.in_(codes))
        .group_by(quarantine.c.kiosk_code, quarantine.c.reason)
    ):
        if reason == "fork":
            out[code].forks += int(n)
        else:
            out[code].rejected += int(n)
    latest = (
        sa.select(heartbeat_days.c.kiosk_code, heartbeat_days.c.queue_depth, heartbeat_days.c.last_at)
        .where(heartbeat_days.c.kiosk_code.in_(codes))
        .order_by(heartbeat_days.c.last_at)
    )
    for code, depth, _at in conn.execute(latest):  # ascending: the newest row wins
        out[code].queue_depth = int(depth)


def kiosk_states(
    conn: Connection,
    config: ServerConfig,
    now_ms: int,
    lsp_id: str | None = None,
    kiosk_code: str | None = None,
    detail: bool = True,
) -> list[KioskState]:
    """The kiosks of one LSP (or all, or one), with their state now; ``detail=False`` reads only
    the devices (state, heartbeat, printer), enough for :func:`glance` over the whole network."""
    out = _base(conn, lsp_id, kiosk_code)
    if out:
        _add_devices(conn, out, now_ms, config, tokens=detail)
        if detail:
            _add_counts(conn, out)
    return list(out.values())


@dataclass(frozen=True)
class Glance:
    """Counts by state: in total, per LSP, per district ("-" when a kiosk has none)."""

    total: dict[str, int]
    by_lsp: dict[str, dict[str, int]]
    by_district: dict[str, dict[str, int]]


def glance(states: list[KioskState]) -> Glance:
    total: Counter[str] = Counter()
    by_lsp: dict[str, Counter[str]] = {}
    by_district: dict[str, Counter[str]] = {}
    for k in states:
        total[k.state] += 1
        by_lsp.setdefault(k.lsp_id, Counter())[k.state] += 1
        by_district.setdefault(k.district or "-", Counter())[k.state] += 1

    def full(c: Counter[str]) -> dict[str, int]:
        return {s: c.get(s, 0) for s in STATES}

    return Glance(
        full(total),
        {k: full(v) for k, v in sorted(by_lsp.items())},
        {k: full(v) for k, v in sorted(by_district.items())},
    )
