"""Change the ledger's database key, surviving a crash at any point.

For ``key_source = "file"``: the new key is written to ``<key_file>.new``
(0600, fsynced) first, then ``PRAGMA rekey`` re-encrypts the ledger in one
transaction, then ``<key_file>.new`` is renamed over the key file. A crash
before the rekey commits leaves the ledger on the old key (the stale ``.new``
is ignored and replaced next time); a crash after it leaves the ledger on the
new key with the key still in ``.new``: :func:`finish_interrupted`, called by
``open_ledger`` when the key file does not open the ledger, completes the swap.
``keyring`` works the same way with a second keyring entry. ``env`` is refused:
the agent cannot change the environment the operator configured.

Stop the service first: another process holding the ledger open keeps the old key.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from agent.config import Config
from agent.errors import InvalidInput, KeyUnavailable, WrongKey
from agent.fsutil import atomic_write, fsync_dir
from agent.ledger import db, keys
from agent.ledger.db import connect
from agent.lockfile import DirLock

log = logging.getLogger(__name__)

_KEYRING_NEW = "ledger-db-key.new"


@dataclass(frozen=True)
class RekeyResult:
    key_source: str
    where: str
    old_backups: int  # backups that still open only with the old key

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def pending_path(cfg: Config) -> Path:
    return cfg.key_file.with_name(cfg.key_file.name + ".new")


def _store_pending(cfg: Config, hex_key: str) -> None:
    sec = cfg.settings.security
    if sec.key_source == "file":
        atomic_write(pending_path(cfg), (hex_key + "\n").encode("ascii"))
        return
    import keyring

    keyring.set_password(sec.keyring_service, _KEYRING_NEW, hex_key)


def _load_pending(cfg: Config) -> str | None:
    sec = cfg.settings.security
    try:
        if sec.key_source == "file":
            path = pending_path(cfg)
            return keys.load_key("file", path, "") if path.exists() else None
        if sec.key_source == "keyring":
            import keyring

            value = keyring.get_password(sec.keyring_service, _KEYRING_NEW)
            return None if value is None else keys._check(value, "the OS keyring")
    except Exception:
        return None
    return None


def _promote_pending(cfg: Config, hex_key: str) -> None:
    """Make the pending key the key (after the ledger was rekeyed to it)."""
    sec = cfg.settings.security
    if sec.key_source == "file":
        os.replace(pending_path(cfg), cfg.key_file)
        fsync_dir(cfg.key_file.parent)
        return
    import keyring

    keyring.set_password(sec.keyring_service, keys._KEYRING_USER, hex_key)
    keyring.delete_password(sec.keyring_service, _KEYRING_NEW)


def _drop_pending(cfg: Config) -> None:
    sec = cfg.settings.security
    if sec.key_source == "file":
        pending_path(cfg).unlink(missing_ok=True)
    elif sec.key_source == "keyring":
        import keyring

        try:
            keyring.delete_password(sec.keyring_service, _KEYRING_NEW)
        except Exception:  # no such entry
            pass


def _opens(cfg: Config, hex_key: str) -> bool:
    try:
        connect(cfg.ledger_path, hex_key).close()
        return True
    except WrongKey:
        return False


def finish_interrupted(cfg: Config) -> str | None:
    """After a crash mid-rekey: if the ledger opens with the pending key, make it the key.

    Returns the key now in force, or None if there was nothing to finish.
    """
    if cfg.settings.security.key_source == "env":
        return None
    new = _load_pending(cfg)
    if new is None or not cfg.ledger_path.exists() or not _opens(cfg, new):
        return None
    _promote_pending(cfg, new)
    log.warning("finished an interrupted rekey: the new database key is now in place")
    return new


def rekey(cfg: Config) -> RekeyResult:
    """A new random key for the ledger, stored per ``[security] key_source``."""
    sec = cfg.settings.security
    if sec.key_source == "env":
        raise InvalidInput(
            f"key_source is env: the agent cannot change {keys.ENV_KEY} for you. Rekey with a SQLCipher "
            "tool (PRAGMA rekey) while the service is stopped, then set the new value in the environment"
        )
    if not cfg.ledger_path.exists():
        raise InvalidInput(f"{cfg.ledger_path}: no ledger here; run kiosk-agent init")
    lock = DirLock(cfg.data_dir).acquire()  # AlreadyRunning while `kiosk-agent run` holds the data dir
    try:
        return _rekey(cfg)
    finally:
        lock.release()


def _rekey(cfg: Config) -> RekeyResult:
    sec = cfg.settings.security
    old = keys.load_key(sec.key_source, cfg.key_file, sec.keyring_service)
    conn = connect(cfg.ledger_path, old)  # WrongKey here: the old key must open it first
    try:
        _drop_pending(cfg)
        new = secrets.token_hex(32)
        try:
            _store_pending(cfg, new)
        except Exception as exc:
            raise KeyUnavailable(
                f"cannot store the new key ({exc.__class__.__name__}); nothing changed"
            ) from None
        db.rekey(conn, new)
    finally:
        conn.close()
    if not _opens(cfg, new):  # should not happen; the pending key stays for finish_interrupted
        raise WrongKey("the ledger did not reopen with the new key; the old key file was left in place")
    _promote_pending(cfg, new)
    folder = cfg.data_dir / "backups"
    old_backups = sum(1 for _ in folder.glob("*.db")) if folder.is_dir() else 0
    where = str(cfg.key_file) if sec.key_source == "file" else f"OS keyring '{sec.keyring_service}'"
    log.info("ledger rekeyed (key in %s)", sec.key_source)
    return RekeyResult(sec.key_source, where, old_backups)


__all__ = ["RekeyResult", "finish_interrupted", "pending_path", "rekey"]
