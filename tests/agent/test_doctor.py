"""doctor: every check on real files, sockets and simulators; the CLI as a real process."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent import doctor
from agent.config import load
from agent.harness import free_port
from agent.ledger import open_ledger
from hardware.sim.rdservice import RDServiceSim
from tests.conftest import ELEC, Kiosk, write_config


def _by_name(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {c.name: c for c in checks}


def _run(kiosk: Kiosk, probes: doctor.Probes | None = None) -> dict[str, doctor.Check]:
    return _by_name(doctor.run_checks(lambda: load(str(kiosk.config_path), env={}), probes))


@pytest.fixture
def healthz() -> Iterator[str]:
    """A real HTTP server answering /healthz with its Date header."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            code = 200 if self.path == "/healthz" else 404
            self.send_response(code)  # send_response adds Date
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthy_offline_kiosk_passes_via_cli(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    proc = kiosk.run("doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] is True
    assert checks["config"]["status"] == "OK" and str(kiosk.config_path) in checks["config"]["detail"]
    assert checks["key"]["status"] == "OK" and checks["ledger"]["status"] == "OK"
    assert checks["server"]["status"] == "WARN" and "not enrolled" in checks["server"]["detail"]
    assert checks["clock"]["status"] == "WARN" and "unknown" in checks["clock"]["detail"]
    assert checks["printer"] == {
        "name": "printer",
        "status": "OK",
        "detail": checks["printer"]["detail"],
        "fix": "",
    }
    assert "disabled" in checks["printer"]["detail"] and checks["fingerprint"]["status"] == "OK"
    human = kiosk.run("doctor")
    assert human.returncode == 0 and any(
        line.startswith("OK    ledger") for line in human.stdout.splitlines()
    )


def test_broken_config_is_a_fail_line_not_a_crash(kiosk: Kiosk) -> None:
    kiosk.config_path.write_text('[agent]\ndata_dir = "data"\nshoe_size = 9\n')
    proc = kiosk.run("doctor")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("FAIL  config") and "shoe_size" in first and "unknown setting" in first
    assert "-> fix the named setting" in proc.stdout
    missing = kiosk.run("--config", str(kiosk.root / "nope.toml"), "doctor", "--json")
    doc = json.loads(missing.stdout)
    assert missing.returncode == 1 and doc["ok"] is False
    assert doc["checks"][0]["status"] == "FAIL" and "not found" in doc["checks"][0]["detail"]


def test_missing_key_fails_with_the_fix(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    kiosk.cfg.key_file.unlink()
    proc = kiosk.run("doctor", "--json")
    assert proc.returncode == 1
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["key"]["status"] == "FAIL" and "not found" in checks["key"]["detail"]
    assert "restore" in checks["key"]["fix"] and checks["ledger"]["status"] == "FAIL"
    assert "fix the key first" in checks["ledger"]["fix"]
    assert checks["config"]["status"] == "OK" and checks["disk"]["status"] in ("OK", "WARN")


def test_no_ledger_says_init(kiosk: Kiosk) -> None:
    checks = _run(kiosk)
    assert checks["ledger"].status == "FAIL" and checks["ledger"].fix == "run kiosk-agent init"


def test_key_readable_by_others_warns(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    kiosk.cfg.key_file.chmod(0o644)
    key = _run(kiosk)["key"]
    assert key.status == "WARN" and "chmod 600" in key.fix


def test_server_and_clock_skew(kiosk: Kiosk, healthz: str) -> None:
    write_config(kiosk.root, f'[server]\nurl = "{healthz}"\n')
    kiosk.run("init", check=True)
    for offset, expected in ((0, "OK"), (150, "WARN"), (-400, "FAIL")):
        checks = _run(kiosk, doctor.Probes(now=lambda o=offset: time.time() + o))  # type: ignore[misc]
        assert checks["server"].status == "OK"
        assert checks["clock"].status == expected, checks["clock"]
    behind = _run(kiosk, doctor.Probes(now=lambda: time.time() - 400))["clock"]
    assert "behind" in behind.detail and "clock" in behind.fix


def test_clock_check_agrees_with_what_sync_stamps(kiosk: Kiosk, healthz: str) -> None:
    """A PC clock 400 s behind whose offset sync has learned: sales carry the server's time,
    so a warning (set the clock), not a failure; unlearned, it fails and says to sync."""
    write_config(kiosk.root, f'[server]\nurl = "{healthz}"\n')
    kiosk.run("init", check=True)
    with open_ledger(kiosk.cfg) as led:
        led.set_clock_offset(400)
    learned = _run(kiosk, doctor.Probes(now=lambda: time.time() - 400))["clock"]
    assert learned.status == "WARN" and "stamped with the server's time" in learned.detail
    with open_ledger(kiosk.cfg) as led:
        led.set_clock_offset(0)
    unlearned = _run(kiosk, doctor.Probes(now=lambda: time.time() - 400))["clock"]
    assert unlearned.status == "FAIL" and "kiosk-agent sync" in unlearned.fix


def test_unreachable_server_warns(kiosk: Kiosk) -> None:
    write_config(kiosk.root, f'[server]\nurl = "http://127.0.0.1:{free_port()}"\n')
    kiosk.run("init", check=True)
    checks = _run(kiosk)
    assert checks["server"].status == "WARN" and "unreachable" in checks["server"].detail
    assert checks["clock"].status == "WARN"


def test_disk_thresholds_are_the_ledgers(kiosk: Kiosk) -> None:
    write_config(kiosk.root, "[ledger]\nwarn_free_mb = 300\nmin_free_mb = 30\n")
    kiosk.run("init", check=True)
    mb = doctor.MB
    for free, expected in ((3000 * mb, "OK"), (300 * mb - 1, "WARN"), (30 * mb - 1, "FAIL")):
        probes = doctor.Probes(disk_usage=lambda p, f=free: SimpleNamespace(free=f))  # type: ignore[misc]
        assert _run(kiosk, probes)["disk"].status == expected


def test_a_damaged_ledger_fails(kiosk: Kiosk) -> None:
    """A flipped page the kiosk never reads in normal use: doctor still FAILs, and sales stop."""
    kiosk.run("init", "--dev-leases", check=True)
    path = kiosk.data_dir / "ledger.db"
    data = bytearray(path.read_bytes())
    data[len(data) - 100] ^= 0xFF  # inside the last page
    path.write_bytes(bytes(data))
    ledger = _run(kiosk)["ledger"]
    assert ledger.status == "FAIL" and "damaged" in ledger.detail and "restore" in ledger.fix
    fields = [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]
    sale = kiosk.run("txn", "new", "--service", "ELEC_BILL", "--amount", "1", *fields)
    assert sale.returncode == 3 and "damaged" in sale.stderr


def test_printer_and_r30x_ports(kiosk: Kiosk) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        port = listener.getsockname()[1]
        write_config(
            kiosk.root,
            f'[printer]\nurl = "socket://127.0.0.1:{port}"\n[fingerprint]\nkind = "r30x"\nurl = "loop://"\n',
        )
        kiosk.run("init", check=True)
        checks = _run(kiosk)
        assert checks["printer"].status == "OK" and checks["fingerprint"].status == "OK"
    finally:
        listener.close()
    write_config(
        kiosk.root, f'[printer]\nurl = "socket://127.0.0.1:{free_port()}"\n[fingerprint]\nkind = "r30x"\n'
    )
    checks = _run(kiosk)
    assert checks["printer"].status == "FAIL" and "cable" in checks["printer"].fix
    assert checks["fingerprint"].status == "FAIL" and "url is empty" in checks["fingerprint"].detail


def test_rdservice_probe(kiosk: Kiosk) -> None:
    with RDServiceSim() as sim:
        write_config(
            kiosk.root,
            f'[fingerprint]\nkind = "rdservice"\nrdservice_ports = [{free_port()}, {sim.port}]\n',
        )
        kiosk.run("init", check=True)
        fp = _run(kiosk)["fingerprint"]
        assert fp.status == "OK" and str(sim.port) in fp.detail
    fp = _run(kiosk)["fingerprint"]
    assert fp.status == "FAIL" and "RD service" in fp.fix


def test_missing_raqm(kiosk: Kiosk, tmp_path: Path) -> None:
    kiosk.run("init", check=True)
    no_raqm = doctor.Probes(raqm=lambda: False)
    assert _run(kiosk, no_raqm)["raqm"].status == "WARN"  # printing disabled
    write_config(kiosk.root, '[printer]\nurl = "loop://"\nlang = "hi"\n')
    assert _run(kiosk, no_raqm)["raqm"].status == "FAIL"
    assert _run(kiosk)["raqm"].status == "OK"  # this machine's Pillow has raqm


def test_printer_status_comes_from_hardware(kiosk: Kiosk) -> None:
    from hardware import RecordingPrinter

    write_config(kiosk.root, '[printer]\nurl = "/dev/ttyUSB7"\n')
    printer = RecordingPrinter()
    probes = doctor.Probes(open_printer=lambda cfg: printer)
    for mode, status, word in (
        ("paper_out", "FAIL", "paper"),
        ("offline", "FAIL", "cover"),
        ("paper_low", "WARN", "paper"),
        ("unplugged", "FAIL", "cable"),
    ):
        printer.fail(mode)  # type: ignore[arg-type]
        check = _run(kiosk, probes)["printer"]
        assert check.status == status and word in check.fix, (mode, check)
    printer.recover()
    check = _run(kiosk, probes)["printer"]
    assert check.status == "OK" and "serial printer /dev/ttyUSB7 is ready" in check.detail
    assert not printer.is_open  # the doctor closes what it opened
    write_config(kiosk.root, '[printer]\nurl = ""\n')
    assert "disabled" in _run(kiosk, probes)["printer"].detail
