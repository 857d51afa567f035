"""The click commands: fingerprint info/capture against the RD simulator; a simulator as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner

from hardware.cli import cli
from hardware.sim.printer import PrinterSim
from hardware.sim.rdservice import RDServiceSim


@pytest.fixture
def rd() -> Iterator[RDServiceSim]:
    with RDServiceSim() as s:
        yield s


def test_fingerprint_info_json(rd: RDServiceSim) -> None:
    result = CliRunner().invoke(cli, ["fingerprint", "info", "--json", "--ports", f"{rd.port}"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {k: data[k] for k in ("port", "status", "dpId", "rdsId", "mi")} == {
        "port": rd.port,
        "status": "READY",
        "dpId": rd.dp_id,
        "rdsId": rd.rds_id,
        "mi": rd.mi,
    }


def test_fingerprint_capture_json_never_prints_pid(rd: RDServiceSim) -> None:
    result = CliRunner().invoke(cli, ["fingerprint", "capture", "--json", "--ports", f"{rd.port}"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["errCode"] == 0 and data["qScore"] == str(rd.q_score) and "errInfo" in data
    assert "Data" not in result.output and "Skey" not in result.output and "Hmac" not in result.output


def test_fingerprint_capture_busy_json(rd: RDServiceSim) -> None:
    rd.fail_mode = "busy"
    result = CliRunner().invoke(cli, ["fingerprint", "capture", "--json", "--ports", f"{rd.port}"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["errCode"] == 710 and data["transient"] is True


def test_fingerprint_info_r30x() -> None:
    from hardware.sim.r30x import R30xSim

    with R30xSim() as s:
        s.templates[4] = "alice"
        result = CliRunner().invoke(cli, ["fingerprint", "info", "--kind", "r30x", "--url", s.url, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["templates"] == 1


def test_printer_status_cli() -> None:
    with PrinterSim() as s:
        result = CliRunner().invoke(cli, ["printer", "status", "--url", s.url, "--json"])
    assert json.loads(result.output)["status"] == "ok"


def test_sim_rdservice_runs_as_a_process_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardware.cli", "sim", "rdservice", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("rdservice simulator listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1].strip()
        reply = requests.request("RDSERVICE", url, timeout=5)
        assert 'status="READY"' in reply.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
