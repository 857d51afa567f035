"""Monthly reconciliation per LSP and kiosk: the daily rules of :mod:`server_stub.reconcile` over a
calendar month in the server's timezone (IST), plus heartbeat days.

Per kiosk (:class:`KioskMonth`): every daily column summed over the records made in the month
(``count``, ``gross_paise``, ``fee_paise``, ``commission_paise``, ``voids``, ``late_syncs``,
``gaps``, ``forks``, ``rejected``, ``clock_suspect``), and for heartbeats:

- ``enrolled_days``: days of the month that are over (by the server's clock) on which the kiosk
  was enrolled (a device of it enrolled before the day ended);
- ``heartbeat_days``: how many of those days had at least one heartbeat;
- ``days_without_heartbeat`` = ``enrolled_days - heartbeat_days``.

``complete`` is true once the month is over; a report of the current month counts the days so
far. :func:`month_report` is the API the console and ``GET /v1/reconciliation/monthly`` use.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from server_stub.db import devices, heartbeat_days
from server_stub.errors import Unprocessable
from server_stub.reconcile import CSV_FIELDS, ROW_FIELDS, csv_values, kiosks_of, window_counts
from server_stub.sheets import write_csv
from sync.wire.protocol import ReconRow

MONTH_PATTERN = r"^\d{4}-\d{2}$"


class KioskMonth(ReconRow):
    kiosk_code: str
    name: str
    flagged: bool = Field(description="a device of the kiosk is flagged (a fork was seen)")
    enrolled_days: int = Field(description="days of the month that are over on which it was enrolled")
    heartbeat_days: int = Field(description="of those, days with at least one heartbeat")


class MonthlyReconciliation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lsp_id: str
    month: str = Field(description="YYYY-MM in the server's timezone")
    timezone: str
    sla_hours: int
    days_in_month: int
    days_over: int = Field(description="days of the month over by the server's clock")
    complete: bool = Field(description="the month is over")
    kiosks: list[KioskMonth]
    totals: ReconRow


@dataclass(frozen=True)
class Month:
    year: int
    month: int

    @property
    def text(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    def day(self, n: int) -> date:
        return date(self.year, self.month, n)

    def window_ms(self, tz: str) -> tuple[int, int]:
        """[first day 00:00, first day of the next month 00:00) in ``tz``, in ms."""
        start = datetime(self.year, self.month, 1, tzinfo=ZoneInfo(tz))
        end = start + timedelta(days=self.days)
        return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def parse_month(text: str) -> Month:
    """``YYYY-MM`` (Unprocessable ``bad_month`` otherwise)."""
    if not isinstance(text, str) or not re.match(MONTH_PATTERN, text):
        raise Unprocessable("the month is not YYYY-MM", code="bad_month")
    year, month = int(text[:4]), int(text[5:])
    if not (1 <= month <= 12 and 2000 <= year <= 9999):
        raise Unprocessable("the month is not YYYY-MM", code="bad_month")
    return Month(year, month)


def _day_end_ms(day: str, tz: str) -> int:
    d = date.fromisoformat(day) + timedelta(days=1)
    return int(datetime(d.year, d.month, d.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def days_over(m: Month, tz: str, now_ms: int) -> list[str]:
    """The days of ``m`` (ISO, in ``tz``) that have ended by ``now_ms``."""
    days = (m.day(n).isoformat() for n in range(1, m.days + 1))
    return [d for d in days if _day_end_ms(d, tz) <= now_ms]


@dataclass(frozen=True)
class HeartbeatMonth:
    """A kiosk's heartbeat days in a month: the days over on which it was enrolled, the days of
    them with a heartbeat, and when its first device was flagged (None: never)."""

    enrolled: list[str]
    beat: list[str]
    flagged_at: int | None

    @property
    def missed(self) -> list[str]:
        have = set(self.beat)
        return [d for d in self.enrolled if d not in have]


def heartbeat_month(
    conn: Connection, codes: list[str], m: Month, tz: str, now_ms: int
) -> dict[str, HeartbeatMonth]:
    """K-code -> :class:`HeartbeatMonth` for each of ``codes``."""
    first_enrolled: dict[str, int] = {}
    flagged: dict[str, int] = {}
    for d in conn.execute(
        sa.select(devices.c.kiosk_code, devices.c.enrolled_at, devices.c.flagged_at).where(
            devices.c.kiosk_code.in_(codes)
        )
    ):
        first_enrolled[d.kiosk_code] = min(first_enrolled.get(d.kiosk_code, d.enrolled_at), d.enrolled_at)
        if d.flagged_at is not None:
            flagged[d.kiosk_code] = min(flagged.get(d.kiosk_code, d.flagged_at), d.flagged_at)
    over = days_over(m, tz, now_ms)
    beats: dict[str, set[str]] = {}
    for b in conn.execute(
        sa.select(heartbeat_days.c.kiosk_code, heartbeat_days.c.day)
        .where(heartbeat_days.c.kiosk_code.in_(codes), heartbeat_days.c.day.in_(over))
        .distinct()
    ):
        beats.setdefault(b.kiosk_code, set()).add(b.day)
    out = {}
    for code in codes:
        enrolled = [d for d in over if code in first_enrolled and first_enrolled[code] < _day_end_ms(d, tz)]
        beat = [d for d in enrolled if d in beats.get(code, set())]
        out[code] = HeartbeatMonth(enrolled, beat, flagged.get(code))
    return out


def month_report(
    conn: Connection,
    lsp_id: str,
    month: str | Month,
    *,
    tz: str,
    sla_hours: int,
    now_ms: int,
    kiosk_code: str | None = None,
) -> MonthlyReconciliation:
    """The LSP's month, per kiosk (or the one asked for: NotFound if it is not the LSP's)."""
    m = parse_month(month) if isinstance(month, str) else month
    kiosk_rows = kiosks_of(conn, lsp_id, kiosk_code)
    codes = [code for code, _name in kiosk_rows]
    start, end = m.window_ms(tz)
    rows = window_counts(conn, codes, start, end, sla_hours)
    beats = heartbeat_month(conn, codes, m, tz, now_ms)
    kiosks = []
    for code, name in kiosk_rows:
        hb = beats[code]
        kiosks.append(
            KioskMonth(
                kiosk_code=code,
                name=name,
                flagged=hb.flagged_at is not None,
                enrolled_days=len(hb.enrolled),
                heartbeat_days=len(hb.beat),
                **{**rows[code], "days_without_heartbeat": len(hb.missed)},
            )
        )
    totals = ReconRow(**{f: sum(getattr(k, f) for k in kiosks) for f in ROW_FIELDS})
    over = len(days_over(m, tz, now_ms))
    return MonthlyReconciliation(
        lsp_id=lsp_id,
        month=m.text,
        timezone=tz,
        sla_hours=sla_hours,
        days_in_month=m.days,
        days_over=over,
        complete=end <= now_ms,
        kiosks=kiosks,
        totals=totals,
    )


MONTH_CSV_HEAD = ["month", "kiosk_code", "name", "flagged", *CSV_FIELDS, "enrolled_days", "heartbeat_days"]


def csv_rows(report: MonthlyReconciliation) -> list[list[object]]:
    """Header, one line per kiosk, the total: the CSV's and the console sheet's rows (raw cells)."""
    lines: list[list[object]] = [list(MONTH_CSV_HEAD)]
    for k in report.kiosks:
        head = [report.month, k.kiosk_code, k.name, int(k.flagged)]
        lines.append([*head, *csv_values(k), k.enrolled_days, k.heartbeat_days])
    lines.append([report.month, "TOTAL", "", "", *csv_values(report.totals), "", ""])
    return lines


def to_csv(report: MonthlyReconciliation) -> str:
    """The month as CSV (as the daily one: money in rupees, every cell spreadsheet-safe)."""
    return write_csv(csv_rows(report))
