"""Read models over the ledger's tables: the joined transaction row (record +
sync state + print state), the newest or searched rows, and the status counts.

The operator page polls these every few seconds, so they read only the rows
they show: seqs have no gaps, so "the newest N" is ``seq > head - N``, and
the outbox counts come from its small partial indexes.

An append writes no outbox row: a record past the outbox's *frontier* (its highest seq; rows
run 1..frontier without gaps) is pending. Sync gives those records their rows when it first
takes them into a batch (:func:`materialise`), in one transaction for the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from agent.ledger.db import Connection

DAY_MS = 86_400_000
SyncState = Literal["pending", "sent", "acked", "rejected"]
PrintState = Literal["pending", "printed", "failed"]


class TxnRow(TypedDict):
    """A stored record with its sync and print state (what ``find``/``rows`` give)."""

    seq: int
    txn_id: str
    kind: Literal["sale", "void"]
    created_at: int
    operator: str
    service: str
    amount_paise: int
    fee_paise: int
    token: str | None
    fields: str  # canonical JSON, as stored and hashed
    mobile: str | None
    aadhaar_last4: str | None
    aadhaar_sealed: str | None
    voids_seq: int | None
    reason: str | None
    catalog_version: int
    prev_hash: str
    hash: str
    sig: str
    sync_state: SyncState | None
    sync_error: str | None
    final_token: str | None
    print_state: PrintState | None
    print_error: str | None
    voided_by: int | None
    voids_token: str | None


class OutboxCounts(TypedDict):
    pending: int  # never carried by a request that left
    sent: int  # carried by a request whose answer was not stored (sent again)
    acked: int
    rejected: int
    waiting: int  # pending + sent: what sync still has to deliver ("waiting for the server")


@dataclass(frozen=True)
class LedgerStatus:
    """What `kiosk-agent status` and /api/status both show of the ledger."""

    device_id: str
    kiosk_code: str | None
    lsp_id: str | None
    head_seq: int
    head_hash: str
    outbox: OutboxCounts
    tokens_remaining: int
    issue_rate_per_day: float
    last_sync_at: str | None

    @property
    def count(self) -> int:
        """Seqs run 1..n without gaps (verify checks it), so the head is the count."""
        return self.head_seq

    @property
    def queue_depth(self) -> int:
        return self.outbox["pending"] + self.outbox["sent"]

    @property
    def tokens_days_left(self) -> float | None:
        rate = self.issue_rate_per_day
        return round(self.tokens_remaining / rate, 1) if rate else None


_SELECT_ROWS = (
    "SELECT r.*, COALESCE(o.state, 'pending') AS sync_state, o.last_error AS sync_error, "
    "o.final_token AS final_token, "
    "(SELECT p.state FROM print_jobs p WHERE p.seq = r.seq ORDER BY p.id DESC LIMIT 1) AS print_state, "
    "(SELECT p.last_error FROM print_jobs p WHERE p.seq = r.seq ORDER BY p.id DESC LIMIT 1) "
    "AS print_error, "
    "(SELECT v.seq FROM records v WHERE v.kind = 'void' AND v.voids_seq = r.seq) AS voided_by, "
    "(SELECT t.token FROM records t WHERE t.seq = r.voids_seq) AS voids_token "
    "FROM records r LEFT JOIN outbox o ON o.seq = r.seq"
)
#: The outbox's frontier: records past it are pending and have no outbox row yet.
FRONTIER = "(SELECT COALESCE(MAX(seq), 0) FROM outbox)"
# Waiting for the server (pending or sent): indexed rows plus the records past the frontier.
_WAITING = (
    "r.seq IN (SELECT seq FROM outbox WHERE state IN ('pending', 'sent') "
    f"UNION ALL SELECT seq FROM records WHERE seq > {FRONTIER})"
)
# One indexed lookup per kind of reference (records_token, outbox_final_token, the txn_id
# unique index): an OR across the join would scan every record.
_BY_REF = (
    "WHERE r.seq IN (SELECT seq FROM records WHERE kind = 'sale' AND token = ? "
    "UNION ALL SELECT seq FROM outbox WHERE final_token = ? "
    "UNION ALL SELECT seq FROM records WHERE txn_id = ?)"
)


def select_rows(conn: Connection, where: str = "", params: tuple[Any, ...] = ()) -> list[TxnRow]:
    """Rows oldest first; ``where`` is one of this module's clauses, never user text."""
    cur = conn.execute(f"{_SELECT_ROWS} {where} ORDER BY r.seq", params)
    names = [d[0] for d in cur.description]
    return [cast(TxnRow, dict(zip(names, row, strict=True))) for row in cur.fetchall()]


def all_rows(conn: Connection, *, pending_only: bool = False) -> list[TxnRow]:
    return select_rows(conn, f"WHERE {_WAITING}" if pending_only else "")


def by_ref(conn: Connection, ref: str) -> list[TxnRow]:
    """By token (leased, provisional or final) or txn_id; a short number is also tried as a seq."""
    rows = select_rows(conn, _BY_REF, (ref, ref, ref))
    if not rows and ref.isdigit() and len(ref) < 10:
        rows = by_seq(conn, int(ref))
    return rows


def by_seq(conn: Connection, seq: int) -> list[TxnRow]:
    return select_rows(conn, "WHERE r.seq = ?", (seq,))


def recent(
    conn: Connection,
    head_seq: int,
    limit: int,
    *,
    pending: bool = False,
    rejected: bool = False,
    search: str | None = None,
) -> list[TxnRow]:
    """Newest first. ``search`` (already checked by the caller): a token, txn id or service-code prefix."""
    clauses: list[str] = []
    params: list[Any] = []
    if pending:
        clauses.append(_WAITING)
    if rejected:
        clauses.append("o.state = 'rejected'")
    if search:
        clauses.append("(r.token = ? OR o.final_token = ? OR r.txn_id = ? OR r.service LIKE ? ESCAPE '\\')")
        like = search.upper().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [search, search, search, like]
    if not clauses:
        clauses.append("r.seq > ?")
        params.append(head_seq - limit)
    rows = select_rows(conn, "WHERE " + " AND ".join(clauses), tuple(params))
    return list(reversed(rows[-limit:]))


def outbox_counts(conn: Connection, head_seq: int) -> OutboxCounts:
    """From the small partial indexes only: records past the frontier are pending, every other
    record has one outbox row, and 'acked' is all the rest."""
    unacked = dict(
        conn.execute("SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'sent') GROUP BY state")
    )
    unrowed = max(0, head_seq - frontier(conn))
    pending, sent = int(unacked.get("pending", 0)) + unrowed, int(unacked.get("sent", 0))
    rejected = int(conn.execute("SELECT count(*) FROM outbox WHERE state = 'rejected'").fetchone()[0])
    return OutboxCounts(
        pending=pending,
        sent=sent,
        acked=head_seq - pending - sent - rejected,
        rejected=rejected,
        waiting=pending + sent,
    )


def frontier(conn: Connection) -> int:
    """The highest seq with an outbox row (0: none); every record after it is pending."""
    return int(conn.execute(f"SELECT {FRONTIER}").fetchone()[0])


def materialise(conn: Connection, count: int) -> int:
    """Give the next ``count`` records past the frontier their 'pending' outbox rows, stamped with
    their created_at as an append used to (inside the caller's write transaction); rows made."""
    cur = conn.execute(
        "INSERT INTO outbox (seq, state, updated_at) SELECT seq, 'pending', created_at FROM records "
        f"WHERE seq > {FRONTIER} AND seq <= {FRONTIER} + ? ORDER BY seq",
        (count,),
    )
    return int(cur.rowcount)


def issue_rate_per_day(conn: Connection, now_ms: int) -> float:
    """Sales per day over the last week. Bounded: only the newest 20,000 records are looked at
    (no kiosk sells that many in a week), so `status` stays fast however long the ledger grows."""
    row = conn.execute(
        "SELECT count(*), MIN(created_at) FROM (SELECT kind, created_at FROM records "
        "ORDER BY seq DESC LIMIT 20000) WHERE kind = 'sale' AND created_at >= ?",
        (now_ms - 7 * DAY_MS,),
    ).fetchone()
    n, first = int(row[0]), row[1]
    if not n:
        return 0.0
    return n / max((now_ms - int(first)) / DAY_MS, 1.0)


__all__ = ["LedgerStatus", "OutboxCounts", "PrintState", "SyncState", "TxnRow"]
