"""SIGKILL `kiosk-agent txn new` at random moments: whatever was printed is
in the ledger, no seq gap, no token twice, verify passes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

from tests.conftest import Kiosk

KILLS = int(os.environ.get("KIOSK_TEST_KILLS", "100"))


def _spawn(kiosk: Kiosk, i: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        kiosk.argv(
            "txn",
            "new",
            "--service",
            "WATER_BILL",
            "--amount",
            f"{100 + i}",
            "--mobile",
            "9876543210",
            "--field",
            "consumer_number=3345678901",
            "--json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=kiosk.env,
    )


def test_sigkill_txn_new_loses_nothing(kiosk: Kiosk) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    rng = random.Random(int(os.environ.get("KIOSK_TEST_SEED", "7")))
    t0 = time.monotonic()
    probe = _spawn(kiosk, 0)
    out, _ = probe.communicate(timeout=60)
    runtime = time.monotonic() - t0
    printed = [json.loads(out)]
    kills = 0
    i = 1
    while kills < KILLS:
        pair = [_spawn(kiosk, i), _spawn(kiosk, i + 1)]  # two at once: they contend for the write lock
        i += 2
        time.sleep(rng.uniform(0.0, runtime * 1.3))  # the kill moment itself is what is randomised
        for proc in pair:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        for proc in pair:
            out, err = proc.communicate(timeout=60)
            if proc.returncode == 0:
                printed.append(json.loads(out))
            else:
                assert proc.returncode == -signal.SIGKILL, err
                assert out == "" or out.endswith("\n") is False or json.loads(out)
    listed = kiosk.json("txn", "list")
    by_id = {d["txn_id"]: d for d in listed}
    for doc in printed:
        assert doc["txn_id"] in by_id, f"printed but lost: seq {doc['seq']}"
        assert by_id[doc["txn_id"]]["token"] == doc["token"] and by_id[doc["txn_id"]]["seq"] == doc["seq"]
    assert [d["seq"] for d in listed] == list(range(1, len(listed) + 1))
    assert len({d["token"] for d in listed}) == len(listed)
    assert kiosk.json("verify")["ok"] is True
    assert kiosk.json("status")["outbox"]["pending"] == len(listed)
    # The kills landed everywhere: some before the commit (nothing written), some after it and
    # before the JSON was printed (committed, never shown: still whole in the ledger).
    print(f"spawned {i}, committed {len(listed)}, printed {len(printed)}")
    assert len(listed) < i
    if KILLS >= 100:
        assert len(printed) < len(listed)
