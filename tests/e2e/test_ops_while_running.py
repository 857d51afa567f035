"""backup, restore and doctor against a live `kiosk-agent run` (real processes)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.agent_proc import AgentProcess
from tests.e2e.conftest import WATER


def test_backup_while_serving_then_restore_after_stop(agent: AgentProcess, tmp_path: Path) -> None:
    kiosk = agent.kiosk
    agent.start()
    made = [agent.api("POST", "/api/transactions", json=WATER).json() for _ in range(4)]
    dest = tmp_path / "live.db"
    doc = kiosk.json("backup", "--to", str(dest))  # a consistent snapshot while run holds the ledger
    assert doc["head_seq"] == 4 and doc["count"] == 4
    assert agent.api("POST", "/api/transactions", json=WATER).status_code == 201

    doctor = kiosk.run("doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert doctor.returncode == 0 and checks["ledger"]["detail"].startswith("5 records verified")

    refused = kiosk.run("restore", "--from", str(dest), "--yes")
    assert refused.returncode == 2 and "stop it first" in refused.stderr
    assert agent.api("GET", "/api/status").json()["ledger"]["head_seq"] == 5

    assert agent.stop()[0] == 0
    done = kiosk.json("restore", "--from", str(dest), "--yes")
    assert done["head_seq"] == 4
    agent.start()
    status = agent.api("GET", "/api/status").json()
    assert status["ledger"]["head_seq"] == 4 and status["ledger"]["head_hash"] == doc["head_hash"]
    assert agent.api("GET", f"/api/transactions/{made[3]['token']}").json()["seq"] == 4
