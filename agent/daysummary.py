"""The day at a glance (issue 14): today's count, cash collected and fees, per service, and the
end-of-day summary the operator prints for the LSP's field visit: the ledger's head seq and hash,
signed by the device so the paper can be checked against the server later.

The day is the IST calendar day of ``now``; a voided sale counts in ``voids`` and not in the
totals (the cash went back).
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent import ids
from agent.config import Config
from agent.ledger import Ledger, LedgerProvider, TxnRow, as_provider
from sync.wire import canonical

if TYPE_CHECKING:
    from hardware import Printer

_PAGE = 500


def day_start_ms(now_ms: int) -> int:
    d = datetime.fromtimestamp(now_ms / 1000, ids.IST)
    return int(d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def _today_rows(led: Ledger, start: int) -> list[TxnRow]:
    limit = _PAGE
    while True:
        rows = led.recent(limit)
        if len(rows) < limit or rows[-1]["created_at"] < start:
            return [r for r in rows if r["created_at"] >= start]
        limit *= 4


def _totals(rows: list[TxnRow]) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = {}
    voids = 0
    for r in rows:
        if r["kind"] == "void":
            voids += 1
            continue
        if r["voided_by"] is not None:
            continue
        s = per.setdefault(r["service"], {"count": 0, "amount_paise": 0, "fee_paise": 0})
        s["count"] += 1
        s["amount_paise"] += r["amount_paise"]
        s["fee_paise"] += r["fee_paise"]
    services: list[dict[str, Any]] = [{"service": k, **v} for k, v in sorted(per.items())]
    amount = sum(v["amount_paise"] for v in per.values())
    fees = sum(v["fee_paise"] for v in per.values())
    return {
        "count": sum(v["count"] for v in per.values()),
        "voids": voids,
        "amount_paise": amount,
        "fee_paise": fees,
        "cash_paise": amount + fees,
        "services": services,
    }


def summary(led: Ledger) -> dict[str, Any]:
    """Today's totals with the ledger head, signed by the device (``sig`` over the canonical JSON
    of everything else)."""
    now = led.now()
    start = day_start_ms(now)
    seq, head_hash = led.head()
    doc: dict[str, Any] = {
        "date": datetime.fromtimestamp(start / 1000, ids.IST).strftime("%Y-%m-%d"),
        "kiosk_code": led.kiosk_code or "UNENROLLED",
        "device_id": led.device_id,
        "made_at": now,
        "head_seq": seq,
        "head_hash": head_hash,
        **_totals(_today_rows(led, start)),
    }
    doc["sig"] = base64.b64encode(led.sign(canonical.canonical_json(doc))).decode("ascii")
    return doc


def verify(doc: dict[str, Any], public_key_b64: str) -> bool:
    """Whether ``doc`` is a summary signed by the device with that key, unchanged."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    try:
        key = canonical.load_public_key_b64(public_key_b64)
        key.verify(base64.b64decode(str(doc.get("sig", "")), validate=True), canonical.canonical_json(body))
    except Exception:
        return False
    return True


def print_summary(
    cfg: Config, ledger: Ledger | LedgerProvider, names: dict[str, str], printer: Printer | None = None
) -> dict[str, Any]:
    """Print today's summary on the receipt printer (HardwareError when it can't)."""
    from agent import printing
    from hardware.receipt import build_day_summary

    with as_provider(ledger)() as led:
        doc = summary(led)
    job = build_day_summary(doc, names, cfg.settings.printer.width_dots, lang=cfg.settings.printer.lang)
    own = printer is None
    printer = printer or printing.open_configured(cfg)
    try:
        printer.print_bytes(job)
    finally:
        if own:
            printer.close()
    return doc


__all__ = ["day_start_ms", "print_summary", "summary", "verify"]
