"""backup, restore, rekey and the rotation job, on real SQLCipher files."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from agent import rekey as rekey_mod
from agent import transactions
from agent.backup import SQLITE_MAGIC, backup_rotate, backup_to, check_file, current_key
from agent.errors import InvalidInput, LedgerCorrupt, WrongKey
from agent.ledger import Ledger, open_ledger, verify
from agent.ledger.db import connect
from tests.conftest import ELEC, Kiosk


def _sale(ledger: Ledger, amount: str = "100") -> dict[str, Any]:
    req = transactions.NewTxn(
        service=ELEC["service"], amount=amount, operator="op1", fields=dict(ELEC["fields"])
    )
    return transactions.create(ledger, req)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_is_ciphertext_verified_and_matches_head(kiosk: Kiosk, ledger: Ledger, tmp_path: Path) -> None:
    for i in range(3):
        _sale(ledger, str(100 + i))
    dest = tmp_path / "out" / "b.db"
    dest.parent.mkdir()
    res = backup_to(ledger, dest, current_key(kiosk.cfg))
    assert (res.count, res.head_seq) == (3, 3) and res.head_hash == ledger.head()[1]
    assert dest.read_bytes()[:16] != SQLITE_MAGIC
    assert sorted(p.name for p in dest.parent.iterdir()) == ["b.db"]  # no temp or WAL left
    with pytest.raises(sqlite3.DatabaseError):  # plain SQLite can't read it
        sqlite3.connect(dest).execute("SELECT count(*) FROM records").fetchone()
    assert check_file(dest, current_key(kiosk.cfg)).head_hash == res.head_hash
    with pytest.raises(WrongKey):
        check_file(dest, "ab" * 32)


def test_backup_refuses_the_ledger_itself_and_plain_sqlite(
    kiosk: Kiosk, ledger: Ledger, tmp_path: Path
) -> None:
    _sale(ledger)
    before = _digest(kiosk.cfg.ledger_path)
    with pytest.raises(InvalidInput):
        backup_to(ledger, kiosk.cfg.ledger_path, current_key(kiosk.cfg))
    assert _digest(kiosk.cfg.ledger_path) == before
    plain = tmp_path / "plain.db"
    sqlite3.connect(plain).execute("CREATE TABLE x (y)")
    with pytest.raises(InvalidInput, match="plain SQLite"):
        check_file(plain, current_key(kiosk.cfg))


def test_backup_rotate_keeps_newest(kiosk: Kiosk, ledger: Ledger) -> None:
    _sale(ledger)
    stranger = kiosk.data_dir / "backups" / "keep-me.db"
    clock = iter(range(1_700_000_000_000, 1_700_000_000_000 + 10 * 86_400_000, 86_400_000))
    made = [backup_rotate(kiosk.cfg, ledger, keep=3, now=lambda: next(clock)) for _ in range(5)]
    stranger.write_bytes(b"not ours")
    backup_rotate(kiosk.cfg, ledger, keep=3, now=lambda: next(clock))
    names = sorted(p.name for p in (kiosk.data_dir / "backups").iterdir())
    assert "keep-me.db" in names and len(names) == 4
    assert Path(made[-1].path).name in names and Path(made[1].path).name not in names


def test_cli_backup_restore_round_trip_warns_and_needs_yes(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    svc = ["--service", "ELEC_BILL", "--field", "discom=JVVNL", "--field", "k_number=210412345678"]
    kiosk.json("txn", "new", "--amount", "10", *svc)
    dest = tmp_path / "b.db"
    doc = kiosk.json("backup", "--to", str(dest))
    assert doc["head_seq"] == 1
    later = kiosk.json("txn", "new", "--amount", "20", *svc)

    refused = kiosk.run("restore", "--from", str(dest))
    assert refused.returncode == 2
    assert "FORK" in refused.stderr and "1 transaction(s) made after this backup" in refused.stderr
    assert kiosk.json("status")["ledger"]["head_seq"] == 2  # nothing changed

    done = kiosk.json("restore", "--from", str(dest), "--yes")
    assert done["head_seq"] == 1 and done["kept_as"]
    kept = Path(done["kept_as"])
    assert kept.name.startswith("ledger.db.before-restore-")
    assert kiosk.json("status")["ledger"]["head_seq"] == 1
    assert kiosk.json("verify")["ok"] is True
    # the replaced ledger is whole and still holds the later sale
    conn = connect(kept, kiosk.cfg.key_file.read_text().strip())
    assert conn.execute("SELECT token FROM records WHERE seq = 2").fetchone()[0] == later["token"]
    conn.close()


def test_restore_refuses_a_broken_backup_and_changes_nothing(
    kiosk: Kiosk, ledger: Ledger, tmp_path: Path
) -> None:
    _sale(ledger)
    dest = tmp_path / "b.db"
    backup_to(ledger, dest, current_key(kiosk.cfg))
    ledger.close()
    key = current_key(kiosk.cfg)
    conn = sqlcipher3.connect(str(dest), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE records SET amount_paise = amount_paise + 1 WHERE seq = 1")
    conn.close()
    before = _digest(kiosk.cfg.ledger_path)
    proc = kiosk.run("restore", "--from", str(dest), "--yes")
    assert proc.returncode == LedgerCorrupt.exit_code and "broken at seq 1" in proc.stderr
    assert _digest(kiosk.cfg.ledger_path) == before
    assert not list(kiosk.data_dir.glob("ledger.db.before-restore-*"))


def test_rekey_changes_key_and_old_backup_restores_with_key_file(
    kiosk: Kiosk, ledger: Ledger, tmp_path: Path
) -> None:
    _sale(ledger)
    old_key = current_key(kiosk.cfg)
    old_key_copy = tmp_path / "old.key"
    old_key_copy.write_text(old_key)
    backup_to(ledger, tmp_path / "b.db", old_key)
    _sale(ledger)
    ledger.close()

    res = kiosk.json("rekey")
    assert res["key_source"] == "file"
    new_key = current_key(kiosk.cfg)
    assert new_key != old_key and (kiosk.cfg.key_file.stat().st_mode & 0o777) == 0o600
    assert not rekey_mod.pending_path(kiosk.cfg).exists()
    with pytest.raises(WrongKey):
        connect(kiosk.cfg.ledger_path, old_key)
    assert kiosk.json("verify")["count"] == 2

    assert kiosk.run("restore", "--from", str(tmp_path / "b.db"), "--yes").returncode == 2  # old key
    done = kiosk.json("restore", "--from", str(tmp_path / "b.db"), "--key-file", str(old_key_copy), "--yes")
    assert done["head_seq"] == 1
    with open_ledger(kiosk.cfg) as led:  # re-encrypted to today's key
        assert verify(led).ok and led.count() == 1


def test_rekey_interrupted_after_commit_is_finished_on_open(kiosk: Kiosk, ledger: Ledger) -> None:
    _sale(ledger)
    head = ledger.head()
    ledger.close()
    cfg = kiosk.cfg
    # the first two steps of rekey, then a "crash" before the key file is replaced
    new = "cd" * 32
    rekey_mod._store_pending(cfg, new)
    conn = connect(cfg.ledger_path, current_key(cfg))
    conn.execute(f"PRAGMA rekey = \"x'{new}'\"")
    conn.close()
    with open_ledger(cfg) as led:
        assert led.head() == head
    assert current_key(cfg) == new and not rekey_mod.pending_path(cfg).exists()


def test_stale_pending_key_is_ignored(kiosk: Kiosk, ledger: Ledger) -> None:
    ledger.close()
    rekey_mod._store_pending(kiosk.cfg, "ef" * 32)  # a crash before the rekey committed
    key = current_key(kiosk.cfg)
    with open_ledger(kiosk.cfg) as led:
        assert led.count() == 0
    assert current_key(kiosk.cfg) == key
    assert kiosk.run("rekey").returncode == 0 and current_key(kiosk.cfg) not in (key, "ef" * 32)


def test_rekey_refuses_env_source(tmp_path: Path, kiosk: Kiosk) -> None:
    (tmp_path / "agent.toml").write_text('[agent]\ndata_dir = "data"\n[security]\nkey_source = "env"\n')
    env = dict(kiosk.env, KIOSK_AGENT_DB_KEY="ab" * 32)
    kiosk.env = env
    kiosk.run("init", check=True)
    before = _digest(kiosk.cfg.ledger_path)
    proc = kiosk.run("rekey")
    assert proc.returncode == 2 and "key_source is env" in proc.stderr
    assert "ab" * 32 not in proc.stderr + proc.stdout
    assert _digest(kiosk.cfg.ledger_path) == before


def test_restore_and_rekey_refuse_while_run_holds_the_data_dir(
    kiosk: Kiosk, ledger: Ledger, tmp_path: Path
) -> None:
    from agent.lockfile import DirLock

    _sale(ledger)
    backup_to(ledger, tmp_path / "b.db", current_key(kiosk.cfg))
    ledger.close()
    key_before = current_key(kiosk.cfg)
    lock = DirLock(kiosk.data_dir).acquire()  # as `kiosk-agent run` does
    try:
        for args in (("restore", "--from", str(tmp_path / "b.db"), "--yes"), ("rekey",)):
            proc = kiosk.run(*args)
            assert proc.returncode == 2 and "stop it first" in proc.stderr, proc.stderr
    finally:
        lock.release()
    assert current_key(kiosk.cfg) == key_before
    assert not list(kiosk.data_dir.glob("ledger.db.before-restore-*"))
