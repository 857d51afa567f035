"""The kiosk's data at rest: the data dir and its logs folder 0700, the ledger, its key and the
logs 0600, created so, and tightened (with a warning in the log) when found looser."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.conftest import Kiosk


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(kiosk: Kiosk) -> list[Path]:
    data = kiosk.data_dir
    found = [data / "ledger.db", data / "db.key", data / "logs" / "agent.log"]
    found += [p for p in (data / "ledger.db-wal", data / "ledger.db-shm") if p.exists()]
    return found


def test_the_data_dir_and_logs_are_private_from_the_start(kiosk: Kiosk) -> None:
    os.umask(0o022)  # a usual umask: files would be 0644 and folders 0755 unless made private
    kiosk.run("init", "--dev-leases", check=True)
    kiosk.run(
        "txn", "new", "--service", "WATER_BILL", "--amount", "1", "--field", "consumer_number=3345678901"
    )
    assert mode(kiosk.data_dir) == 0o700 and mode(kiosk.data_dir / "logs") == 0o700
    assert {p.name: oct(mode(p)) for p in _files(kiosk)} == {p.name: "0o600" for p in _files(kiosk)}


def test_looser_modes_are_tightened_on_start_with_a_warning(kiosk: Kiosk) -> None:
    kiosk.run("init", check=True)
    kiosk.run("status", check=True)  # the first command after init opens the log
    for path in [kiosk.data_dir, kiosk.data_dir / "logs"]:
        os.chmod(path, 0o755)
    for path in _files(kiosk):
        os.chmod(path, 0o644)
    assert kiosk.run("status").returncode == 0
    assert mode(kiosk.data_dir) == 0o700 and mode(kiosk.data_dir / "logs") == 0o700
    assert all(mode(p) == 0o600 for p in _files(kiosk)), [oct(mode(p)) for p in _files(kiosk)]
    log = (kiosk.data_dir / "logs" / "agent.log").read_text(encoding="utf-8")
    assert "could be read by other users" in log and "ledger.db" in log


def test_a_rotated_log_file_is_private_too(kiosk: Kiosk) -> None:
    import logging

    from agent.logs import PrivateRotatingFileHandler

    kiosk.run("init", check=True)
    kiosk.run("status", check=True)
    path = kiosk.data_dir / "logs" / "rotating.log"
    handler = PrivateRotatingFileHandler(path, maxBytes=200, backupCount=2, encoding="utf-8")
    try:
        for i in range(20):
            handler.emit(logging.LogRecord("t", logging.INFO, __file__, 1, "line %d " * 5, (i,) * 5, None))
    finally:
        handler.close()
    rotated = sorted(path.parent.glob("rotating.log*"))
    assert len(rotated) == 3 and all(mode(p) == 0o600 for p in rotated)


def test_a_second_kiosk_in_one_process_logs_to_its_own_file(tmp_path: Path) -> None:
    import logging

    from agent import logs
    from agent.config import load
    from tests.conftest import write_config

    root = logging.getLogger()
    before = list(root.handlers)
    cfgs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        cfg = load(str(write_config(tmp_path / name)), env={})
        cfg.data_dir.mkdir()
        cfgs.append(cfg)
    try:
        logs.setup(cfgs[0])
        logs.setup(cfgs[0])  # again for the same kiosk: one handler, not two
        logging.getLogger("agent.test").warning("line for a")
        logs.setup(cfgs[1])
        logging.getLogger("agent.test").warning("line for b")
        ours = [h for h in root.handlers if getattr(h, "_kiosk_agent", False)]
        assert len(ours) == 1
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
            h.close()
    a, b = ((c.log_dir / "agent.log").read_text(encoding="utf-8") for c in cfgs)
    assert "line for a" in a and "line for b" not in a
    assert "line for b" in b and "line for a" not in b
