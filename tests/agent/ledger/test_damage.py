"""Damage is found and stops the kiosk from making it worse; lost WAL frames never reissue a token
(issue 12 items 2 and 3).

A kiosk's data dir with 20 committed sales is copied, 16 bytes are flipped at one of 50 positions
of the ledger file (folded, as a stopped kiosk leaves it) or of its ``-wal`` (copied while the
ledger was open, as a crash leaves it), then the real CLI runs on the copy: ``txn new`` (the
kiosk keeps selling), ``verify``, ``txn new`` again. Every case must be reported (exit 3 with the
way out, one line, no traceback) and no token a citizen holds may be issued again."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import config, transactions
from agent.ledger import init_ledger, open_ledger
from tests.conftest import ELEC, invoke_cli, write_config

N_SALES = 20
FLIPS = 50
SALE_ARGS = ["txn", "new", "--service", "ELEC_BILL", "--amount", "100", "--json"]
SALE_ARGS += [a for k, v in ELEC["fields"].items() for a in ("--field", f"{k}={v}")]


def _cfg(root: Path) -> config.Config:
    return config.load(str(root / "agent.toml"), env={})


def _sell(led: object, n: int) -> set[str]:
    out = set()
    for i in range(n):
        req = transactions.NewTxn(
            service=ELEC["service"], amount=str(100 + i), operator="op1", fields=dict(ELEC["fields"])
        )
        out.add(str(transactions.create(led, req)["token"]))  # type: ignore[arg-type]
    return out


def _kiosk(root: Path, *, keep_wal: bool) -> tuple[Path, set[str]]:
    """A data dir with N_SALES sales; with ``keep_wal`` the copy is taken while the ledger is open
    (the sales live in the -wal), else after close (folded into the file)."""
    src = root / "src"
    src.mkdir()
    write_config(src)
    init_ledger(_cfg(src), dev_leases=True)
    snap = root / "snap"
    with open_ledger(_cfg(src)) as led:
        tokens = _sell(led, N_SALES)
        if keep_wal:
            shutil.copytree(src, snap, ignore=shutil.ignore_patterns("*-shm"))
    if not keep_wal:
        shutil.copytree(src, snap)
    return snap, tokens


@pytest.fixture(scope="module")
def folded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    return _kiosk(tmp_path_factory.mktemp("folded"), keep_wal=False)


@pytest.fixture(scope="module")
def in_wal(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    snap, tokens = _kiosk(tmp_path_factory.mktemp("wal"), keep_wal=True)
    assert (snap / "data" / "ledger.db-wal").stat().st_size > 100_000  # the sales are in the WAL
    return snap, tokens


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    for i in range(pos, min(pos + 16, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _cli(root: Path, *args: str) -> tuple[int, str, str]:
    proc = invoke_cli(["--config", str(root / "agent.toml"), *args], {})
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode:
        assert proc.returncode == 3, (args, proc.returncode, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return proc.returncode, proc.stdout, proc.stderr


def _case(snap: Path, issued: set[str], target: str, pos: int, tmp: Path) -> Iterator[str]:
    """One flip; yields what was seen (for the test's tally)."""
    case = tmp / f"{target}-{pos}"
    shutil.copytree(snap, case)
    _flip(case / "data" / target, pos)
    rc, out, err = _cli(case, *SALE_ARGS)
    if rc == 0:
        token = json.loads(out)["token"]
        assert token not in issued, f"flip at {target}:{pos} reissued token {token}"
        yield "sold"
    else:
        assert "restore" in err or "damaged" in err, err
        yield "refused"
    rc, _, err = _cli(case, "verify")
    assert rc == 3, f"verify passed a ledger with a flip at {target}:{pos}"
    assert "restore" in err
    rc, _, _ = _cli(case, *SALE_ARGS)
    assert rc == 3, f"a sale went through after verify found the flip at {target}:{pos}"
    shutil.rmtree(case)


def _positions(size: int) -> list[int]:
    return sorted({min(size - 16, 5 + i * size // FLIPS) for i in range(FLIPS)} | {0})


def test_flips_in_the_ledger_file_are_all_reported(folded: tuple[Path, set[str]], tmp_path: Path) -> None:
    snap, issued = folded
    assert _cli(snap, "verify")[0] == 0
    size = (snap / "data" / "ledger.db").stat().st_size
    seen = [s for pos in _positions(size) for s in _case(snap, issued, "ledger.db", pos, tmp_path)]
    assert len(seen) >= FLIPS
    print(f"ledger file: {seen.count('refused')} refused at open or sale, {seen.count('sold')} sold")


def test_flips_in_the_wal_never_reissue_a_token(in_wal: tuple[Path, set[str]], tmp_path: Path) -> None:
    snap, issued = in_wal
    size = (snap / "data" / "ledger.db-wal").stat().st_size
    seen = [s for pos in _positions(size) for s in _case(snap, issued, "ledger.db-wal", pos, tmp_path)]
    assert len(seen) >= FLIPS
    assert seen.count("refused") == len(seen)  # every frame is checksummed: a flip always loses some


def test_wal_loss_is_named_at_open(in_wal: tuple[Path, set[str]], tmp_path: Path) -> None:
    case = tmp_path / "k"
    shutil.copytree(in_wal[0], case)
    wal = case / "data" / "ledger.db-wal"
    _flip(wal, wal.stat().st_size // 2)
    rc, _, err = _cli(case, *SALE_ARGS)
    assert rc == 3 and "records but" in err and "kiosk-agent restore" in err
    status = json.loads(_cli(case, "status", "--json")[1])
    assert "ledger_behind" in [a["code"] for a in status["alerts"]]
