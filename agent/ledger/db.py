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
    if not _keyed(conn, hex_key):
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


def _keyed(conn: Connection, hex_key: str) -> bool:
    """Give the connection its key and prove it with a read; False if the key does not open it."""
    try:
        conn.execute(f"PRAGMA key = \"x'{hex_key}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError:
        return False
    return True


def open_readonly(path: Path, hex_key: str) -> Connection:
    """A read-only keyed connection (no pragmas, nothing written); WrongKey if the key does not open it."""
    conn = sqlcipher3.connect(
        f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
    )
    if not _keyed(conn, hex_key):
        conn.close()
        raise WrongKey(f"{path}: does not open with this key")
    return conn


def checkpoint(conn: Connection, mode: str = "PASSIVE") -> None:
    """Fold the WAL into the main file (``TRUNCATE`` also empties the WAL)."""
    if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        raise ValueError(f"no checkpoint mode {mode!r}")
    conn.execute(f"PRAGMA wal_checkpoint({mode})")


def single_file(conn: Connection) -> None:
    """Rollback-journal mode: the database is one self-contained file (a copy, a backup)."""
    conn.execute("PRAGMA journal_mode = DELETE")


def copy_to(conn: Connection, dest: Path, hex_key: str) -> None:
    """SQLite's online backup of ``conn`` into a new SQLCipher file keyed with ``hex_key``:
    one step, a consistent snapshot under a read lock; the copy is one file."""
    target = connect(dest, hex_key, create=True)
    try:
        single_file(target)
        conn.backup(target)
        single_file(target)
    finally:
        target.close()


def rekey(conn: Connection, new_hex_key: str) -> None:
    """Re-encrypt the whole file to ``new_hex_key`` (one transaction), then fold the WAL in."""
    conn.execute(f"PRAGMA rekey = \"x'{new_hex_key}'\"")
    checkpoint(conn, "TRUNCATE")
