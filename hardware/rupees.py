"""Rupee amounts as a citizen reads them, for receipts and the operator's page (no heavy imports:
the agent's page formats fees without loading the receipt stack)."""

from __future__ import annotations


def format_rupees(paise: int) -> str:
    """``150050`` -> ``"₹ 1,500.50"`` with Indian digit grouping (12,34,567.00)."""
    rupees, p = divmod(paise, 100)
    digits = str(rupees)
    if len(digits) > 3:
        head, tail = digits[:-3], digits[-3:]
        groups: list[str] = []
        while len(head) > 2:
            groups.insert(0, head[-2:])
            head = head[:-2]
        if head:
            groups.insert(0, head)
        digits = ",".join(groups) + "," + tail
    return f"\u20b9 {digits}.{p:02d}"
