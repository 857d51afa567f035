"""Put a verified backup in place of the ledger.

Two steps so the CLI can warn before anything changes: :func:`plan_restore`
reads the backup and the current ledger and says what will be lost;
:func:`apply_restore` swaps the files. The replaced ledger is kept beside it
as ``ledger.db.before-restore-<UTC stamp>`` (a hard link taken before the
atomic rename, so ``ledger.db`` is at every moment either the old file or the
new one).

Restoring rewinds the chain: if transactions made after the backup reached
the server, or new ones are made from the restored head, the server sees two
different records with the same seq and flags a fork for this device.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent import ids
from agent.backup import BackupResult, check_file, current_key, remove_with_sidecars, utc_stamp
from agent.config import Config
from agent.errors import AgentError, InvalidInput, LedgerCorrupt
from agent.fsutil import fsync_dir, fsync_file
from agent.ledger import Ledger, hwm, keys
from agent.ledger.db import checkpoint, connect, rekey, single_file
from agent.lockfile import DirLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestorePlan:
    source: Path
    backup: BackupResult
    old_key: str | None  # the key the backup was made with, when it is not the current one
    current: dict[str, object] | None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    restored_from: str
    kept_as: str | None
    count: int
    head_seq: int
    head_hash: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def _current_state(cfg: Config, hex_key: str, at_seq: int) -> tuple[dict[str, object] | None, str | None]:
    """The current ledger's device, head and its hash at ``at_seq``; or why it can't be read."""
    if not cfg.ledger_path.exists():
        return None, None
    try:
        with Ledger.open(cfg.ledger_path, hex_key) as led:
            seq, h = led.head()
            doc = {
                "device_id": led.device_id,
                "head_seq": seq,
                "head_hash": h,
                "hash_at": led.record_hash(at_seq),
            }
            return doc, None
    except AgentError as exc:
        return None, exc.message
    except Exception as exc:  # a damaged file: say so, keep it, restore anyway
        return None, f"cannot be read ({exc.__class__.__name__})"


def plan_restore(cfg: Config, source: Path, *, old_key_file: Path | None = None) -> RestorePlan:
    """Check the backup (with the current key, or ``old_key_file``'s) and describe the change."""
    hex_key = current_key(cfg)
    old_key = None
    if old_key_file is not None:
        try:
            old_key = keys.load_key("file", old_key_file, "")
        except AgentError as exc:
            raise InvalidInput(exc.message) from None
    backup = check_file(source, old_key or hex_key)
    current, problem = _current_state(cfg, hex_key, backup.head_seq)
    warnings = [
        f"restoring replaces this kiosk's ledger with the backup ({backup.count} records, "
        f"head seq {backup.head_seq}); stop the kiosk-agent service first",
    ]
    if problem is not None:
        warnings.append(f"the current ledger {problem}; it will be kept beside the restored one")
    if current is not None:
        head = int(str(current["head_seq"]))
        if current["device_id"] != backup.device_id:
            warnings.append(
                f"the backup belongs to device {backup.device_id}, the current ledger to device "
                f"{current['device_id']}: this PC will act as {backup.device_id}; never run both"
            )
        elif backup.head_seq and current["hash_at"] != backup.head_hash:
            warnings.append(
                "the current ledger is not a later state of this backup (its records differ at "
                f"seq {backup.head_seq}): THE SERVER WILL FLAG A FORK for this device"
            )
        elif head > backup.head_seq:
            warnings.append(
                f"{head - backup.head_seq} transaction(s) made after this backup (seq "
                f"{backup.head_seq + 1}..{head}) will no longer be in this kiosk's ledger. If any reached "
                "the server, or when new ones are made, THE SERVER WILL FLAG A FORK for this device: "
                "tell your LSP before serving citizens"
            )
    else:
        warnings.append(
            "if this kiosk made transactions after the backup, THE SERVER WILL FLAG A FORK for this device"
        )
    return RestorePlan(source, backup, old_key, current, warnings)


def _keep_current(cfg: Config, hex_key: str, stamp: str) -> Path | None:
    path = cfg.ledger_path
    if not path.exists():
        return None
    try:  # fold the WAL into the file so the kept copy is one file
        conn = connect(path, hex_key)
        try:
            checkpoint(conn, "TRUNCATE")
        finally:
            conn.close()
    except Exception:
        log.warning("could not checkpoint the current ledger before restore; keeping its WAL beside it")
    kept = path.with_name(f"{path.name}.before-restore-{stamp}")
    try:
        os.link(path, kept)
    except OSError:
        shutil.copy2(path, kept)
        fsync_file(kept)
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        os.replace(wal, kept.with_name(kept.name + "-wal"))
    path.with_name(path.name + "-shm").unlink(missing_ok=True)
    return kept


def apply_restore(cfg: Config, plan: RestorePlan, *, now: Callable[[], int] = ids.now_ms) -> RestoreResult:
    """Put the planned backup in place of the ledger; the old one is kept, never deleted."""
    lock = DirLock(cfg.data_dir).acquire()  # AlreadyRunning while `kiosk-agent run` holds the data dir
    try:
        return _apply(cfg, plan, now)
    finally:
        lock.release()


def _apply(cfg: Config, plan: RestorePlan, now: Callable[[], int]) -> RestoreResult:
    hex_key = current_key(cfg)
    tmp = cfg.data_dir / "ledger.db.restore-tmp"
    remove_with_sidecars(tmp)
    try:
        shutil.copyfile(plan.source, tmp)
        if plan.old_key is not None:  # re-encrypt a pre-rekey backup to today's key
            conn = connect(tmp, plan.old_key)
            try:
                rekey(conn, hex_key)
                single_file(conn)
            finally:
                conn.close()
        res = check_file(tmp, hex_key)
        if (res.head_seq, res.head_hash) != (plan.backup.head_seq, plan.backup.head_hash):
            raise LedgerCorrupt(f"{plan.source}: the backup changed while restoring; nothing was changed")
        fsync_file(tmp)
        os.chmod(tmp, 0o600)
        kept = _keep_current(cfg, hex_key, utc_stamp(now()))
        os.replace(tmp, cfg.ledger_path)
        fsync_dir(cfg.data_dir)
        hwm.reset(cfg.ledger_path)  # the older ledger is put back on purpose: its mark starts again
    finally:
        remove_with_sidecars(tmp)
    with Ledger.open(cfg.ledger_path, hex_key) as led:  # runs any migrations the older copy needs
        seq, h = led.head()
        count = led.count()
    log.warning("ledger restored from a backup: head seq %d (kept the old one as %s)", seq, kept)
    return RestoreResult(str(plan.source), str(kept) if kept else None, count, seq, h)


__all__ = ["RestorePlan", "RestoreResult", "apply_restore", "plan_restore"]
