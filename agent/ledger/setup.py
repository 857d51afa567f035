"""Creating and opening the ledger from a validated config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from agent import ids
from agent.config import Config
from agent.errors import WrongKey
from agent.fsutil import create_private, private_dir, private_file
from agent.ledger import db, hwm, identity, keys, migrations, tokens
from agent.ledger.db import connect
from agent.ledger.ledger import Ledger
from agent.ledger.space import Space

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitResult:
    created: bool
    device_id: str
    data_dir: str
    dev_lease_added: bool


def _key(cfg: Config, *, create: bool) -> str:
    sec = cfg.settings.security
    if create:
        return keys.create_key(sec.key_source, cfg.key_file, sec.keyring_service)
    return keys.load_key(sec.key_source, cfg.key_file, sec.keyring_service)


def _keep_private(cfg: Config) -> None:
    """The data dir 0700, the ledger (and its -wal/-shm) and key file 0600: tightened if looser."""
    paths = [cfg.ledger_path, cfg.ledger_path.with_name(cfg.ledger_path.name + "-wal"), cfg.key_file]
    paths.append(cfg.ledger_path.with_name(cfg.ledger_path.name + "-shm"))
    loose = [cfg.data_dir] if private_dir(cfg.data_dir) else []
    loose += [p for p in paths if private_file(p)]
    for path in loose:
        log.warning("%s could be read by other users; made it private", path)


def open_ledger(cfg: Config, now: Callable[[], int] = ids.now_ms) -> Ledger:
    """Open the existing ledger (NotInitialised / KeyUnavailable / WrongKey)."""
    from agent.errors import NotInitialised

    if not cfg.ledger_path.exists():
        raise NotInitialised(f"{cfg.ledger_path}: no ledger here; run kiosk-agent init")
    _keep_private(cfg)
    hex_key = _key(cfg, create=False)
    try:
        return _open(cfg, hex_key, now)
    except WrongKey:
        from agent.rekey import finish_interrupted  # a rekey cut off between the rekey and the key swap

        recovered = finish_interrupted(cfg)
        if recovered is not None:
            return _open(cfg, recovered, now)
        if hwm.key_matches(cfg.ledger_path, hex_key):  # the key is proven right: page 1 is damaged
            raise db.damaged(cfg.ledger_path, "its first page fails its check") from None
        raise


def _open(cfg: Config, hex_key: str, now: Callable[[], int]) -> Ledger:
    pages = cfg.settings.ledger.wal_checkpoint_pages
    return Ledger.open(cfg.ledger_path, hex_key, now, space=Space.from_config(cfg), checkpoint_pages=pages)


def init_ledger(cfg: Config, *, dev_leases: bool = False, now: Callable[[], int] = ids.now_ms) -> InitResult:
    """Make the data dir, key, ledger and device identity. Run again it changes
    nothing (except adding the dev lease once if asked)."""
    private_dir(cfg.data_dir)
    path = cfg.ledger_path
    created = False
    if path.exists():
        ledger = _open(cfg, _key(cfg, create=False), now)
    else:
        sec = cfg.settings.security
        # Reuse a key that is already there (env, keyring, or a file left by an
        # interrupted init); never overwrite one.
        try:
            hex_key = keys.load_key(sec.key_source, cfg.key_file, sec.keyring_service)
        except keys.KeyUnavailable:
            if sec.key_source == "env" or (sec.key_source == "file" and cfg.key_file.exists()):
                raise
            hex_key = _key(cfg, create=True)
        tmp = path.with_name(path.name + ".init")
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
        create_private(tmp)  # 0600 from the start (SQLite gives its -wal and -shm the same mode)
        conn = connect(tmp, hex_key, create=True)
        try:
            migrations.migrate(conn)
            _, stored = identity.new_private_key()
            device_id = ids.uuid7(now())
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("device_id", device_id), ("device_key", stored), ("created_at", str(now()))],
            )
            conn.execute("COMMIT")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode = DELETE")  # fold the WAL in before the rename
        finally:
            conn.close()
        tmp.replace(path)  # the ledger appears whole or not at all
        created = True
        ledger = _open(cfg, hex_key, now)
        log.info("initialised ledger for device %s", device_id)
    _keep_private(cfg)
    with ledger:
        added = False
        if dev_leases:
            start = tokens.DEV_LEASE_START
            added = ledger.add_lease("dev-1", start, start + tokens.DEV_LEASE_SIZE, "dev-unsigned", "dev")
        return InitResult(created, ledger.device_id, str(cfg.data_dir), added)


__all__ = ["InitResult", "WrongKey", "init_ledger", "open_ledger"]
