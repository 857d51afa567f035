"""The reconciliation the console shows and downloads: a day (``reconcile.build``) or a month
per kiosk, and the same report as JSON, CSV and XLSX with the same numbers.

The month of a kiosk is the sum of its days (IST): counts, money, voids, late syncs, gaps,
forks, rejected, clock-suspect records and days without a heartbeat. CSV and XLSX carry money
in rupees (two decimals) and every text cell spreadsheet-safe (:mod:`server_stub.sheets`); the
JSON keeps paise, as the API does.
"""

from __future__ import annotations

import calendar
import io
import re
from datetime import date

from sqlalchemy.engine import Connection

from server_stub import reconcile
from server_stub.errors import Unprocessable
from server_stub.sheets import rupees, safe_cell
from sync.wire.protocol import KioskRecon, Reconciliation, ReconRow

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
HEADER = ["date", "kiosk_code", "name", "flagged", *reconcile.CSV_FIELDS]


def parse_month(text: str) -> tuple[int, int]:
    m = _MONTH.match(text or "")
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise Unprocessable("the month is not YYYY-MM", code="bad_month")
    return int(m.group(1)), int(m.group(2))


def day_report(conn: Connection, lsp_id: str, day: date, tz: str, sla_hours: int) -> Reconciliation:
    return reconcile.build(conn, lsp_id, day, tz, sla_hours)


def _add(into: ReconRow, row: ReconRow) -> None:
    for f in reconcile.ROW_FIELDS:
        setattr(into, f, getattr(into, f) + getattr(row, f))


def month_report(
    conn: Connection, lsp_id: str, month: str, tz: str, sla_hours: int, kiosk_code: str | None = None
) -> Reconciliation:
    """Each kiosk's month, as the sum of its days; ``date`` is ``YYYY-MM``."""
    year, mon = parse_month(month)
    days = [date(year, mon, d) for d in range(1, calendar.monthrange(year, mon)[1] + 1)]
    first = reconcile.build(conn, lsp_id, days[0], tz, sla_hours, kiosk_code)
    kiosks = [k.model_copy() for k in first.kiosks]
    by_code = {k.kiosk_code: k for k in kiosks}
    totals = first.totals.model_copy()
    for day in days[1:]:
        report = reconcile.build(conn, lsp_id, day, tz, sla_hours, kiosk_code)
        for k in report.kiosks:
            _add(by_code[k.kiosk_code], k)
            by_code[k.kiosk_code].flagged = k.flagged
        _add(totals, report.totals)
    return Reconciliation(
        lsp_id=lsp_id, date=month, timezone=tz, sla_hours=sla_hours, kiosks=kiosks, totals=totals
    )


def kiosk_days(
    conn: Connection, lsp_id: str, kiosk_code: str, month: str, tz: str, sla_hours: int
) -> list[tuple[str, KioskRecon]]:
    """One kiosk's days of a month: (YYYY-MM-DD, its row)."""
    year, mon = parse_month(month)
    out = []
    for d in range(1, calendar.monthrange(year, mon)[1] + 1):
        report = reconcile.build(conn, lsp_id, date(year, mon, d), tz, sla_hours, kiosk_code)
        out.append((report.date, report.kiosks[0]))
    return out


def _values(r: ReconRow) -> list[object]:
    return [
        rupees(getattr(r, f)) if f in reconcile.MONEY_FIELDS else getattr(r, f) for f in reconcile.ROW_FIELDS
    ]


def lines(report: Reconciliation) -> list[list[object]]:
    """The rows of the CSV and the sheet (header first), cells already spreadsheet-safe."""
    rows: list[list[object]] = [
        [report.date, k.kiosk_code, k.name, int(k.flagged), *_values(k)] for k in report.kiosks
    ]
    rows.append([report.date, "TOTAL", "", "", *_values(report.totals)])
    header: list[object] = list(HEADER)
    return [header, *[[safe_cell(c) for c in row] for row in rows]]


def to_csv(report: Reconciliation) -> str:
    return reconcile.to_csv(report)


def to_xlsx(report: Reconciliation) -> bytes:
    """One sheet, the same rows as the CSV; rupees as numbers with two decimals, text as text."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = f"{report.lsp_id} {report.date}"[:31]
    for row in lines(report):
        sheet.append(row)  # Decimal rupees are stored as numbers
    money = [i + 1 for i, name in enumerate(HEADER) if name.endswith("_rs")]
    for column in sheet.iter_cols(min_row=2):
        if column[0].column in money:
            for cell in column:
                cell.number_format = "0.00"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
