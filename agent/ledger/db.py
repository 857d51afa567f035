"""Opening the SQLCipher database: key first, check it, then the pragmas.

A wrong key must leave the file byte-identical, so nothing that writes (WAL
switch, migrations) runs until a read has proved the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlcipher3

from agent.errors import NotInitialised, WrongKey

DatabaseError = sqlcipher3.DatabaseError
Connection = Any  # sqlcipher3.Connection has no usable stub


def connect(path: Path, hex_key: str, *, create: bool = False) -> Connection:
    """An open, keyed, checked connection in autocommit mode (explicit BEGINs)."""
    if not create and not path.exists():
        raise NotInitialised(f"{path}: no ledger here; run kiosk-agent init")
    mode = "rwc" if create else "rw"
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    conn = sqlcipher3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0)
    try:
        conn.execute(f"PRAGMA key = \"x'{hex_key}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        conn.close()
        raise WrongKey(
            f"{path}: the ledger does not open with this key (wrong key or not a ledger); nothing was changed"
        ) from None
    apply_pragmas(conn)
    return conn


PRAGMAS = (
    "journal_mode = WAL",
    "synchronous = FULL",
    "busy_timeout = 5000",
    "temp_store = MEMORY",
    "foreign_keys = ON",
)


def apply_pragmas(conn: Connection) -> None:
    """WAL, fsync on every commit (money), wait for the write lock, no temp files, FKs."""
    for pragma in PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
