"""Token issue from leased blocks (DESIGN section 4). Runs inside the ledger's
write transaction: the lease cursor moves in the same commit as the record."""

from __future__ import annotations

from agent.ledger.db import Connection

# A development-only block (init --dev-leases) lives far from the server's
# serials; the server rejects these tokens, so they can never reach the centre
# as if they were real.
DEV_LEASE_START = 9_900_000_000
DEV_LEASE_SIZE = 100_000


_TAKE = (
    "UPDATE leases SET next_serial = next_serial + 1 WHERE lease_id = ("
    "SELECT lease_id FROM leases WHERE next_serial < end_serial ORDER BY received_at, start_serial LIMIT 1"
    ") RETURNING next_serial - 1"
)


def take_serial(conn: Connection) -> int | None:
    """The next leased serial (one statement: the cursor moves as it is read), or None when every
    block is spent."""
    rows = conn.execute(_TAKE).fetchall()  # all: the statement must finish before COMMIT
    return int(rows[0][0]) if rows else None


def highest_issued(conn: Connection) -> int:
    """The highest serial any block has issued (0: none), for the high-water mark."""
    row = conn.execute(
        "SELECT COALESCE(MAX(next_serial - 1), 0) FROM leases WHERE next_serial > start_serial"
    ).fetchone()
    return int(row[0])


def remaining(conn: Connection) -> int:
    row = conn.execute("SELECT COALESCE(SUM(end_serial - next_serial), 0) FROM leases").fetchone()
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
