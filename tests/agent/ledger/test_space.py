"""Disk full is said as disk full (issue 12 item 1), on a real 8 MB tmpfs: sales are refused with
one line before SQLite fails, the ledger still opens (the reserve), `verify` passes, and
everything resumes once space is freed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import DiskFull
from agent.fsutil import free_bytes, keep_reserve
from agent.ledger.space import MB, Space
from tests.conftest import ELEC, Kiosk, SmallDisk, kiosk_on

SALE = ["txn", "new", "--service", "ELEC_BILL", "--amount", "100"]
SALE += [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.fixture
def full_kiosk(small_disk: SmallDisk, kiosk: Kiosk) -> Kiosk:
    k = kiosk_on(small_disk, kiosk)
    k.run("init", "--dev-leases", check=True)
    k.run(*SALE, check=True)
    return k


def test_the_reserve_is_there_before_the_first_sale(small_disk: SmallDisk, kiosk: Kiosk) -> None:
    k = kiosk_on(small_disk, kiosk)
    k.run("init", check=True)
    assert (k.data_dir / "ledger.reserve").stat().st_size == MB


def test_txn_new_on_a_full_disk_says_so_and_resumes(full_kiosk: Kiosk, small_disk: SmallDisk) -> None:
    k = full_kiosk
    assert (k.data_dir / "ledger.reserve").stat().st_size == MB
    small_disk.fill()
    assert small_disk.free() == 0
    for args in (SALE, SALE, ["txn", "list"], ["status"]):
        proc = k.run(*args)
        if args is SALE:
            assert proc.returncode == 3
            line = _one_line(proc.stderr)
            assert "full" in line and "free disk space" in line and "key" not in line
    assert not (k.data_dir / "ledger.reserve").exists()  # given back so the ledger could open
    status = k.json("status")
    assert [a["code"] for a in status["alerts"]] == ["disk_full"]
    assert k.run("verify").returncode == 0
    small_disk.release()
    k.json(*SALE)
    assert (k.data_dir / "ledger.reserve").exists()  # made again before the sale
    assert k.json("verify")["count"] == 2


def test_sales_stop_at_the_threshold_before_sqlite_fails(full_kiosk: Kiosk, small_disk: SmallDisk) -> None:
    k = full_kiosk
    small_disk.fill(leave=3 * MB)  # under warn_free_mb (4): a warning, sales go on
    assert k.json("status")["alerts"][0]["code"] == "disk_low"
    k.run(*SALE, check=True)
    small_disk.fill(leave=int(1.5 * MB))  # under min_free_mb (2): refused, though SQLite could write
    proc = k.run(*SALE)
    assert proc.returncode == 3 and "nearly full" in _one_line(proc.stderr)
    assert json.loads(k.run("verify", "--json").stdout)["count"] == 2


def test_disk_errors_are_not_a_wrong_key(full_kiosk: Kiosk, small_disk: SmallDisk, tmp_path: Path) -> None:
    """With no reserve to give back, SQLite itself fails: still named as the full disk."""
    k = full_kiosk
    (k.data_dir / "ledger.reserve").unlink()
    small_disk.fill()
    backup = ["backup", "--to", str(k.data_dir / "b.db")]  # on the full disk
    for args in (["verify"], ["status"], ["txn", "list"], SALE, backup):
        proc = k.run(*args)
        if proc.returncode:
            line = _one_line(proc.stderr)
            assert proc.returncode == 3, (args, line)
            assert "key" not in line and "full" in line, (args, line)
    small_disk.release()
    assert k.run("verify").returncode == 0


def test_space_guard_alone(tmp_path: Path) -> None:
    free = free_bytes(tmp_path)
    assert Space(tmp_path, 0, 0, 0).alert() is None
    with pytest.raises(DiskFull, match="nearly full"):
        Space(tmp_path, free + 1024 * MB, 0, 0).check_sale()
    keep_reserve(tmp_path / "r", 4096)
    assert (tmp_path / "r").stat().st_size == 4096


@pytest.mark.parametrize("reserve_mb", [0, 1])
@pytest.mark.parametrize("leave", [0, 4096, 10_000, 65536])  # 10 KB raised SIGBUS before
def test_no_sigbus_on_a_nearly_full_1k_block_disk(
    small_ext4: SmallDisk, kiosk: Kiosk, leave: int, reserve_mb: int
) -> None:
    """Left with a few KB free (4 KB raised SIGBUS before), every command answers: refused with
    one line, or done; never killed by a signal. Real processes: a signal is their exit code."""
    k = kiosk_on(small_ext4, kiosk, reserve_mb=reserve_mb)
    k.run("init", "--dev-leases", check=True)
    k.run(*SALE, check=True)
    small_ext4.fill(leave=leave)
    for args in (["status"], SALE, ["verify"]):
        proc = k.run(*args, process=True)
        assert proc.returncode in (0, 3), (args, proc.returncode, proc.stderr)
        if proc.returncode:
            assert "full" in _one_line(proc.stderr)
    small_ext4.release()
    assert k.run("verify", process=True).returncode == 0
