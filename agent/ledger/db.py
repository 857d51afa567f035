"""Opening the SQLCipher database: key first, check it, then the pragmas.

A wrong key must leave the file byte-identical, so nothing that writes (WAL
switch, migrations) runs until a read has proved the key.
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import sqlcipher3

from agent import fsutil
from agent.errors import (
    DiskFull,
    LedgerDamaged,
    LedgerIOError,
    LedgerStorageError,
    NotInitialised,
    WrongKey,
)

DatabaseError = sqlcipher3.DatabaseError
Connection = Any  # sqlcipher3.Connection has no usable stub

# SQLite's primary result codes that name what went wrong with the file.
_BUSY, _LOCKED, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 10, 11, 13, 14, 26
#: Below this much free space an I/O error is taken to be the full disk (SQLite sometimes says
#: "disk I/O error" when it could not grow its -shm or -wal on a full disk).
_NEARLY_FULL = 1024 * 1024
RESTORE_HINT = "restore the newest good backup (kiosk-agent restore --from FILE --yes) and tell your LSP"


_READONLY = 8
_STORAGE = frozenset({_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB})


def is_storage(exc: BaseException) -> bool:
    """An error of the file or the disk (not a constraint or a bug in our SQL)."""
    return (
        isinstance(exc, DatabaseError) and ((getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF) in _STORAGE
    )


#: Free space below which the ledger is not opened at all: SQLite would grow its -shm into holes
#: it then touches through mmap (SIGBUS, no message, on a full 1 KB-block filesystem).
SHM_ROOM = 256 * 1024


def _shm(path: Path) -> Path:
    return path.with_name(path.name + "-shm")


def room_to_open(path: Path) -> None:
    """DiskFull before SQLite touches a -shm it could not back with blocks."""
    if fsutil.free_bytes(path.parent) < SHM_ROOM:
        raise disk_full(path.parent)


def back_the_shm(path: Path) -> None:
    """Fill the -shm's holes with real blocks now, while there is room, so no later write through
    SQLite's mmap can fault (re-run at each checkpoint: the -shm grows with the WAL)."""
    try:
        fsutil.allocate(_shm(path))
    except OSError as exc:
        raise storage_error(exc, path) from None


def disk_full(folder: Path) -> DiskFull:
    free = fsutil.free_bytes(folder)
    return DiskFull(
        f"the disk holding {folder} is full ({free // 1024} KB free): the ledger can't be written; "
        "free disk space (old backups, downloads), then try again; nothing committed was lost"
    )


def damaged(path: Path, what: str) -> LedgerDamaged:
    return LedgerDamaged(f"{path}: the ledger file is damaged ({what}); no new sales: {RESTORE_HINT}")


def storage_error(exc: Exception, path: Path) -> LedgerStorageError:
    """Name what really happened to the ledger file: disk full, damage, an I/O error, busy.

    ``exc`` is SQLite's error (or an OSError from a file beside the ledger); ``path`` the ledger.
    A wrong key is decided at open only (see :func:`connect`), never here."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return disk_full(path.parent)
        return LedgerIOError(f"{path.parent}: the disk could not be written ({exc.strerror}); check it")
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == _FULL or (code in (_IOERR, _CANTOPEN) and fsutil.free_bytes(path.parent) < _NEARLY_FULL):
        return disk_full(path.parent)
    if code in (_CORRUPT, _NOTADB):
        return damaged(path, "a page fails its check")
    if code in (_BUSY, _LOCKED):
        return LedgerIOError(f"{path}: the ledger is busy (another kiosk-agent command holds it); try again")
    name = getattr(exc, "sqlite_errorname", None) or exc.__class__.__name__
    return LedgerIOError(
        f"{path}: the disk could not read or write the ledger ({name}); check the disk and its cable, "
        f"then try again; if it keeps failing, {RESTORE_HINT}"
    )


def connect(path: Path, hex_key: str, *, create: bool = False) -> Connection:
    """An open, keyed, checked connection in autocommit mode (explicit BEGINs)."""
    if not create and not path.exists():
        raise NotInitialised(f"{path}: no ledger here; run kiosk-agent init")
    mode = "rwc" if create else "rw"
    uri = f"{path.resolve().as_uri()}?mode={mode}"
    room_to_open(path)
    try:
        conn = sqlcipher3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5.0)
    except DatabaseError as exc:
        raise storage_error(exc, path) from None
    try:
        _key_and_prove(conn, path, hex_key)
        apply_pragmas(conn)
        back_the_shm(path)
    except BaseException:
        conn.close()
        raise
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


def _key_and_prove(conn: Connection, path: Path, hex_key: str) -> None:
    """Give the connection its key and prove it with a read. Only SQLite's "file is not a
    database" (page 1 fails its HMAC) is a wrong key here; the caller may still find that the key
    is right and page 1 is damaged (:mod:`agent.ledger.hwm` holds a check of the key). A full
    disk, an I/O error or a damaged page further in are named as such."""
    try:
        conn.execute("PRAGMA cipher_log_level = NONE")  # its own stderr lines: we say it in one
        conn.execute(f"PRAGMA key = \"x'{hex_key}'\"")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except DatabaseError as exc:
        if ((getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF) == _NOTADB:
            raise WrongKey(
                f"{path}: the ledger does not open with this key (wrong key or not a ledger); "
                "nothing was changed"
            ) from None
        raise storage_error(exc, path) from None


def open_readonly(path: Path, hex_key: str) -> Connection:
    """A read-only keyed connection (no pragmas, nothing written); WrongKey if the key does not open it."""
    try:
        conn = sqlcipher3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    except DatabaseError as exc:
        raise storage_error(exc, path) from None
    try:
        _key_and_prove(conn, path, hex_key)
    except BaseException:
        conn.close()
        raise
    return conn


def checkpoint(conn: Connection, mode: str = "PASSIVE") -> None:
    """Fold the WAL into the main file (``TRUNCATE`` also empties the WAL)."""
    if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
        raise ValueError(f"no checkpoint mode {mode!r}")
    conn.execute(f"PRAGMA wal_checkpoint({mode})")
    back_the_shm(Path(conn.execute("PRAGMA database_list").fetchone()[2]))


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
