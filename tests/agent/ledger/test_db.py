"""SQLite's errors named for what they are (issue 12 item 1): a real I/O error (EIO from a loop
device whose image is cut short) is an I/O error, never a wrong key or damage; the result codes map
one to one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlcipher3

from agent.errors import DiskFull, LedgerDamaged, LedgerIOError
from agent.ledger import init_ledger, open_ledger
from agent.ledger.db import back_the_shm, is_storage, storage_error
from tests.conftest import ELEC, FailingDisk, Kiosk, kiosk_on

SALE = ["txn", "new", "--service", "ELEC_BILL", "--amount", "100"]
SALE += [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]


def test_a_failing_disk_is_an_io_error(failing_disk: FailingDisk, kiosk: Kiosk) -> None:
    k = kiosk_on(failing_disk, kiosk, extra="", reserve_mb=0)
    k.config_path.write_text(
        k.config_path.read_text()
        .replace("min_free_mb = 2", "min_free_mb = 1")
        .replace("warn_free_mb = 4", "")
    )
    k.run("init", "--dev-leases", check=True)
    for _ in range(30):  # some pages beyond the cut
        k.run(*SALE, check=True)
    failing_disk.fail(k.data_dir / "ledger.db")
    for args in (["txn", "list"], ["verify"], ["status"], SALE):
        proc = k.run(*args)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
        line = proc.stderr.strip()
        assert len(line.splitlines()) == 1, line
        assert "could not read or write" in line and "key" not in line and "damaged" not in line


def _err(code: int) -> Exception:
    exc = sqlcipher3.OperationalError("from SQLite")
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    exc.sqlite_errorname = f"code {code}"  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("code", "kind"),
    [(13, DiskFull), (10, LedgerIOError), (11, LedgerDamaged), (26, LedgerDamaged), (5, LedgerIOError)],
)
def test_result_codes(tmp_path: Path, code: int, kind: type) -> None:
    assert is_storage(_err(code))
    assert isinstance(storage_error(_err(code), tmp_path / "ledger.db"), kind)


def test_constraints_are_not_storage_errors() -> None:
    assert not is_storage(_err(19))  # SQLITE_CONSTRAINT: our rules (append-only, unique), not the disk


def _posix_locks_on(path: Path) -> list[str]:
    """This process's POSIX locks on ``path``, as /proc/locks lists them."""
    st = path.stat()
    inode = f":{st.st_ino}"
    with open("/proc/locks", encoding="ascii") as fh:
        lines = fh.read().splitlines()
    return [
        ln for ln in lines if " POSIX " in ln and ln.split()[4] == str(os.getpid()) and inode in ln.split()[5]
    ]


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux /proc/locks")
def test_an_open_ledger_keeps_its_shm_locks(kiosk: Kiosk) -> None:
    """Backing the -shm with blocks must not drop SQLite's locks on it: a close of any descriptor
    of ours on the file would, and then another process truncates the -shm under our mmap (SIGBUS)
    and two writers can meet (SQLITE_PROTOCOL). Seen as `txn new` dying of SIGBUS beside another."""
    init_ledger(kiosk.cfg, dev_leases=True)
    with open_ledger(kiosk.cfg) as led:
        assert led is not None
        shm = kiosk.cfg.ledger_path.with_name(kiosk.cfg.ledger_path.name + "-shm")
        assert shm.exists()
        assert _posix_locks_on(shm), "the open ledger holds no lock on its -shm"
        back_the_shm(kiosk.cfg.ledger_path)
        assert _posix_locks_on(shm), "backing the -shm dropped SQLite's locks on it"
