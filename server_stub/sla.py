"""The SLA between DOIT&C and an LSP, evaluated per kiosk per month, with the evidence.

Rules (the ones named in ``ServerConfig.sla_rules``; thresholds from the config, see there):

- ``sync``: more than ``sla_max_late_syncs`` of the month's records reached the server later
  than ``sla_hours`` after they were made, or a device reported by heartbeat in the month a head
  seq the server still does not hold (records that never arrived are no better than late ones).
  Evidence: the count, the latest records (seq, device, made, received) up to
  :data:`EVIDENCE_ROWS`, the records not received and the devices behind (reported and server
  head).
- ``heartbeat``: more days of the month without a heartbeat than the month allows (days in the
  month minus ``sla_heartbeat_days``, at least 0). Evidence: the days counted, the days with a
  heartbeat, and the days without one.
- ``fork``: a device of the kiosk was flagged for a fork before the month ended, and is still
  flagged (nothing clears a flag but a new device). Evidence: the devices, when they were flagged,
  and the forks received for records of the month.

Evidence holds numbers, ids and days (never citizen data) as ints, strings and lists, so it can
go into a signed statement (:mod:`server_stub.statements`) as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.config import ServerConfig
from server_stub.db import devices, heartbeat_days, records
from server_stub.monthly import HeartbeatMonth, KioskMonth, Month, heartbeat_month

EVIDENCE_ROWS = 10


@dataclass(frozen=True)
class SlaTerms:
    sync_hours: int
    max_late_syncs: int
    heartbeat_days: int
    rules: tuple[str, ...]

    @classmethod
    def of(cls, config: ServerConfig) -> SlaTerms:
        return cls(
            config.sla_hours, config.sla_max_late_syncs, config.sla_heartbeat_days, config.sla_rule_names()
        )

    def as_doc(self) -> dict[str, Any]:
        return {
            "sync_hours": self.sync_hours,
            "max_late_syncs": self.max_late_syncs,
            "heartbeat_days": self.heartbeat_days,
            "rules": list(self.rules),
        }


@dataclass(frozen=True)
class Breach:
    rule: str  # sync | heartbeat | fork
    detail: str  # one sentence for the LSP
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_doc(self) -> dict[str, Any]:
        return {"rule": self.rule, "detail": self.detail, "evidence": self.evidence}


@dataclass(frozen=True)
class _Facts:
    """What the rules read about one kiosk's month."""

    conn: Connection
    row: KioskMonth
    heartbeats: HeartbeatMonth
    month: Month
    window: tuple[int, int]
    terms: SlaTerms


def _late_records(f: _Facts) -> list[dict[str, Any]]:
    start, end = f.window
    late_by = records.c.received_at - records.c.created_at
    rows = f.conn.execute(
        sa.select(records.c.device_id, records.c.seq, records.c.created_at, records.c.received_at)
        .where(
            records.c.kiosk_code == f.row.kiosk_code,
            records.c.created_at >= start,
            records.c.created_at < end,
            late_by > f.terms.sync_hours * 3_600_000,
        )
        .order_by(late_by.desc(), records.c.seq)
        .limit(EVIDENCE_ROWS)
    )
    return [
        {"device_id": r.device_id, "seq": r.seq, "created_at": r.created_at, "received_at": r.received_at}
        for r in rows
    ]


def _unsynced(f: _Facts) -> list[dict[str, Any]]:
    """Devices that reported (by heartbeat, in the month) a head beyond what the server holds now."""
    m = f.month
    reported = (
        sa.select(heartbeat_days.c.device_id, sa.func.max(heartbeat_days.c.head_seq).label("head"))
        .where(
            heartbeat_days.c.kiosk_code == f.row.kiosk_code,
            heartbeat_days.c.day >= m.day(1).isoformat(),
            heartbeat_days.c.day <= m.day(m.days).isoformat(),
        )
        .group_by(heartbeat_days.c.device_id)
        .subquery()
    )
    rows = f.conn.execute(
        sa.select(devices.c.device_id, reported.c.head, devices.c.head_seq)
        .join(reported, reported.c.device_id == devices.c.device_id)
        .where(reported.c.head > devices.c.head_seq)
        .order_by(devices.c.device_id)
    )
    return [
        {"device_id": r.device_id, "reported_head_seq": r.head, "server_head_seq": r.head_seq} for r in rows
    ]


def _sync(f: _Facts) -> Breach | None:
    late = f.row.late_syncs
    unsynced = _unsynced(f)
    missing = sum(u["reported_head_seq"] - u["server_head_seq"] for u in unsynced)
    if late <= f.terms.max_late_syncs and not missing:
        return None
    parts = [f"{late} records reached the server more than {f.terms.sync_hours} h after they were made"]
    if missing:
        parts.append(f"{missing} records the kiosk reported holding have not reached it")
    return Breach(
        "sync",
        "; ".join(parts) + f" (at most {f.terms.max_late_syncs} late allowed)",
        {
            "late_syncs": late,
            "allowed": f.terms.max_late_syncs,
            "latest": _late_records(f),
            "not_received": missing,
            "devices_behind": unsynced,
        },
    )


def _heartbeat(f: _Facts) -> Breach | None:
    allowed = max(0, f.month.days - f.terms.heartbeat_days)
    missed = f.heartbeats.missed
    if len(missed) <= allowed:
        return None
    return Breach(
        "heartbeat",
        f"no heartbeat on {len(missed)} of {len(f.heartbeats.enrolled)} days (at most {allowed} allowed)",
        {
            "days_counted": len(f.heartbeats.enrolled),
            "heartbeat_days": len(f.heartbeats.beat),
            "allowed_missed": allowed,
            "missed_days": missed,
        },
    )


def _fork(f: _Facts) -> Breach | None:
    _start, end = f.window
    flagged = f.conn.execute(
        sa.select(devices.c.device_id, devices.c.flagged_at)
        .where(devices.c.kiosk_code == f.row.kiosk_code, devices.c.flagged_at < end)
        .order_by(devices.c.flagged_at)
    ).all()
    if not flagged:
        return None
    return Breach(
        "fork",
        f"{len(flagged)} device(s) flagged for a fork (two different records for one number), unresolved",
        {
            "devices": [{"device_id": d.device_id, "flagged_at": d.flagged_at} for d in flagged],
            "forks_in_month": f.row.forks,
        },
    )


RULES = {"sync": _sync, "heartbeat": _heartbeat, "fork": _fork}


def evaluate(
    conn: Connection, rows: list[KioskMonth], m: Month, terms: SlaTerms, tz: str, now_ms: int
) -> dict[str, list[Breach]]:
    """K-code -> the rules in force each kiosk broke in month ``m`` (empty: none)."""
    codes = [r.kiosk_code for r in rows]
    beats = heartbeat_month(conn, codes, m, tz, now_ms)
    window = m.window_ms(tz)
    out: dict[str, list[Breach]] = {}
    for row in rows:
        facts = _Facts(conn, row, beats[row.kiosk_code], m, window, terms)
        found = (RULES[name](facts) for name in terms.rules if name in RULES)
        out[row.kiosk_code] = [b for b in found if b is not None]
    return out
