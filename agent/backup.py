"""Encrypted backups of the ledger, restore, and the daily rotation job.

A backup is SQLite's online backup API from the live connection into a new
SQLCipher file keyed with the same key, so it is ciphertext like the ledger
and opens with the same ``PRAGMA key``. It is written to a temp file in the
destination folder, verified (chain and signatures), fsynced and only then
renamed into place: a backup file that exists is whole and verified.

A backup made before a ``rekey`` opens only with the key it was made with;
``restore --key-file OLD`` re-encrypts such a copy to the current key.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent import ids
from agent.config import Config
from agent.errors import InvalidInput, LedgerCorrupt, NotInitialised, WrongKey
from agent.fsutil import fsync_dir, fsync_file
from agent.ledger import Ledger, keys, verify
from agent.ledger.db import DatabaseError, open_readonly

log = logging.getLogger(__name__)

SQLITE_MAGIC = b"SQLite format 3\x00"
_ROTATED = re.compile(r"^ledger-\d{8}T\d{6}(\d{3})?Z\.db$")


@dataclass(frozen=True)
class BackupResult:
    path: str
    device_id: str
    count: int
    head_seq: int
    head_hash: str
    bytes: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def remove_with_sidecars(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        p.unlink(missing_ok=True)


def utc_stamp(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y%m%dT%H%M%S") + f"{ms % 1000:03d}Z"


def check_file(path: Path, hex_key: str) -> BackupResult:
    """Open a backup read-only with ``hex_key`` and verify its whole chain.

    WrongKey if the key does not open it, LedgerCorrupt if the chain is broken,
    InvalidInput if it is plaintext or not a ledger. The file is not changed.
    """
    if not path.is_file():
        raise InvalidInput(f"{path}: no such backup file")
    with open(path, "rb") as fh:
        if fh.read(16) == SQLITE_MAGIC:
            raise InvalidInput(f"{path}: not an encrypted ledger backup (plain SQLite file); refused")
    try:
        conn = open_readonly(path, hex_key)
    except WrongKey:
        raise WrongKey(
            f"{path}: the backup does not open with this key (made before a rekey, or not a ledger backup)"
        ) from None
    try:
        try:
            ledger = Ledger(conn, path)
        except (DatabaseError, NotInitialised):
            raise InvalidInput(f"{path}: not a kiosk ledger backup") from None
        res = verify(ledger)
        if not res.ok:
            raise LedgerCorrupt(f"{path}: backup is broken at seq {res.bad_seq}: {res.problem}")
        return BackupResult(str(path), ledger.device_id, res.count, res.head_seq, res.head_hash, 0)
    finally:
        conn.close()


def backup_to(ledger: Ledger, dest: Path, hex_key: str) -> BackupResult:
    """Write a verified encrypted copy of ``ledger`` to ``dest`` atomically.

    The caller serialises access to ``ledger`` (one thread at a time on its
    connection). Refuses to overwrite the live ledger itself.
    """
    dest = dest.expanduser().absolute()
    if dest.resolve() == ledger.path.resolve():
        raise InvalidInput("the backup must not overwrite the ledger itself; choose another file")
    if dest.is_dir():
        raise InvalidInput(f"{dest}: is a folder; give a file name")
    if not dest.parent.is_dir():
        raise InvalidInput(f"{dest.parent}: folder does not exist")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    remove_with_sidecars(tmp)
    try:
        ledger.backup_into(tmp, hex_key)  # one step: a consistent snapshot, one self-contained file
        with open(tmp, "rb") as fh:
            if fh.read(16) == SQLITE_MAGIC:  # never leave a plaintext copy behind
                raise LedgerCorrupt("the backup came out unencrypted; refused")
        res = check_file(tmp, hex_key)
        # The copy's head must be a record of the live chain (a writer may have added more since).
        live_hash = ledger.record_hash(res.head_seq)
        if res.head_seq and live_hash != res.head_hash or res.device_id != ledger.device_id:
            raise LedgerCorrupt("the backup does not match the live ledger; nothing was written")
        fsync_file(tmp)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    finally:
        remove_with_sidecars(tmp)
    size = dest.stat().st_size
    log.info("backup written: %s (%d records, head seq %d)", dest.name, res.count, res.head_seq)
    return BackupResult(str(dest), res.device_id, res.count, res.head_seq, res.head_hash, size)


def current_key(cfg: Config) -> str:
    """The ledger key from the configured source (KeyUnavailable if it can't be had)."""
    sec = cfg.settings.security
    return keys.load_key(sec.key_source, cfg.key_file, sec.keyring_service)


def backup_rotate(
    cfg: Config, ledger: Ledger, keep: int = 7, *, now: Callable[[], int] = ids.now_ms
) -> BackupResult:
    """The scheduler's daily job: a new backup in ``<data_dir>/backups/``, keeping the newest ``keep``.

    Only files this job named (``ledger-<UTC stamp>.db``) are ever deleted.
    """
    if keep < 1:
        raise InvalidInput("keep at least one backup")
    folder = cfg.data_dir / "backups"
    folder.mkdir(mode=0o700, exist_ok=True)
    res = backup_to(ledger, folder / f"ledger-{utc_stamp(now())}.db", current_key(cfg))
    ours = sorted(p for p in folder.iterdir() if _ROTATED.match(p.name))
    for old in ours[:-keep]:
        old.unlink(missing_ok=True)
        log.info("backup rotated out: %s", old.name)
    return res


__all__ = ["BackupResult", "backup_rotate", "backup_to", "check_file", "current_key"]
