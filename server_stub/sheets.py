"""Cells for spreadsheets (CSV and the console's XLSX): one helper, so no export can carry a formula.

- :func:`safe_cell`: text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
  gets a leading ``'``, so Excel, LibreOffice and Google Sheets show it as text instead of running
  it (OWASP "CSV injection"). Numbers pass as numbers.
- :func:`write_csv`: rows as CSV text, every cell through :func:`safe_cell`.
- :func:`rupees`: integer paise as a two-decimal rupee amount (``Decimal``), for the money columns
  of an export; JSON keeps paise.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

__all__ = ["rupees", "safe_cell", "write_csv"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def rupees(paise: int) -> Decimal:
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))


def write_csv(rows: list[list[object]]) -> str:
    """``rows`` as CSV (``\n`` line ends), each cell made spreadsheet-safe."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for row in rows:
        w.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()
