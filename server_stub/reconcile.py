"""Reconciliation for an LSP: per kiosk, per day (in IST by the record's ``created_at``).

- ``count``, ``gross_paise``, ``fee_paise``, ``commission_paise``: the day's sales; a void made
  that day reverses the voided sale's amount, fee and commission (and counts in ``voids``).
  Fees and commission come from the **server's** catalog only, never a kiosk's numbers: the fee
  of the service in the catalog version the record was checked against at ingest
  (``catalog_version``; the version in force when it was made, for records without one) and the
  commission rule of that version over the amount and that fee. A service the catalog does not
  know earns nothing.
- ``late_syncs``: records of the day received more than the SLA hours after creation.
- ``gaps``: seqs the kiosk has shown (signed) that it holds but the server still lacks.
- ``forks``: quarantined fork records of the day.
- ``rejected``: records of the day the server refused for a business rule (token not leased,
  used twice, bad void, a fee, service, limit or time the server's data contradicts): kept in
  quarantine, not counted in the money columns.
- ``clock_suspect``: accepted records of the day whose ``created_at`` looked wrong at ingest
  (earlier than the record before it, or ahead of the receive time within the margin).
- ``days_without_heartbeat``: 1 when an enrolled kiosk sent no heartbeat that day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub import catalog
from server_stub.commission import commission_paise
from server_stub.db import devices, gap_reports, heartbeat_days, kiosks, quarantine, records
from server_stub.errors import NotFound, Unprocessable
from server_stub.sheets import rupees, write_csv
from sync.wire.protocol import KioskRecon, Reconciliation, ReconRow

ROW_FIELDS = (
    "count",
    "gross_paise",
    "fee_paise",
    "commission_paise",
    "voids",
    "late_syncs",
    "gaps",
    "forks",
    "rejected",
    "clock_suspect",
    "days_without_heartbeat",
)
MONEY_FIELDS = ("gross_paise", "fee_paise", "commission_paise")
# The CSV's columns: money in rupees (two decimals), everything else as in JSON.
CSV_FIELDS = tuple(f.replace("_paise", "_rs") for f in ROW_FIELDS)

Counts = dict[str, int]  # ROW_FIELDS -> value, for one kiosk
Rules = dict[int, dict[str, catalog.Terms]]  # version -> service -> fee and commission rule


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise Unprocessable("the date is not YYYY-MM-DD", code="bad_date") from None


def day_window_ms(day: date, tz: str) -> tuple[int, int]:
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    end = start + timedelta(days=1)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def day_of(ms: int, tz: str) -> str:
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(tz)).date().isoformat()


def _fee_and_commission(rules: Rules, version: int | None, service: str, amount: int) -> tuple[int, int]:
    """The server's fee for the service in that version, and the commission on it."""
    terms = rules.get(version, {}).get(service) if version is not None else None
    if terms is None:
        return 0, 0
    return terms.fee_paise, commission_paise(terms.commission, amount, terms.fee_paise)


@dataclass(frozen=True)
class _Window:
    """The kiosks of the report and the day, as [start, end) in ms since the epoch."""

    codes: list[str]
    start: int
    end: int


def _kiosks(conn: Connection, lsp_id: str, kiosk_code: str | None) -> list[tuple[str, str]]:
    """(K-code, name) of the LSP's kiosks, or of the one asked for."""
    kq = sa.select(kiosks.c.kiosk_code, kiosks.c.name).where(kiosks.c.lsp_id == lsp_id)
    if kiosk_code:
        kq = kq.where(kiosks.c.kiosk_code == kiosk_code)
    kiosk_rows = [(k.kiosk_code, k.name) for k in conn.execute(kq.order_by(kiosks.c.kiosk_code))]
    if kiosk_code and not kiosk_rows:
        raise NotFound(f"no kiosk {kiosk_code!r} in LSP {lsp_id}", code="unknown_kiosk")
    return kiosk_rows


def _records_of_day(w: _Window) -> tuple[sa.ColumnElement[bool], ...]:
    return (records.c.kiosk_code.in_(w.codes), records.c.created_at >= w.start, records.c.created_at < w.end)


def _add_records(conn: Connection, rows: dict[str, Counts], w: _Window, rules: Rules, sla_ms: int) -> None:
    """Sales (count, money, commission) and late syncs of the day."""
    for r in conn.execute(sa.select(records).where(*_records_of_day(w))):
        row = rows[r.kiosk_code]
        if r.received_at - r.created_at > sla_ms:
            row["late_syncs"] += 1
        row["clock_suspect"] += int(bool(r.clock_suspect))
        if r.kind == "sale":
            fee, commission = _fee_and_commission(rules, r.catalog_version, r.service, r.amount_paise)
            row["count"] += 1
            row["gross_paise"] += r.amount_paise
            row["fee_paise"] += fee
            row["commission_paise"] += commission


def _add_voids(conn: Connection, rows: dict[str, Counts], w: _Window, rules: Rules) -> None:
    """A void made that day reverses the voided sale's amount, fee and commission."""
    voided = records.alias("voided")
    void_q = (
        sa.select(
            records.c.kiosk_code,
            voided.c.amount_paise,
            voided.c.fee_paise,
            voided.c.service,
            voided.c.catalog_version,
        )
        .join(voided, sa.and_(voided.c.device_id == records.c.device_id, voided.c.seq == records.c.voids_seq))
        .where(*_records_of_day(w), records.c.kind == "void")
    )
    for v in conn.execute(void_q):
        row = rows[v.kiosk_code]
        fee, commission = _fee_and_commission(rules, v.catalog_version, v.service, v.amount_paise)
        row["voids"] += 1
        row["gross_paise"] -= v.amount_paise
        row["fee_paise"] -= fee
        row["commission_paise"] -= commission


def _add_quarantine(conn: Connection, rows: dict[str, Counts], w: _Window) -> None:
    """Forks, and records refused for a business rule."""
    for f in conn.execute(
        sa.select(quarantine.c.kiosk_code, quarantine.c.reason, sa.func.count())
        .where(
            quarantine.c.kiosk_code.in_(w.codes),
            quarantine.c.created_at >= w.start,
            quarantine.c.created_at < w.end,
        )
        .group_by(quarantine.c.kiosk_code, quarantine.c.reason)
    ):
        rows[f[0]]["forks" if f[1] == "fork" else "rejected"] += int(f[2])


def _add_gaps(conn: Connection, rows: dict[str, Counts], w: _Window) -> None:
    """Seqs shown (signed) that the server still lacks."""
    held = sa.select(records.c.id).where(
        records.c.device_id == gap_reports.c.device_id, records.c.seq == gap_reports.c.seq
    )
    for g in conn.execute(
        sa.select(gap_reports.c.kiosk_code, sa.func.count())
        .where(
            gap_reports.c.kiosk_code.in_(w.codes),
            gap_reports.c.created_at >= w.start,
            gap_reports.c.created_at < w.end,
            ~sa.exists(held),
        )
        .group_by(gap_reports.c.kiosk_code)
    ):
        rows[g[0]]["gaps"] = int(g[1])


def _add_heartbeats(conn: Connection, rows: dict[str, Counts], w: _Window, day: date) -> dict[str, bool]:
    """Days without heartbeat of enrolled kiosks; returns which kiosks have a flagged device."""
    enrolled: dict[str, bool] = {}
    flagged: dict[str, bool] = {}
    for d in conn.execute(
        sa.select(devices.c.kiosk_code, devices.c.enrolled_at, devices.c.flagged_at).where(
            devices.c.kiosk_code.in_(w.codes)
        )
    ):
        enrolled[d.kiosk_code] = enrolled.get(d.kiosk_code, False) or d.enrolled_at < w.end
        flagged[d.kiosk_code] = flagged.get(d.kiosk_code, False) or d.flagged_at is not None
    beat = {
        b.kiosk_code
        for b in conn.execute(
            sa.select(heartbeat_days.c.kiosk_code).where(
                heartbeat_days.c.kiosk_code.in_(w.codes), heartbeat_days.c.day == day.isoformat()
            )
        )
    }
    for code in w.codes:
        rows[code]["days_without_heartbeat"] = int(enrolled.get(code, False) and code not in beat)
    return flagged


def kiosks_of(conn: Connection, lsp_id: str, kiosk_code: str | None = None) -> list[tuple[str, str]]:
    """(K-code, name) of the LSP's kiosks in K-code order, or of the one asked for (NotFound)."""
    return _kiosks(conn, lsp_id, kiosk_code)


def window_counts(
    conn: Connection, codes: list[str], start_ms: int, end_ms: int, sla_hours: int
) -> dict[str, Counts]:
    """Every ROW_FIELDS count but ``days_without_heartbeat`` for records made in [start, end):
    the one home of the money and quality rules, for a day here and a month in
    :mod:`server_stub.monthly`."""
    w = _Window(codes, start_ms, end_ms)
    rows: dict[str, Counts] = {c: dict.fromkeys(ROW_FIELDS, 0) for c in codes}
    rules = catalog.terms_by_version(conn)
    _add_records(conn, rows, w, rules, sla_hours * 3600 * 1000)
    _add_voids(conn, rows, w, rules)
    _add_quarantine(conn, rows, w)
    _add_gaps(conn, rows, w)
    return rows


def build(
    conn: Connection, lsp_id: str, day: date, tz: str, sla_hours: int, kiosk_code: str | None = None
) -> Reconciliation:
    start, end = day_window_ms(day, tz)
    kiosk_rows = _kiosks(conn, lsp_id, kiosk_code)
    w = _Window([code for code, _name in kiosk_rows], start, end)
    rows = window_counts(conn, w.codes, start, end, sla_hours)
    flagged = _add_heartbeats(conn, rows, w, day)
    totals = {f: sum(rows[c][f] for c in w.codes) for f in ROW_FIELDS}
    return Reconciliation(
        lsp_id=lsp_id,
        date=day.isoformat(),
        timezone=tz,
        sla_hours=sla_hours,
        kiosks=[
            KioskRecon(kiosk_code=code, name=name, flagged=flagged.get(code, False), **rows[code])
            for code, name in kiosk_rows
        ],
        totals=ReconRow(**totals),
    )


def csv_values(r: ReconRow) -> list[object]:
    """A row's columns as the CSV and the sheet show them (money in Decimal rupees)."""
    return [rupees(getattr(r, f)) if f in MONEY_FIELDS else getattr(r, f) for f in ROW_FIELDS]


def csv_rows(report: Reconciliation) -> list[list[object]]:
    """Header, one line per kiosk, the total: the CSV's and the console sheet's rows (raw cells)."""
    lines: list[list[object]] = [["date", "kiosk_code", "name", "flagged", *CSV_FIELDS]]
    lines += [[report.date, k.kiosk_code, k.name, int(k.flagged), *csv_values(k)] for k in report.kiosks]
    lines.append([report.date, "TOTAL", "", "", *csv_values(report.totals)])
    return lines


def to_csv(report: Reconciliation) -> str:
    """The report as CSV: money in rupees with two decimals, every cell spreadsheet-safe."""
    return write_csv(csv_rows(report))


def _rupees(paise: int) -> str:
    sign = "-" if paise < 0 else ""
    paise = abs(paise)
    return f"{sign}{paise // 100:,}.{paise % 100:02d}"


def to_table(report: Reconciliation) -> Any:
    from rich.table import Table

    t = Table(
        title=f"{report.lsp_id} reconciliation, {report.date} ({report.timezone}), SLA {report.sla_hours} h"
    )
    t.add_column("Kiosk")
    t.add_column("Name")
    for head in (
        "Count",
        "Gross Rs",
        "Fees Rs",
        "Commission Rs",
        "Voids",
        "Late",
        "Gaps",
        "Forks",
        "Rejected",
        "Clock?",
        "No heartbeat",
    ):
        t.add_column(head, justify="right")

    def cells(r: ReconRow) -> list[str]:
        return [
            str(r.count),
            _rupees(r.gross_paise),
            _rupees(r.fee_paise),
            _rupees(r.commission_paise),
            str(r.voids),
            str(r.late_syncs),
            str(r.gaps),
            str(r.forks),
            str(r.rejected),
            str(r.clock_suspect),
            str(r.days_without_heartbeat),
        ]

    from rich.markup import escape

    for k in report.kiosks:
        t.add_row(k.kiosk_code + (" (flagged)" if k.flagged else ""), escape(k.name), *cells(k))
    t.add_row("TOTAL", "", *cells(report.totals), style="bold")
    return t
