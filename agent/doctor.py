"""`kiosk-agent doctor`: one OK/WARN/FAIL line per thing a kiosk needs, each with its fix.

Every check catches its own failure, so a broken config or a missing key still
gives a useful report. Nothing here writes to the ledger. The edges (HTTP
session, serial ports, disk usage, clock, the raqm probe) are parameters.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import requests
import serial

from agent.config import Config
from agent.errors import AgentError, DiskFull, KeyUnavailable, NotInitialised, WrongKey

Status = Literal["OK", "WARN", "FAIL"]
MB = 1024 * 1024
SKEW_FAIL_S = 300  # sales stamped further off than this (unlearned offset): FAIL


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class Probes:
    """The outside world, injectable."""

    session: requests.Session = field(default_factory=requests.Session)
    serial_for_url: Callable[..., Any] = serial.serial_for_url  # the R30x sensor's port
    open_printer: Callable[[Config], Any] = lambda cfg: _open_printer(cfg)
    disk_usage: Callable[[str], Any] = shutil.disk_usage
    now: Callable[[], float] = time.time
    raqm: Callable[[], bool] = lambda: _raqm()
    http_timeout: float = 3.0


def _open_printer(cfg: Config) -> Any:
    from agent.printing import open_configured

    return open_configured(cfg)


def _raqm() -> bool:
    from PIL import features

    return bool(features.check("raqm"))


def check_config(load: Callable[[], Config]) -> tuple[Check, Config | None]:
    try:
        cfg = load()
    except AgentError as exc:
        return Check(
            "config", "FAIL", exc.message, "fix the named setting (see agent.toml for every key)"
        ), None
    where = f"from {cfg.source}" if cfg.source else "defaults (no agent.toml found)"
    return Check("config", "OK", f"{where}; data dir {cfg.data_dir}"), cfg


def check_key(cfg: Config) -> Check:
    from agent.ledger import keys

    sec = cfg.settings.security
    try:
        keys.load_key(sec.key_source, cfg.key_file, sec.keyring_service)
    except AgentError as exc:
        fix = {
            "env": f"set {keys.ENV_KEY} to the ledger's 64-hex key in the service's environment",
            "keyring": "restore the key into the OS keyring, or run kiosk-agent init on a new kiosk",
        }.get(
            sec.key_source,
            f"restore {cfg.key_file} from your key backup (or run kiosk-agent init on a new kiosk)",
        )
        return Check("key", "FAIL", exc.message, fix)
    if sec.key_source == "file" and sys.platform != "win32":
        mode = cfg.key_file.stat().st_mode & 0o777
        if mode & 0o077:
            return Check(
                "key",
                "WARN",
                f"{cfg.key_file} is readable by others (mode {mode:o})",
                f"chmod 600 {cfg.key_file}",
            )
    return Check("key", "OK", f"source {sec.key_source}")


def check_ledger(cfg: Config, learned: list[float] | None = None) -> tuple[Check, str | None]:
    """Integrity, and the server URL stored at enrollment (if any). ``learned`` gets the clock
    offset sync stored (what new sales are stamped with)."""
    from agent.ledger import open_ledger, verify
    from agent.syncing import server_url

    try:
        with open_ledger(cfg) as led:
            res = verify(led)
            url = server_url(cfg, led)
            if learned is not None:
                learned.append(led.clock.offset_s)
    except AgentError as exc:
        if isinstance(exc, NotInitialised):
            fix = "run kiosk-agent init"
        elif isinstance(exc, KeyUnavailable | WrongKey):
            fix = "fix the key first (see the key line); never re-run init over an existing ledger"
        elif isinstance(exc, DiskFull):
            fix = "free disk space (old backups, downloads); the ledger is kept as it is"
        else:
            fix = "restore the newest good backup (kiosk-agent restore) and tell your LSP"
        return Check("ledger", "FAIL", exc.message, fix), cfg.settings.server.url or None
    except Exception as exc:  # a damaged file
        return Check(
            "ledger", "FAIL", f"cannot read the ledger ({exc.__class__.__name__})", "restore a backup"
        ), None
    if not res.ok:
        where = f"broken at seq {res.bad_seq}: " if res.bad_seq is not None else ""
        return (
            Check(
                "ledger",
                "FAIL",
                f"{where}{res.problem}",
                "restore the newest good backup; tell your LSP",
            ),
            url,
        )
    return Check("ledger", "OK", f"{res.count} records verified, head seq {res.head_seq}"), url


def check_disk(cfg: Config, probes: Probes) -> Check:
    """The same thresholds the ledger refuses sales at ([ledger] min_free_mb / warn_free_mb)."""
    path = cfg.data_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    free = int(probes.disk_usage(str(path)).free)
    led = cfg.settings.ledger
    detail = f"{free // MB} MB free at {path}"
    if free < led.min_free_mb * MB:
        return Check(
            "disk", "FAIL", detail + f"; new sales refused below {led.min_free_mb} MB", "free disk space now"
        )
    if free < max(led.warn_free_mb, led.min_free_mb) * MB:
        return Check("disk", "WARN", detail, "free some disk space (old backups in <data_dir>/backups)")
    return Check("disk", "OK", detail)


def check_server(
    url: str | None, probes: Probes, offset_s: float = 0.0, margin_s: float = 120
) -> list[Check]:
    """Reachability of <url>/healthz and clock skew from its Date header, judged as sync uses it:
    sales are stamped with the PC's clock plus the offset sync learned (``offset_s``), and a
    request signed with a wrong clock is signed again with the learned one, so a wrong PC clock
    alone is a warning; a FAIL is sales being stamped far off the server's time."""
    if not url:
        return [
            Check(
                "server", "WARN", "no server URL (not enrolled)", "kiosk-agent enroll, or set [server] url"
            ),
            Check("clock", "WARN", "unknown (no server to compare with)", ""),
        ]
    try:
        resp = probes.session.get(f"{url}/healthz", timeout=probes.http_timeout)
    except requests.RequestException as exc:
        offline = "check the internet link; the kiosk keeps working offline and syncs later"
        return [
            Check("server", "WARN", f"{url} unreachable ({exc.__class__.__name__})", offline),
            Check("clock", "WARN", "unknown (server unreachable)", ""),
        ]
    server = (
        Check("server", "OK", f"{url} answers")
        if resp.status_code == 200
        else Check("server", "WARN", f"{url}/healthz answered HTTP {resp.status_code}", "tell your LSP")
    )
    date = resp.headers.get("Date")
    try:
        skew = probes.now() - parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        skew = None
    if skew is None:
        return [server, Check("clock", "WARN", "unknown (the server sent no Date)", "")]
    return [server, _clock_check(skew, offset_s, margin_s)]


def _clock_check(skew: float, offset_s: float, margin_s: float) -> Check:
    detail = f"local clock is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the server"
    fix = "set the PC's clock (enable NTP / Windows time sync)"
    stamped = skew + offset_s  # how far off the server's time a sale made now is stamped
    if abs(stamped) <= margin_s:
        if abs(skew) > margin_s:
            return Check("clock", "WARN", detail + "; sales are stamped with the server's time", fix)
        return Check("clock", "OK", detail)
    off = f"{detail}; new sales are stamped {abs(stamped):.0f} s off until the kiosk syncs"
    learn = "run kiosk-agent sync (it learns the server's time); " + fix
    return Check("clock", "FAIL" if abs(stamped) > SKEW_FAIL_S else "WARN", off, learn)


def _open_port(url: str, probes: Probes) -> str | None:
    """None if the port opens (then closed again), else why not."""
    try:
        port = probes.serial_for_url(url, timeout=1, do_not_open=False)
    except (serial.SerialException, OSError, ValueError) as exc:
        return f"{exc.__class__.__name__}: {str(exc)[:120]}"
    try:
        port.close()
    except Exception:
        pass
    return None


_PRINTER_FIXES = {
    "disconnected": ("FAIL", "cannot be reached", "check the cable and power, and [printer] url"),
    "paper_out": ("FAIL", "is out of paper", "load a new paper roll"),
    "offline": ("FAIL", "is offline", "close the cover and clear any paper jam"),
    "paper_low": ("WARN", "is running out of paper", "keep a new paper roll at hand"),
    "unknown": ("OK", "opens (it does not report its status)", ""),
    "ok": ("OK", "is ready", ""),
}


def check_printer(cfg: Config, probes: Probes) -> Check:
    """The printer's own answer, through ``hardware`` (the transport is hardware's business)."""
    p = cfg.settings.printer
    if not p.enabled:
        return Check("printer", "OK", f'disabled ([printer] url = "{p.url}")')
    try:
        printer = probes.open_printer(cfg)
        try:
            state = str(printer.status())
        finally:
            printer.close()
    except (OSError, ValueError) as exc:  # a malformed url or USB id
        return Check("printer", "FAIL", f"cannot use {p.url} ({exc.__class__.__name__})", "fix [printer] url")
    status, what, fix = _PRINTER_FIXES.get(state, ("WARN", f"reports {state}", "check the printer"))
    where = p.url or f"USB {p.usb_vid_pid}"
    return Check("printer", status, f"{p.kind} printer {where} {what}", fix)  # type: ignore[arg-type]


def check_fingerprint(cfg: Config, probes: Probes) -> Check:
    fp = cfg.settings.fingerprint
    if fp.kind == "none":
        return Check("fingerprint", "OK", "disabled")
    if fp.kind == "r30x":
        if not fp.url:
            return Check(
                "fingerprint", "FAIL", "kind is r30x but [fingerprint] url is empty", "set the sensor's port"
            )
        problem = _open_port(fp.url, probes)
        if problem:
            return Check(
                "fingerprint", "FAIL", f"cannot open {fp.url} ({problem})", "check the sensor's cable"
            )
        return Check("fingerprint", "OK", f"{fp.url} opens")
    from hardware.errors import HardwareError
    from hardware.fingerprint.rdservice import RDServiceClient

    client = RDServiceClient(session=probes.session, ports=fp.rdservice_ports, probe_timeout=0.5)
    try:
        svc = client.discover()
    except HardwareError as exc:
        return Check("fingerprint", "FAIL", str(exc)[:200], "install/start the device's RD service")
    if not svc.ready:
        return Check(
            "fingerprint",
            "WARN",
            f"RD service on port {svc.port} is {svc.status}",
            "plug in the fingerprint device",
        )
    return Check("fingerprint", "OK", f"RD service READY on port {svc.port}")


def check_raqm(cfg: Config | None, probes: Probes) -> Check:
    if probes.raqm():
        return Check("raqm", "OK", "Pillow has raqm (Hindi text shapes correctly)")
    hindi = cfg is not None and cfg.settings.printer.enabled and cfg.settings.printer.lang == "hi"
    return Check(
        "raqm",
        "FAIL" if hindi else "WARN",
        "Pillow has no raqm: Hindi receipt lines will be mis-shaped",
        'install libraqm (apt install libraqm0; Windows wheels include it) or set [printer] lang = "en"',
    )


def run_checks(load: Callable[[], Config], probes: Probes | None = None) -> list[Check]:
    probes = probes or Probes()
    config_check, cfg = check_config(load)
    out = [config_check]
    if cfg is None:
        skipped = "not checked: the config is invalid"
        out += [
            Check(n, "WARN", skipped)
            for n in ("key", "ledger", "disk", "server", "clock", "printer", "fingerprint")
        ]
        return out + [check_raqm(None, probes)]
    out.append(check_key(cfg))
    learned: list[float] = []
    ledger_check, url = check_ledger(cfg, learned)
    out.append(ledger_check)
    out.append(check_disk(cfg, probes))
    out += check_server(url, probes, learned[0] if learned else 0.0, cfg.settings.sync.clock_margin_s)
    out.append(check_printer(cfg, probes))
    out.append(check_fingerprint(cfg, probes))
    out.append(check_raqm(cfg, probes))
    return out


def failed(checks: list[Check]) -> bool:
    return any(c.status == "FAIL" for c in checks)


__all__ = ["Check", "Probes", "failed", "run_checks"]
