"""The reconciliation the console shows and downloads: a day (``reconcile.build``) or a month
(``monthly.month_report``) per kiosk, and the same report as JSON, CSV and XLSX with the same
numbers (the JSON and CSV are exactly the API's). CSV and XLSX carry money
in rupees (two decimals) and every text cell spreadsheet-safe (:mod:`server_stub.sheets`); the
JSON keeps paise, as the API does.
"""

from __future__ import annotations

import io

from sqlalchemy.engine import Connection

from server_stub import monthly, reconcile
from server_stub.sheets import safe_cell
from sync.wire.protocol import KioskRecon, Reconciliation

HEADER = ["date", "kiosk_code", "name", "flagged", *reconcile.CSV_FIELDS]


def kiosk_days(
    conn: Connection, lsp_id: str, kiosk_code: str, month: str, tz: str, sla_hours: int
) -> list[tuple[str, KioskRecon]]:
    """One kiosk's days of a month: (YYYY-MM-DD, its row)."""
    m = monthly.parse_month(month)
    out = []
    for d in range(1, m.days + 1):
        report = reconcile.build(conn, lsp_id, m.day(d), tz, sla_hours, kiosk_code)
        out.append((report.date, report.kiosks[0]))
    return out


Report = Reconciliation | monthly.MonthlyReconciliation


def lines(report: Report) -> list[list[object]]:
    """The rows of the CSV and the sheet (header first), cells already spreadsheet-safe: the
    columns of ``reconcile.to_csv`` for a day, of ``monthly.to_csv`` for a month."""
    if isinstance(report, monthly.MonthlyReconciliation):
        rows = monthly.csv_rows(report)
    else:
        rows = reconcile.csv_rows(report)
    return [[safe_cell(c) for c in row] for row in rows]


def to_csv(report: Report) -> str:
    """Exactly the API's CSV."""
    if isinstance(report, monthly.MonthlyReconciliation):
        return monthly.to_csv(report)
    return reconcile.to_csv(report)


def to_xlsx(report: Report) -> bytes:
    """One sheet, the same rows as the CSV; rupees as numbers with two decimals, text as text."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    period = report.month if isinstance(report, monthly.MonthlyReconciliation) else report.date
    sheet.title = f"{report.lsp_id} {period}"[:31]
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
