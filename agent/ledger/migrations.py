"""Numbered schema migrations. ``PRAGMA user_version`` holds the last one
applied; each runs in its own write transaction. Add new ones at the end,
never edit an old one (tests migrate from every earlier version)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.ledger.db import Connection

if TYPE_CHECKING:  # imported in migrate(): opening a current ledger never needs it (~30 ms)
    import sqlite_utils


def _m1_initial(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE records (
            seq INTEGER PRIMARY KEY,
            txn_id TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('sale', 'void')),
            created_at INTEGER NOT NULL,
            operator TEXT NOT NULL,
            service TEXT NOT NULL,
            amount_paise INTEGER NOT NULL,
            fee_paise INTEGER NOT NULL,
            token TEXT,
            fields TEXT NOT NULL,
            mobile TEXT,
            aadhaar_last4 TEXT,
            aadhaar_sealed TEXT,
            voids_seq INTEGER REFERENCES records(seq),
            reason TEXT,
            catalog_version INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            sig TEXT NOT NULL
        )"""
    )
    db.execute("CREATE UNIQUE INDEX records_token ON records(token) WHERE kind = 'sale'")
    db.execute("CREATE UNIQUE INDEX records_voids ON records(voids_seq) WHERE kind = 'void'")
    # Append-only: the record table refuses updates and deletes.
    db.execute(
        "CREATE TRIGGER records_no_update BEFORE UPDATE ON records "
        "BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END"
    )
    db.execute(
        "CREATE TRIGGER records_no_delete BEFORE DELETE ON records "
        "BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END"
    )
    db.execute(
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY REFERENCES records(seq),
            state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'acked', 'rejected')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            final_token TEXT,
            updated_at INTEGER NOT NULL
        )"""
    )
    # Only unacknowledged rows are indexed by state: an append touches one small index page,
    # and the acked history (nearly every row) stays out of it.
    db.execute("CREATE INDEX outbox_unacked ON outbox(seq) WHERE state IN ('pending', 'sent')")
    db.execute("CREATE INDEX outbox_rejected ON outbox(seq) WHERE state = 'rejected'")
    db.execute("CREATE UNIQUE INDEX outbox_final_token ON outbox(final_token) WHERE final_token IS NOT NULL")
    db.execute(
        """CREATE TABLE print_jobs (
            id INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL REFERENCES records(seq),
            state TEXT NOT NULL CHECK (state IN ('pending', 'printed', 'failed')),
            duplicate INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )"""
    )
    db.execute("CREATE INDEX print_jobs_seq ON print_jobs(seq, id)")
    db.execute(
        """CREATE TABLE leases (
            lease_id TEXT PRIMARY KEY,
            start_serial INTEGER NOT NULL,
            end_serial INTEGER NOT NULL CHECK (end_serial > start_serial),
            next_serial INTEGER NOT NULL,
            sig TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('server', 'dev')),
            received_at INTEGER NOT NULL
        )"""
    )


def _m2_operators(db: sqlite_utils.Database) -> None:
    """Operators enrolled on the R30x sensor: the template stays on the sensor, we keep its slot."""
    db.execute(
        """CREATE TABLE operators (
            name TEXT PRIMARY KEY,
            slot INTEGER NOT NULL UNIQUE,
            created_at INTEGER NOT NULL
        )"""
    )


def _m3_idempotency(db: sqlite_utils.Database) -> None:
    """The local API's Idempotency-Key: stored with the sale in its commit, so a client whose
    answer was lost gets the same transaction back instead of a second sale. ``body_mac`` is an
    HMAC of the request under a key derived from the device key (never the citizen's numbers)."""
    db.execute(
        """CREATE TABLE idempotency_keys (
            key TEXT PRIMARY KEY,
            seq INTEGER NOT NULL UNIQUE REFERENCES records(seq),
            body_mac TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )"""
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_m1_initial, _m2_operators, _m3_idempotency]


def schema_version(conn: Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: Connection) -> int:
    """Apply every migration past the stored version; return the new version."""
    import sqlite_utils

    db = sqlite_utils.Database(conn)
    version = schema_version(conn)
    for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= number:  # another process got here first
                conn.execute("ROLLBACK")
                continue
            step(db)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return schema_version(conn)
