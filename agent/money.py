"""Rupee strings to integer paise, exactly (Decimal), refusing anything odd."""

from __future__ import annotations

import re
from decimal import Decimal

from agent.errors import InvalidInput

_RUPEES = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")


def parse_rupees(text: str, *, limit_paise: int | None = None) -> int:
    """'120', '120.5', '120.50' -> paise. Refuses negatives, more than two
    decimals, exponents, separators, and amounts above ``limit_paise``."""
    s = text.strip()
    if s.startswith("-"):
        raise InvalidInput("amount cannot be negative")
    if not s.isascii() or not _RUPEES.match(s):
        # Never repeat what was typed: it may be a citizen's number keyed into the wrong box.
        raise InvalidInput("the amount is not rupees like 150 or 150.50 (digits, at most 2 decimals)")
    paise = int(Decimal(s) * 100)
    if limit_paise is not None and paise > limit_paise:
        raise InvalidInput(f"amount is above this service's limit of Rs {format_rupees(limit_paise)}")
    return paise


def format_rupees(paise: int) -> str:
    sign = "-" if paise < 0 else ""
    paise = abs(paise)
    return f"{sign}{paise // 100}.{paise % 100:02d}"
