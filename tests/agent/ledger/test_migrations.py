"""Schema versions: a ledger a newer kiosk-agent wrote (an upgrade, then the old version put back)
is read, verified and backed up by the older agent, but it makes no record there: its code could
write rows that the newer schema does not expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import LedgerTooNew
from agent.ledger import migrations, open_ledger
from tests.conftest import ELEC, Kiosk

FIELDS = [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]
SALE = ["txn", "new", "--service", "ELEC_BILL", "--amount", "100", *FIELDS]


def _as_if_newer(kiosk: Kiosk) -> int:
    newer = len(migrations.MIGRATIONS) + 1
    with open_ledger(kiosk.cfg) as led:
        led.conn.execute(f"PRAGMA user_version = {newer}")
    return newer


def test_a_ledger_from_a_newer_agent_makes_no_sale_but_stays_readable(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    kiosk.run(*SALE, check=True)
    newer = _as_if_newer(kiosk)

    proc = kiosk.run(*SALE)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    assert f"ledger schema {newer}" in proc.stderr and "install that kiosk-agent version" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "ledger_newer" in [a["code"] for a in kiosk.json("status")["alerts"]]
    assert len(kiosk.json("txn", "list")) == 1  # readable, and nothing was added
    kiosk.run("backup", "--to", str(tmp_path / "b.db"), check=True)
    with open_ledger(kiosk.cfg) as led:
        assert migrations.schema_version(led.conn) == newer  # never "migrated" down
        with pytest.raises(LedgerTooNew):
            led.append({"kind": "sale"})  # type: ignore[typeddict-item]


def test_the_current_schema_opens_for_sales(kiosk: Kiosk) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    with open_ledger(kiosk.cfg) as led:
        assert migrations.schema_version(led.conn) == len(migrations.MIGRATIONS)
        assert led.refusal is None
    kiosk.run(*SALE, check=True)
