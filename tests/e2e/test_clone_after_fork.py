"""After a fork (test_clone.py makes one): the first copy of a cloned data dir
goes on selling and every one of its records, before and after the fork, is
accepted and on the server; the clone's record stays in its ledger as
rejected (reason ``fork``, with its ``reasons`` count in ``sync --json``),
the clone's ledger still verifies, a resend gets the same answer, and the
server keeps the clone's record in quarantine with the device flagged."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from server_stub.db import devices
from tests.conftest import Kiosk
from tests.e2e.servers import ServerProcess
from tests.e2e.syncworld import World, make_kiosk

WATER = ["--service", "WATER_BILL", "--field", "consumer_number=3345678901", "--mobile", "9876543210"]


def _settled(acked: int, rejected: int) -> dict[str, int]:
    return {"pending": 0, "sent": 0, "acked": acked, "rejected": rejected, "waiting": 0}


def test_after_a_fork_the_first_copy_goes_on_and_the_clone_keeps_its_record(
    kiosk: Kiosk, tmp_path: Path
) -> None:
    with ServerProcess(tmp_path / "server") as srv:
        w = World(srv)
        kiosk.run("init", check=True)
        enrolled = kiosk.json("enroll", "--server", srv.url, "--code", srv.new_kiosk()["enrollment_code"])
        for i in range(2):
            kiosk.run("txn", "new", *WATER, "--amount", str(100 + i), check=True)
        assert kiosk.json("sync", "--once")["accepted"] == 2

        clone = make_kiosk(tmp_path / "clone")
        shutil.copytree(kiosk.data_dir, clone.data_dir)  # the agent is not running: a plain copy
        assert clone.json("status")["device_id"] == enrolled["device_id"]

        first = kiosk.json("txn", "new", *WATER, "--amount", "300")
        cloned = clone.json("txn", "new", *WATER, "--amount", "700")
        assert first["seq"] == cloned["seq"] == 3 and first["hash"] != cloned["hash"]

        res = kiosk.json("sync", "--once")
        assert (res["accepted"], res["rejected"], res["pending"]) == (1, 0, 0)

        proc = clone.run("sync", "--once", "--json")
        assert proc.returncode == 1, proc.stderr  # rejected records need the operator
        res = json.loads(proc.stdout)
        assert (res["accepted"], res["rejected"], res["pending"]) == (0, 1, 0)
        assert res["reasons"] == {"fork": 1}
        assert "rejected by the server" in proc.stderr

        # The clone keeps its record, shown as rejected: never dropped, never silently acked.
        listed = {d["seq"]: d for d in clone.json("txn", "list")}
        assert listed[3]["txn_id"] == cloned["txn_id"] and listed[3]["sync_state"] == "rejected"
        assert listed[3]["sync_error"] == "fork"
        assert [listed[s]["sync_state"] for s in (1, 2)] == ["acked", "acked"]
        assert clone.json("status")["outbox"] == _settled(2, 1)
        assert clone.json("verify")["ok"] is True

        # The first copy goes on: every record of it is accepted, before and after the fork.
        kiosk.run("txn", "new", *WATER, "--amount", "400", check=True)
        assert kiosk.json("sync", "--once")["accepted"] == 1
        assert kiosk.json("status")["outbox"] == _settled(4, 0)
        mine = [(d["seq"], d["hash"]) for d in kiosk.json("txn", "list")]
        assert [(s, h) for s, h, _t, _f in w.server_records(enrolled["device_id"])] == mine

        # A second clone sync gets the same answer; the record stays rejected.
        again = clone.run("sync", "--once", "--json")
        assert again.returncode == 1 and clone.json("status")["outbox"]["rejected"] == 1

        _server_keeps_both(w, srv, enrolled, cloned)
        w.close()


def _server_keeps_both(w: World, srv: ServerProcess, enrolled: dict, cloned: dict) -> None:
    # The server keeps both: the clone's record in quarantine as a fork, the device flagged.
    assert w.quarantined(enrolled["device_id"]) == [(3, cloned["hash"], "fork")]
    with w.ro.connect() as conn:
        flagged = conn.execute(
            sa.select(devices.c.flagged_at, devices.c.flag_reason).where(
                devices.c.device_id == enrolled["device_id"]
            )
        ).one()
    assert flagged.flagged_at is not None and "fork" in flagged.flag_reason
    today = dt.datetime.now(ZoneInfo("Asia/Kolkata")).date().isoformat()
    recon = srv.reconcile(today)
    row = next(k for k in recon["kiosks"] if k["kiosk_code"] == enrolled["kiosk_code"])
    assert row["forks"] == 1 and row["flagged"] is True and row["count"] == 4
