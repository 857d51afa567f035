"""Cells for spreadsheets (CSV today, XLSX later): one helper, so no export can carry a formula.

- :func:`safe_cell`: text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
  gets a leading ``'``, so Excel, LibreOffice and Google Sheets show it as text instead of running
  it (OWASP "CSV injection"). Numbers pass as numbers.
- :func:`rupees`: integer paise as a two-decimal rupee amount (``Decimal``), for the money columns
  of an export; JSON keeps paise.
"""

from __future__ import annotations

from decimal import Decimal

__all__ = ["rupees", "safe_cell"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def rupees(paise: int) -> Decimal:
    return (Decimal(paise) / 100).quantize(Decimal("0.01"))
