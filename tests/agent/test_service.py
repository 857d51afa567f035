"""service install/remove/start/stop (--dry-run and a recording runner), and sd_notify."""

from __future__ import annotations

import configparser
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent import sdnotify, service
from agent.errors import InvalidInput
from tests.conftest import Kiosk


def _parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def test_dry_run_install_prints_a_hardened_notify_unit(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    proc = kiosk.run("service", "install", "--user", "kiosk1", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    unit = out.split("# write /etc/systemd/system/kiosk-agent.service:\n", 1)[1].split("# end of unit")[0]
    svc = _parse(unit)["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "on-failure" and svc["WatchdogSec"] == "30"
    assert svc["User"] == "kiosk1"
    exe = svc["ExecStart"].split()[0]
    assert Path(exe).is_absolute() and Path(exe).name == "kiosk-agent"
    assert svc["ExecStart"].endswith(f"--config {kiosk.config_path.resolve()} run")
    assert svc["ReadWritePaths"] == str(kiosk.data_dir.resolve())
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "read-only"),
        ("CapabilityBoundingSet", ""),
    ):
        assert svc[key] == value, key
    assert "PrivateDevices" not in svc  # serial printers must stay reachable
    assert _parse(unit)["Install"]["WantedBy"] == "multi-user.target"
    tail = out.split("# end of unit\n", 1)[1].splitlines()
    assert tail[-3:] == [
        "systemctl daemon-reload",
        "systemctl enable kiosk-agent.service",
        "systemctl start kiosk-agent.service",
    ]
    assert f"chown -R kiosk1: {kiosk.data_dir.resolve()}" in out
    assert any(line.startswith("useradd --system") and line.endswith(" kiosk1") for line in out.splitlines())
    assert not Path("/etc/systemd/system/kiosk-agent.service").exists() or os.geteuid() == 0


def test_dry_run_other_actions(kiosk: Kiosk) -> None:
    assert kiosk.run("service", "start", "--dry-run").stdout.strip() == "systemctl start kiosk-agent.service"
    assert kiosk.run("service", "stop", "--dry-run").stdout.strip() == "systemctl stop kiosk-agent.service"
    assert kiosk.run("service", "remove", "--dry-run").stdout.splitlines() == [
        "systemctl disable --now kiosk-agent.service",
        "rm -f /etc/systemd/system/kiosk-agent.service",
        "systemctl daemon-reload",
    ]


def test_install_refuses_bad_user_and_uninitialised_kiosk(kiosk: Kiosk) -> None:
    bad = kiosk.run("service", "install", "--user", "root;rm -rf /", "--dry-run")
    assert bad.returncode == 2 and "--user" in bad.stderr
    early = kiosk.run("service", "install", "--dry-run")
    assert early.returncode == 2 and "kiosk-agent init" in early.stderr


def test_paths_with_spaces_and_percent_are_quoted(tmp_path: Path, kiosk: Kiosk) -> None:
    text = service.unit_text(
        exe="/opt/my venv/bin/kiosk-agent",
        config_path=Path("/etc/kiosk 100%/agent.toml"),
        data_dir=Path("/var/lib/kiosk data"),
        user="kiosk-agent",
    )
    svc = _parse(text)["Service"]
    assert svc["ExecStart"] == '"/opt/my venv/bin/kiosk-agent" --config "/etc/kiosk 100%%/agent.toml" run'
    assert svc["ReadWritePaths"] == '"/var/lib/kiosk data"'


class Recorder:
    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        code = 1 if self.fail_on and self.fail_on in cmd else 0
        return subprocess.CompletedProcess(cmd, code, "", "Failed to start: unit masked\n" if code else "")


def test_apply_writes_unit_then_runs_commands_in_order(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", check=True)
    plan = service.plan(
        "install", kiosk.cfg, exe="/venv/bin/kiosk-agent", unit_dir=tmp_path, user_exists=lambda u: True
    )
    rec = Recorder()
    service.apply(plan, run=rec)
    assert (tmp_path / service.UNIT_NAME).read_text() == plan.unit_text
    assert [c[:2] for c in rec.calls] == [
        ["chown", "-R"],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable"],
        ["systemctl", "start"],
    ]
    removal = service.plan("remove", kiosk.cfg, unit_dir=tmp_path)
    rec = Recorder()
    service.apply(removal, run=rec)
    assert not (tmp_path / service.UNIT_NAME).exists()
    assert rec.calls == [["systemctl", "disable", "--now", service.UNIT_NAME], ["systemctl", "daemon-reload"]]


def test_apply_stops_at_first_failure_with_one_line(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", check=True)
    plan = service.plan("install", kiosk.cfg, exe="/x", unit_dir=tmp_path, user_exists=lambda u: True)
    rec = Recorder(fail_on="enable")
    with pytest.raises(service.ServiceError, match="enable kiosk-agent.service failed: Failed to start"):
        service.apply(plan, run=rec)
    assert rec.calls[-1][:2] == ["systemctl", "enable"]
    with pytest.raises(InvalidInput):
        service.plan("restart", kiosk.cfg)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_passes_systemd_analyze(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", check=True)
    plan = service.plan("install", kiosk.cfg, user=os.environ.get("USER", "root") or "root")
    unit = tmp_path / service.UNIT_NAME
    unit.write_text(plan.unit_text or "")
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0 and f"{unit}:" not in proc.stderr, proc.stderr


def test_sd_notify_sends_to_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(path)}) is True
        assert server.recv(100) == b"READY=1"
    assert sdnotify.notify("READY=1", env={}) is False
    assert sdnotify.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({}) is None
