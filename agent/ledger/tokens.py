"""Token issue from leased blocks (DESIGN section 4). Runs inside the ledger's
write transaction: the lease cursor moves in the same commit as the record."""

from __future__ import annotations

from agent.ledger.db import Connection

# A development-only block (init --dev-leases) lives far from the server's
# serials; the server rejects these tokens, so they can never reach the centre
# as if they were real.
DEV_LEASE_START = 9_900_000_000
DEV_LEASE_SIZE = 100_000


# Each block's cursor, derived: past its ``next_serial`` (a floor, kept exact by ledgers made
# before the cursor was derived, and moved to the end when a block is spent or retired) and past
# the highest leased token a sale took from it (one seek on the records_token index: a leased
# token is the serial's 10 digits plus a check digit, so a block's tokens sort between its ends).
# An append so writes no lease page: the token it stores in its record *is* the cursor's move.
_CURSORS = (
    "SELECT l.lease_id, l.start_serial, l.end_serial, MAX(l.next_serial, COALESCE(("
    "SELECT CAST(substr(MAX(r.token), 1, 10) AS INTEGER) + 1 FROM records r WHERE r.kind = 'sale' "
    "AND r.token >= printf('%010d', l.start_serial) AND r.token < printf('%010d', l.end_serial)"
    "), 0)) AS cursor, l.received_at FROM leases l"
)


def take_serial(conn: Connection) -> int | None:
    """The next leased serial, or None when every block is spent. Inside the append's write
    transaction: the serial is taken when the record carrying its token commits."""
    rows = conn.execute(
        f"{_CURSORS} WHERE l.next_serial < l.end_serial ORDER BY l.received_at, l.start_serial"
    ).fetchall()
    for lease_id, _start, end, cursor, _at in rows:
        if cursor < end:
            return int(cursor)
        # Spent: its floor goes to the end, so it is not looked at again (once per block).
        conn.execute("UPDATE leases SET next_serial = end_serial WHERE lease_id = ?", (lease_id,))
    return None


def highest_issued(conn: Connection) -> int:
    """The highest serial any block has issued (0: none), for the high-water mark."""
    row = conn.execute(
        f"SELECT COALESCE(MAX(cursor - 1), 0) FROM ({_CURSORS}) WHERE cursor > start_serial"
    ).fetchone()
    return int(row[0])


def remaining(conn: Connection) -> int:
    row = conn.execute(f"SELECT COALESCE(SUM(MAX(end_serial - cursor, 0)), 0) FROM ({_CURSORS})").fetchone()
    return int(row[0])


def add_lease(
    conn: Connection, lease_id: str, start: int, end: int, sig: str, source: str, now_ms: int
) -> bool:
    """Store a block; False if it was already stored (idempotent)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO leases (lease_id, start_serial, end_serial, next_serial, sig, source, "
        "received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (lease_id, start, end, start, sig, source, now_ms),
    )
    return bool(cur.rowcount)


def retire_dev_leases(conn: Connection) -> None:
    """Spend every development block (inside the caller's write transaction)."""
    conn.execute("UPDATE leases SET next_serial = end_serial WHERE source = 'dev'")
