"""The LSP commission rule of a catalog service, shared by agent and server.

Rules (all integer paise, bps = 1/100 of a percent):
- ``{"kind": "flat", "paise": N}``
- ``{"kind": "percent_of_fee", "bps": N}``
- ``{"kind": "percent_of_amount", "bps": N, "min_paise": A, "max_paise": B}``
Percentages round half up to the paisa. A void earns the negative of what the
voided record earned.
"""

from __future__ import annotations

from typing import Any


def _pct(value: int, bps: int) -> int:
    return (value * bps + 5000) // 10000


def commission_paise(rule: dict[str, Any], amount_paise: int, fee_paise: int) -> int:
    kind = rule.get("kind")
    if kind == "flat":
        return int(rule["paise"])
    if kind == "percent_of_fee":
        return _pct(fee_paise, int(rule["bps"]))
    if kind == "percent_of_amount":
        c = _pct(amount_paise, int(rule["bps"]))
        c = max(c, int(rule.get("min_paise", 0)))
        if "max_paise" in rule:
            c = min(c, int(rule["max_paise"]))
        return c
    raise ValueError(f"unknown commission rule kind: {kind!r}")
