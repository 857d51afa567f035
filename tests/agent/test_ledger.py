from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from agent import sales, transactions
from agent.errors import InvalidInput, WrongKey
from agent.ledger import Ledger, init_ledger, migrations, open_ledger, tokens, verify
from agent.ledger.db import connect
from sync.wire import canonical, verhoeff
from tests.conftest import ELEC, Kiosk


def _sale(ledger: Ledger, amount: str = "100", **kw: Any) -> dict[str, Any]:
    req = transactions.NewTxn(
        service=ELEC["service"], amount=amount, operator="op1", fields=dict(ELEC["fields"]), **kw
    )
    return transactions.create(ledger, req)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_chain_links_and_signs_every_record(ledger: Ledger) -> None:
    views = [_sale(ledger, str(i)) for i in range(1, 6)]
    assert [v["seq"] for v in views] == [1, 2, 3, 4, 5]
    rows = ledger.rows()
    assert rows[0]["prev_hash"] == canonical.genesis_hash(ledger.device_id)
    for a, b in zip(rows, rows[1:], strict=False):
        assert b["prev_hash"] == a["hash"]
    assert all(verhoeff.is_valid(v["token"]) and len(v["token"]) == 11 for v in views)
    assert len({v["token"] for v in views}) == 5
    assert verify(ledger).ok and verify(ledger).head_seq == 5
    assert ledger.outbox_counts()["pending"] == 5


def test_file_is_ciphertext_and_opens_with_raw_key_pragma(kiosk: Kiosk, ledger: Ledger) -> None:
    _sale(ledger)
    head = kiosk.cfg.ledger_path.read_bytes()[:16]
    assert head != b"SQLite format 3\x00"
    key = kiosk.cfg.key_file.read_text().strip()
    assert (kiosk.cfg.key_file.stat().st_mode & 0o777) == 0o600
    conn = sqlcipher3.connect(str(kiosk.cfg.ledger_path))
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 1
    conn.close()


def test_init_twice_changes_nothing(kiosk: Kiosk) -> None:
    first = kiosk.json("init")
    assert first["created"] is True
    files = {p.name: _digest(p) for p in kiosk.data_dir.iterdir() if p.is_file()}
    again = kiosk.run("init")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert {p.name: _digest(p) for p in kiosk.data_dir.iterdir() if p.is_file()} == files
    assert kiosk.json("status")["device_id"] == first["device_id"]


def test_wrong_key_is_clear_and_leaves_file_identical(kiosk: Kiosk, ledger: Ledger) -> None:
    _sale(ledger)
    ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    ledger.close()
    path = kiosk.cfg.ledger_path
    before = {p.name: _digest(p) for p in path.parent.iterdir() if p.name.startswith("ledger.db")}
    kiosk.cfg.key_file.write_text("ab" * 32 + "\n")
    with pytest.raises(WrongKey):
        open_ledger(kiosk.cfg)
    proc = kiosk.run("txn", "list")
    assert proc.returncode == 2 and "does not open with this key" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert kiosk.run("init").returncode == 2  # init never recreates a ledger it can't open
    after = {p.name: _digest(p) for p in path.parent.iterdir() if p.name.startswith("ledger.db")}
    assert after == before


def test_env_key_source(kiosk: Kiosk) -> None:
    kiosk.config_path.write_text('[agent]\ndata_dir = "data"\n[security]\nkey_source = "env"\n')
    assert kiosk.run("init").returncode == 2  # no key in the environment
    kiosk.env["KIOSK_AGENT_DB_KEY"] = "cd" * 32
    kiosk.run("init", check=True)
    assert not kiosk.cfg.key_file.exists()
    conn = sqlcipher3.connect(str(kiosk.cfg.ledger_path))
    conn.execute("PRAGMA key = \"x'" + "cd" * 32 + "'\"")
    assert conn.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()
    conn.close()
    kiosk.env["KIOSK_AGENT_DB_KEY"] = "not-hex"
    proc = kiosk.run("status")
    assert proc.returncode == 2 and "64 hex" in proc.stderr


def test_keyring_key_source(kiosk: Kiosk) -> None:
    import keyring
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):  # a recording fake of the OS store
        priority = 1  # type: ignore[assignment]

        def __init__(self) -> None:
            self.store: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.store.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.store[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            self.store.pop((service, username), None)

    fake = MemoryKeyring()
    old = keyring.get_keyring()
    keyring.set_keyring(fake)
    try:
        kiosk.config_path.write_text('[agent]\ndata_dir = "data"\n[security]\nkey_source = "keyring"\n')
        init_ledger(kiosk.cfg)
        assert list(fake.store) == [("kiosk-agent", "ledger-db-key")]
        assert not kiosk.cfg.key_file.exists()
        with open_ledger(kiosk.cfg) as led:
            assert led.count() == 0
    finally:
        keyring.set_keyring(old)


def _tamper(path: Path, key: str, *sql: str) -> None:
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key}'\"")
    conn.execute("DROP TRIGGER records_no_update")
    conn.execute("DROP TRIGGER records_no_delete")
    conn.execute("PRAGMA foreign_keys = OFF")
    for stmt in sql:
        conn.execute(stmt)
    conn.close()


@pytest.mark.parametrize(
    ("sql", "bad_seq"),
    [
        (["UPDATE records SET amount_paise = 1 WHERE seq = 3"], 3),
        (["UPDATE records SET token = '99000000991' WHERE seq = 2"], 2),
        (["DELETE FROM records WHERE seq = 3"], 3),
        # swap rows 2 and 3 (everything but seq)
        (
            [
                "CREATE TEMP TABLE t AS SELECT * FROM records WHERE seq IN (2, 3)",
                "DELETE FROM records WHERE seq IN (2, 3)",
                "INSERT INTO records SELECT CASE seq WHEN 2 THEN 3 ELSE 2 END, txn_id, kind, created_at, "
                "operator, service, amount_paise, fee_paise, token, fields, mobile, aadhaar_last4, "
                "aadhaar_sealed, voids_seq, reason, catalog_version, prev_hash, hash, sig FROM t",
            ],
            2,
        ),
        (['UPDATE records SET fields = \'{"discom":"AVVNL","k_number":"210412345678"}\' WHERE seq = 4'], 4),
        (["UPDATE records SET sig = (SELECT sig FROM records WHERE seq = 1) WHERE seq = 5"], 5),
    ],
    ids=["amount", "token", "delete-middle", "swap", "field", "signature"],
)
def test_verify_catches_tampering(kiosk: Kiosk, ledger: Ledger, sql: list[str], bad_seq: int) -> None:
    for i in range(5):
        _sale(ledger, str(100 + i))
    ledger.close()
    assert kiosk.run("verify").returncode == 0
    _tamper(kiosk.cfg.ledger_path, kiosk.cfg.key_file.read_text().strip(), *sql)
    proc = kiosk.run("verify")
    assert proc.returncode == 3
    assert f"seq {bad_seq}" in proc.stderr
    with open_ledger(kiosk.cfg) as led:
        assert verify(led).bad_seq == bad_seq


def test_records_refuse_update_and_delete(ledger: Ledger) -> None:
    _sale(ledger)
    for stmt in ("UPDATE records SET amount_paise = 5", "DELETE FROM records"):
        with pytest.raises(sqlcipher3.DatabaseError, match="append-only"):
            ledger.conn.execute(stmt)
    assert ledger.rows()[0]["amount_paise"] == 10000


def test_void_is_a_new_record(ledger: Ledger) -> None:
    sale = _sale(ledger, "200")
    void = sales.void(ledger, sale["token"], "wrong bill", "op2")
    assert void["kind"] == "void" and void["voids_seq"] == sale["seq"] and void["seq"] == 2
    assert "token" not in void
    shown = transactions.view(ledger.find(sale["token"]))
    assert shown["voided_by"] == 2 and shown["amount_paise"] == 20000
    with pytest.raises(InvalidInput, match="already voided"):
        sales.void(ledger, sale["token"], "again", "op2")
    with pytest.raises(InvalidInput, match="reason"):
        sales.void(ledger, sale["token"], "  ", "op2")
    assert verify(ledger).ok and ledger.count() == 2


def test_provisional_tokens_when_leases_run_out(kiosk: Kiosk) -> None:
    init_ledger(kiosk.cfg)
    with open_ledger(kiosk.cfg) as led:
        led.add_lease("L1", 1000, 1002, "sig")
        toks = [_sale(led)["token"] for _ in range(4)]
        assert toks[:2] == [verhoeff.token_for_serial(1000), verhoeff.token_for_serial(1001)]
        prefix = "PD" + led.device_id.replace("-", "")[:8].upper()
        assert toks[2:] == [f"{prefix}-3", f"{prefix}-4"]
        led.set_meta({"kiosk_code": "K1234"})
        assert _sale(led)["token"] == "PK1234-5"
        assert led.tokens_remaining() == 0 and verify(led).ok


def test_the_lease_cursor_moves_with_the_records_not_a_lease_write(kiosk: Kiosk) -> None:
    init_ledger(kiosk.cfg)
    with open_ledger(kiosk.cfg) as led:
        led.add_lease("L1", 1000, 1003, "sig")
        led.add_lease("L2", 5000, 5002, "sig")
        floors = "SELECT lease_id, next_serial FROM leases ORDER BY lease_id"
        toks = [_sale(led)["token"] for _ in range(2)]
        assert toks == [verhoeff.token_for_serial(s) for s in (1000, 1001)]
        assert led.conn.execute(floors).fetchall() == [("L1", 1000), ("L2", 5000)]  # no lease write
        assert led.tokens_remaining() == 3 and tokens.highest_issued(led.conn) == 1001
        led.conn.execute("UPDATE leases SET next_serial = 1002 WHERE lease_id = 'L1'")  # an old floor
        toks = [_sale(led)["token"] for _ in range(4)]  # 1002, then L2 (L1's floor moves to its end)
        prefix = "PD" + led.device_id.replace("-", "")[:8].upper()
        serials = (1002, 5000, 5001)
        assert toks == [*(verhoeff.token_for_serial(s) for s in serials), f"{prefix}-6"]
        assert led.conn.execute(floors).fetchall() == [("L1", 1003), ("L2", 5002)]
        assert led.tokens_remaining() == 0 and tokens.highest_issued(led.conn) == 5001
        assert verify(led).ok


def test_migrates_from_every_earlier_version(tmp_path: Path) -> None:
    for start in range(len(migrations.MIGRATIONS)):
        path = tmp_path / f"m{start}.db"
        conn = connect(path, "11" * 32, create=True)
        for step in migrations.MIGRATIONS[:start]:
            import sqlite_utils

            step(sqlite_utils.Database(conn))
        conn.execute(f"PRAGMA user_version = {start}")
        assert migrations.migrate(conn) == len(migrations.MIGRATIONS)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"meta", "records", "outbox", "print_jobs", "leases"} <= tables
        conn.close()
