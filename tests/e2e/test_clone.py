"""A cloned kiosk (its data dir copied) makes a transaction on both copies and
both sync: the server flags the fork and keeps both records; the clone's
record is shown to its operator as rejected, never dropped."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path

from agent import ids
from tests.conftest import Kiosk, write_config
from tests.e2e.servers import ServerProcess

WATER = ["--service", "WATER_BILL", "--field", "consumer_number=3345678901"]


def test_clone_is_flagged_and_both_records_kept(kiosk: Kiosk, tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "srv") as server:
        kiosk.run("init", check=True)
        enrolled = kiosk.json(
            "enroll", "--server", server.url, "--code", server.new_kiosk()["enrollment_code"]
        )
        for amount in ("10", "20"):
            kiosk.run("txn", "new", *WATER, "--amount", amount, check=True)
        assert kiosk.json("sync", "--once")["accepted"] == 2

        clone_root = tmp_path / "clone"
        shutil.copytree(kiosk.data_dir, clone_root / "data")
        clone = Kiosk(clone_root, write_config(clone_root), kiosk.env)
        assert clone.json("status")["device_id"] == enrolled["device_id"]

        original = kiosk.json("txn", "new", *WATER, "--amount", "30")
        copy = clone.json("txn", "new", *WATER, "--amount", "31")
        assert original["seq"] == copy["seq"] == 3 and original["hash"] != copy["hash"]

        assert kiosk.json("sync", "--once")["accepted"] == 1
        proc = clone.run("sync", "--once", "--json")
        assert proc.returncode == 1 and "rejected" in proc.stderr
        assert json.loads(proc.stdout)["rejected"] == 1
        shown = clone.json("txn", "show", copy["token"])
        assert shown["sync_state"] == "rejected" and shown["sync_error"] == "fork"
        assert clone.json("status")["outbox"]["rejected"] == 1
        assert kiosk.json("status")["outbox"] == {
            "pending": 0,
            "sent": 0,
            "acked": 3,
            "rejected": 0,
            "waiting": 0,
        }

        today = datetime.fromtimestamp(ids.now_ms() / 1000, ids.IST).strftime("%Y-%m-%d")
        recon = server.reconcile(today)
        [row] = recon["kiosks"]
        assert row["forks"] == 1 and row["flagged"] is True and row["count"] == 3

    db = sqlite3.connect(tmp_path / "srv" / "server.db")
    try:
        kept = db.execute("SELECT seq, hash FROM records WHERE seq = 3").fetchall()
        quarantined = db.execute("SELECT seq, hash, reason FROM quarantine").fetchall()
    finally:
        db.close()
    assert kept == [(3, original["hash"])]
    assert quarantined == [(3, copy["hash"], "fork")]  # nothing lost: the clone's record is kept too
