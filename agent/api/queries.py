"""What the local API shows: the status document and recent/searched transactions.

The reading itself is the ledger's read model (``Ledger.status``, ``Ledger.recent``);
this module checks the references the browser sends and shapes the answers.
"""

from __future__ import annotations

import re
from typing import Any

from agent import transactions
from agent.alerts import alerts
from agent.config import Config
from agent.errors import InvalidInput
from agent.ledger import Ledger
from agent.transactions import TxnView

_REF = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def check_ref(ref: str) -> str:
    ref = ref.strip()
    if not _REF.match(ref):
        raise InvalidInput("a token is letters, digits and dashes (at most 64)")
    return ref


def check_token(ref: str) -> str:
    """A token to look up: a leased token's check digit (Verhoeff) and a provisional token's shape
    are checked, so a typo is a 422, never "unknown"; a txn id (has letters and dashes) passes."""
    from sync.wire.tokens import is_well_formed

    ref = check_ref(ref)
    if (ref.isdigit() or ref.startswith("P")) and not is_well_formed(ref):
        raise InvalidInput(
            "that is not a token number (11 digits with a correct check digit, or P<K-code>-<number>)"
        )
    return ref


def status(led: Ledger, cfg: Config) -> dict[str, Any]:
    st = led.status()
    printer = cfg.settings.printer
    return {
        "device_id": st.device_id,
        "kiosk_code": st.kiosk_code,
        "ledger": {"count": st.count, "head_seq": st.head_seq, "head_hash": st.head_hash},
        "outbox": st.outbox,
        "queue_depth": st.queue_depth,
        "rejected": st.outbox["rejected"],
        "last_sync_at": st.last_sync_at,
        "tokens_remaining": st.tokens_remaining,
        "tokens_days_left": st.tokens_days_left,
        "printer": {"kind": printer.kind, "state": "unknown" if printer.enabled else "off"},
        "fingerprint": {"kind": cfg.settings.fingerprint.kind},
        "clock_offset_s": round(led.clock.offset_s, 1),
        "alerts": alerts(led, cfg),
    }


def recent(
    led: Ledger, limit: int, *, pending: bool = False, rejected: bool = False, q: str | None = None
) -> list[TxnView]:
    """Views, newest first. ``q``: a token, txn id or service code (prefix)."""
    q = (q or "").strip()
    rows = led.recent(limit, pending=pending, rejected=rejected, search=check_ref(q) if q else None)
    return [transactions.view(r) for r in rows]
