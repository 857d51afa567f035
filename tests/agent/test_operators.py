"""Operator login with the R30x simulator on a real pty, and the RD service
simulator over HTTP, driven through the kiosk-agent CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.harness import free_port
from hardware.sim.r30x import R30xSim
from hardware.sim.rdservice import RDServiceSim
from tests.conftest import Kiosk


@pytest.fixture
def sensor() -> Iterator[R30xSim]:
    with R30xSim(transport="pty") as sim:
        yield sim


def test_enroll_login_and_transactions_carry_the_operator(kiosk: Kiosk, sensor: R30xSim) -> None:
    kiosk.config_path.write_text(
        f'[agent]\ndata_dir = "data"\n[fingerprint]\nkind = "r30x"\nurl = "{sensor.url}"\n'
    )
    kiosk.run("init", "--dev-leases", check=True)
    sensor.queue_fingers(["asha-thumb", None, "asha-thumb"])
    assert kiosk.json("operator", "enroll", "asha") == {"operator": "asha", "slot": 1}
    sensor.queue_fingers(["ravi-thumb", None, "ravi-thumb"])
    assert kiosk.json("operator", "enroll", "ravi")["slot"] == 2
    assert len(sensor.templates) == 2
    dup = kiosk.run("operator", "enroll", "asha")
    assert dup.returncode == 2 and "already enrolled" in dup.stderr
    sensor.queue_fingers(["ravi-thumb"])
    assert kiosk.json("operator", "login")["operator"] == "ravi"
    doc = kiosk.json(
        "txn", "new", "--service", "WATER_BILL", "--amount", "5", "--field", "consumer_number=123456"
    )
    assert doc["operator"] == "ravi"
    sensor.queue_fingers(["stranger"])
    no = kiosk.run("operator", "login")
    assert no.returncode == 2 and "not recognised" in no.stderr


def test_operator_needs_a_sensor(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    proc = kiosk.run("operator", "login")
    assert proc.returncode == 2 and 'kind = "r30x"' in proc.stderr


def test_fingerprint_info_and_capture_from_config(kiosk: Kiosk) -> None:
    port = free_port()
    kiosk.config_path.write_text(
        f'[agent]\ndata_dir = "data"\n[fingerprint]\nkind = "rdservice"\nrdservice_ports = [{port}]\n'
    )
    with RDServiceSim(port=port):
        info = kiosk.json("fingerprint", "info")
        assert info["port"] == port and info["status"] == "READY"
        assert {"dpId", "rdsId", "mi"} <= set(info)
        cap = kiosk.json("fingerprint", "capture")
        assert {"errCode", "errInfo", "qScore"} <= set(cap) and "pid" not in str(cap).lower()
