"""Installing the agent as an OS service.

Linux: a systemd unit (``Type=notify``: ``kiosk-agent run`` sends READY=1 and
watchdog pings) running as its own unprivileged user, hardened, able to write
only its data dir. Windows: a pywin32 service (:mod:`agent.winservice`).

Each action is first a :class:`Plan` (the unit text and the exact commands),
so ``--dry-run`` shows precisely what would be done and tests read it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.config import Config
from agent.errors import AgentError, InvalidInput
from agent.fsutil import atomic_write

log = logging.getLogger(__name__)

UNIT_NAME = "kiosk-agent.service"
UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "kiosk-agent"
ACTIONS = ("install", "remove", "start", "stop")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ServiceError(AgentError):
    """The service manager refused or is not available."""


@dataclass(frozen=True)
class Plan:
    """Steps in order: ``["write", path]`` (the unit text), ``["rm", path]`` or a command to run."""

    action: str
    unit_path: Path
    unit_text: str | None = None
    steps: list[list[str]] = field(default_factory=list)

    @property
    def commands(self) -> list[list[str]]:
        return [s for s in self.steps if s[0] not in ("write", "rm")]

    def describe(self) -> str:
        out: list[str] = []
        for step in self.steps:
            if step[0] == "write":
                out += [f"# write {step[1]}:", (self.unit_text or "").rstrip(), "# end of unit"]
            elif step[0] == "rm":
                out.append(f"rm -f {_shell_quote(step[1])}")
            else:
                out.append(" ".join(_shell_quote(a) for a in step))
        return "\n".join(out)


def _shell_quote(arg: str) -> str:
    return arg if re.fullmatch(r"[A-Za-z0-9_./:=@%+-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def _unit_quote(arg: str) -> str:
    """One word of a systemd unit line: specifiers and variables escaped, quoted if it has spaces."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", arg):
        return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def agent_executable() -> str:
    """The ``kiosk-agent`` script beside this interpreter (the venv's), else on PATH."""
    name = "kiosk-agent.exe" if sys.platform == "win32" else "kiosk-agent"
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside.absolute())
    found = shutil.which("kiosk-agent")
    if not found:
        raise ServiceError("cannot find the kiosk-agent program; install the package into a venv first")
    return str(Path(found).absolute())


def unit_text(*, exe: str, config_path: Path, data_dir: Path, user: str, groups: tuple[str, ...] = ()) -> str:
    lines = [
        "[Unit]",
        "Description=kiosk-agent: offline-first e-Mitra kiosk ledger and sync",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"ExecStart={_unit_quote(exe)} --config {_unit_quote(str(config_path))} run",
        "Restart=on-failure",
        "RestartSec=5",
        "WatchdogSec=30",
        "TimeoutStopSec=30",
        f"User={user}",
        *([f"SupplementaryGroups={' '.join(groups)}"] if groups else []),
        f"WorkingDirectory={_unit_quote(str(data_dir))}",
        "Environment=PYTHONUNBUFFERED=1",
        "UMask=0077",
        "# hardening: writes only to the data dir; serial devices stay reachable (no PrivateDevices)",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={_unit_quote(str(data_dir))}",
        "PrivateTmp=yes",
        "ProtectHome=read-only",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictSUIDSGID=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _user_exists(name: str) -> bool:
    import pwd

    return _known(pwd.getpwnam, name)


def _group_exists(name: str) -> bool:
    import grp

    return _known(grp.getgrnam, name)


def _known(lookup: Callable[[str], object], name: str) -> bool:
    try:
        lookup(name)
        return True
    except KeyError:
        return False


def plan(
    action: str,
    cfg: Config,
    *,
    user: str = DEFAULT_USER,
    exe: str | None = None,
    unit_dir: Path = UNIT_DIR,
    user_exists: Callable[[str], bool] = _user_exists,
    group_exists: Callable[[str], bool] = _group_exists,
) -> Plan:
    """What ``action`` would write and run on this (systemd) machine."""
    if action not in ACTIONS:
        raise InvalidInput(f"unknown service action '{action}' (one of: {', '.join(ACTIONS)})")
    if not _USER.match(user):
        raise InvalidInput("--user must be a plain system user name (lowercase letters, digits, _ or -)")
    unit_path = unit_dir / UNIT_NAME
    systemctl = ["systemctl"]
    if action in ("start", "stop"):
        return Plan(action, unit_path, steps=[[*systemctl, action, UNIT_NAME]])
    if action == "remove":
        removal = [
            [*systemctl, "disable", "--now", UNIT_NAME],
            ["rm", str(unit_path)],
            [*systemctl, "daemon-reload"],
        ]
        return Plan(action, unit_path, steps=removal)
    if cfg.source is None:
        raise InvalidInput(
            "install needs a config file: kiosk-agent --config /path/agent.toml service install"
        )
    if not cfg.ledger_path.exists():
        raise InvalidInput(
            f"{cfg.ledger_path}: no ledger yet; run kiosk-agent init before installing the service"
        )
    config_path = cfg.source.absolute()
    data_dir = cfg.data_dir.absolute()
    groups = tuple(g for g in ("dialout",) if group_exists(g))  # serial printers and sensors
    text = unit_text(
        exe=exe or agent_executable(), config_path=config_path, data_dir=data_dir, user=user, groups=groups
    )
    steps: list[list[str]] = []
    if not user_exists(user):
        steps.append(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(data_dir),
             "--shell", "/usr/sbin/nologin", user]
        )  # fmt: skip
    steps += [
        ["chown", "-R", f"{user}:", str(data_dir)],
        ["write", str(unit_path)],
        [*systemctl, "daemon-reload"],
        [*systemctl, "enable", UNIT_NAME],
        [*systemctl, "start", UNIT_NAME],
    ]
    return Plan(action, unit_path, text, steps)


def apply(plan_: Plan, *, run: Callable[..., Any] = subprocess.run) -> None:
    """Carry out a plan (install/remove need root). Stops at the first failing step."""
    try:
        for step in plan_.steps:
            if step[0] == "write":
                atomic_write(Path(step[1]), (plan_.unit_text or "").encode("utf-8"), 0o644)
            elif step[0] == "rm":
                Path(step[1]).unlink(missing_ok=True)
            else:
                proc = run(step, capture_output=True, text=True)
                if proc.returncode != 0:
                    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
                    why = lines[-1] if lines else f"exit {proc.returncode}"
                    raise ServiceError(f"{' '.join(step)} failed: {why[:200]}")
    except PermissionError:
        raise ServiceError(
            f"{plan_.action} needs root: run it with sudo (or --dry-run to see the steps)"
        ) from None
    except FileNotFoundError as exc:
        raise ServiceError(f"{exc.filename or 'systemctl'} not found: is this a systemd machine?") from None
    log.info("service %s done", plan_.action)


__all__ = [
    "DEFAULT_USER",
    "Plan",
    "ServiceError",
    "UNIT_NAME",
    "agent_executable",
    "apply",
    "plan",
    "unit_text",
]
