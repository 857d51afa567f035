"""Read models for the local API: status and recent/searched transactions.

The page polls these every few seconds, so they read only the rows they
show: seqs have no gaps, so "the newest N" is ``seq > head - N``.
"""

from __future__ import annotations

import re
from typing import Any

from agent import transactions
from agent.config import Config
from agent.errors import InvalidInput
from agent.ledger import Ledger

_REF = re.compile(r"^[A-Za-z0-9-]{1,64}$")


def check_ref(ref: str) -> str:
    ref = ref.strip()
    if not _REF.match(ref):
        raise InvalidInput("a token is letters, digits and dashes (at most 64)")
    return ref


def printer_kind(url: str) -> str:
    if url == "none":
        return "none"
    return "network" if url.startswith("socket://") else "serial"


def status(led: Ledger, cfg: Config) -> dict[str, Any]:
    seq, h = led.head()
    outbox = led.outbox_counts()
    s = cfg.settings
    return {
        "device_id": led.device_id,
        "kiosk_code": led.kiosk_code,
        "ledger": {"count": led.count(), "head_seq": seq, "head_hash": h},
        "outbox": outbox,
        "queue_depth": outbox["pending"] + outbox["sent"],
        "rejected": outbox["rejected"],
        "last_sync_at": led.meta("last_sync_at"),
        "tokens_remaining": (left := led.tokens_remaining()),
        "tokens_days_left": round(left / rate, 1) if (rate := led.issue_rate_per_day()) else None,
        "printer": {
            "kind": printer_kind(s.printer.url),
            "state": "unknown" if s.printer.url != "none" else "off",
        },
        "fingerprint": {"kind": s.fingerprint.kind},
    }


def recent(
    led: Ledger, limit: int, *, pending: bool = False, rejected: bool = False, q: str | None = None
) -> list[dict[str, Any]]:
    """Views, newest first."""
    clauses: list[str] = []
    params: list[Any] = []
    if pending:
        clauses.append("o.state IN ('pending', 'sent')")
    if rejected:
        clauses.append("o.state = 'rejected'")
    q = (q or "").strip()
    if q:
        q = check_ref(q)
        clauses.append("(r.token = ? OR o.final_token = ? OR r.txn_id = ? OR r.service LIKE ? ESCAPE '\\')")
        like = q.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [q, q, q, like]
    if not clauses:
        clauses.append("r.seq > ?")
        params.append(led.head()[0] - limit)
    # Ledger._rows is the one query that joins outbox and print state; the ledger has no
    # public filtered form of it yet.
    rows = led._rows("WHERE " + " AND ".join(clauses), tuple(params))
    return [transactions.view(r) for r in reversed(rows[-limit:])]
