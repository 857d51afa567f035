"""The high-water mark (issue 12 item 3): a ledger that opens behind what it committed, or behind
the server's head for this device, issues no token; a restore starts the mark again; the mark
never raises a false alarm (a crash between a commit and its mark leaves the ledger ahead)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent import transactions
from agent.errors import LedgerBehind, LedgerDamaged, WrongKey
from agent.ledger import hwm, open_ledger
from tests.conftest import ELEC, Kiosk, write_config

FIELDS = [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]
SALE = ["txn", "new", "--service", "ELEC_BILL", "--amount", "100", *FIELDS]


def _sell(k: Kiosk, n: int) -> list[str]:
    return [k.json(*SALE)["token"] for _ in range(n)]


def _refused(k: Kiosk, code: str) -> str:
    proc = k.run(*SALE)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert code in [a["code"] for a in k.json("status")["alerts"]]
    return proc.stderr


@pytest.fixture
def sold(kiosk: Kiosk) -> Kiosk:
    kiosk.run("init", "--dev-leases", check=True)
    _sell(kiosk, 3)
    return kiosk


def test_an_older_copy_put_back_issues_no_token(sold: Kiosk, tmp_path: Path) -> None:
    db = sold.data_dir / "ledger.db"
    shutil.copy(db, tmp_path / "old.db")
    issued = set(_sell(sold, 2))
    shutil.copy(tmp_path / "old.db", db)  # by hand, not `restore`: the mark remembers seq 5
    err = _refused(sold, "ledger_behind")
    assert "3 records but 5 were committed" in err and "kiosk-agent restore" in err
    assert sold.run("verify").returncode == 3
    with open_ledger(sold.cfg) as led, pytest.raises(LedgerBehind):
        led.append({"kind": "sale"})  # type: ignore[typeddict-item]
    assert not issued & set(t["token"] for t in sold.json("txn", "list"))


def test_restore_starts_the_mark_again(sold: Kiosk, tmp_path: Path) -> None:
    backup = tmp_path / "b.db"
    sold.run("backup", "--to", str(backup), check=True)
    _sell(sold, 2)
    sold.run("restore", "--from", str(backup), "--yes", check=True)
    assert "ledger_behind" not in [a["code"] for a in sold.json("status")["alerts"]]
    sold.run(*SALE, check=True)


def test_the_server_ahead_stops_sales_and_is_remembered(sold: Kiosk) -> None:
    with open_ledger(sold.cfg) as led:
        led.note_server_head(2)  # behind or level: nothing to say
        assert led.refusal is None
        led.note_server_head(9)
        assert led.refusal_code == "server_ahead"
    err = _refused(sold, "server_ahead")  # after a restart too
    assert "server holds 9 records" in err


def test_a_crash_between_commit_and_mark_is_no_alarm(sold: Kiosk, tmp_path: Path) -> None:
    mark = hwm.hwm_path(sold.data_dir / "ledger.db")
    saved = mark.read_bytes()
    _sell(sold, 1)
    mark.write_bytes(saved)  # the mark one commit behind, as a crash right after COMMIT leaves it
    _sell(sold, 1)
    assert sold.run("verify").returncode == 0


def test_one_torn_slot_keeps_the_other(sold: Kiosk) -> None:
    mark = hwm.hwm_path(sold.data_dir / "ledger.db")
    key = hwm.mac_key((sold.data_dir / "db.key").read_text().strip())
    before = hwm.read(mark, key)
    assert before is not None and before.seq == 3
    data = bytearray(mark.read_bytes())
    newest = before.counter % 2
    for i in range(hwm.SLOT * newest + 5, hwm.SLOT * newest + 40):
        data[i] ^= 0x55
    mark.write_bytes(bytes(data))
    older = hwm.read(mark, key)
    assert older is not None and older.counter == before.counter - 1
    sold.run(*SALE, check=True)  # the older slot is one commit behind: no alarm, a new token


def test_page_one_damaged_is_not_a_wrong_key(sold: Kiosk) -> None:
    db = sold.data_dir / "ledger.db"
    data = bytearray(db.read_bytes())
    data[100] ^= 0xFF
    db.write_bytes(bytes(data))
    with pytest.raises(LedgerDamaged, match="first page"):
        open_ledger(sold.cfg)
    (sold.data_dir / "db.key").write_text("ab" * 32 + "\n")
    with pytest.raises(WrongKey):
        open_ledger(sold.cfg)


def test_only_a_short_window_lives_in_the_wal(kiosk: Kiosk) -> None:
    """[ledger] wal_checkpoint_pages bounds the WAL: a damaged frame can only drop that window."""
    write_config(kiosk.root, "[ledger]\nwal_checkpoint_pages = 32\n")
    kiosk.run("init", "--dev-leases", check=True)
    with open_ledger(kiosk.cfg) as led:
        for i in range(60):
            req = transactions.NewTxn(
                service="ELEC_BILL", amount=str(i + 1), operator="o", fields=ELEC["fields"]
            )
            transactions.create(led, req)
        wal = kiosk.data_dir / "ledger.db-wal"
        assert wal.stat().st_size <= (32 + 16) * (4096 + 24) + 32


def test_two_processes_keep_one_mark(sold: Kiosk) -> None:
    """`txn new` beside `run` (two Ledgers on one file): neither's write hides the other's commits,
    and damage found by one stops the other's sales at its next append."""
    with open_ledger(sold.cfg) as a, open_ledger(sold.cfg) as b:
        for _ in range(3):
            _sell_on(a)
            _sell_on(b)
        assert a.hwm is not None and b.hwm is not None
        assert max(a.hwm.mark.seq, b.hwm.mark.seq) == 9
        a.mark_damaged("found by verify")
        _sell_on(b)  # committed (b had not seen it) ...
        with pytest.raises(LedgerDamaged):
            _sell_on(b)  # ... and the next one is refused
    assert _cli_refusal(sold) == "ledger_damaged"


def _sell_on(led: object) -> None:
    req = transactions.NewTxn(service="ELEC_BILL", amount="7", operator="o", fields=dict(ELEC["fields"]))
    transactions.create(led, req)  # type: ignore[arg-type]


def _cli_refusal(k: Kiosk) -> str:
    return next(a["code"] for a in k.json("status")["alerts"] if a["severity"] == "error")
