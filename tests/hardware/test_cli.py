"""The click commands: fingerprint info/capture against the RD simulator; a simulator as a real process."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from hardware.cli import cli
from hardware.printer import PrinterStatus, SerialPrinter
from hardware.sim.modes import PRINTER_FAIL_MODES, R30X_FAIL_MODES, RDSERVICE_FAIL_MODES
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


# --- the fail modes: one list, shown alike by the simulators, --help and the README -----------------

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _readme_modes(command: str) -> list[str]:
    [row] = [line for line in README.splitlines() if line.startswith(f"| `kiosk-agent sim {command}")]
    found = re.search(r"Fail modes: ((?:`[a-z_]+`(?:, )?)+)\.", row)
    assert found, f"the README's sim {command} row lists no fail modes"
    return re.findall(r"`([a-z_]+)`", found.group(1))


def _help_modes(command: str) -> list[str]:
    result = CliRunner().invoke(cli, ["sim", command, "--help"], terminal_width=400)
    assert result.exit_code == 0, result.output
    found = re.search(r"--fail \[([a-z_|]+)\]", result.output)
    assert found, result.output
    for name, what in MODES[command].items():  # each mode is explained, too
        assert f"{name}: {what}" in " ".join(result.output.split())
    return found.group(1).split("|")


MODES = {"printer": PRINTER_FAIL_MODES, "fingerprint": R30X_FAIL_MODES, "rdservice": RDSERVICE_FAIL_MODES}


@pytest.mark.parametrize("command", sorted(MODES))
def test_fail_modes_agree_in_help_and_readme(command: str) -> None:
    assert _help_modes(command) == _readme_modes(command) == list(MODES[command])


def test_printer_modes_include_unplug_and_busy() -> None:
    assert {"unplug", "busy"} <= set(PRINTER_FAIL_MODES)


def test_unknown_fail_mode_is_refused() -> None:
    result = CliRunner().invoke(cli, ["sim", "printer", "--fail", "on_fire"])
    assert result.exit_code == 2 and "on_fire" in result.output


def test_sim_printer_process_unplugs_mid_job_and_comes_back() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hardware.cli", "sim", "printer", "--port", "0", "--fail", "unplug"]
        + ["--unplug-after", "40", "--replug-after", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("printer simulator listening on socket://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[1].strip()
        host, port = url.removeprefix("socket://").split(":")
        job = b"\x1b@" + b"line of the receipt\n" * 10 + b"\x1dV\x00"
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(job)
            try:
                got = conn.recv(1)  # a time-out here (no hang-up) fails the test
            except ConnectionResetError:
                got = b""
            assert got == b"", "the printer should hang up after 40 bytes of the job"
        assert proc.stdout.readline().startswith(f"printer simulator plugged back in on {url}")
        printer = SerialPrinter(url, status_timeout=2)  # the cable is back: a real printer again
        assert printer.print_bytes(job) is PrinterStatus.OK
        printer.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
