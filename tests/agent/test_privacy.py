"""Nothing a citizen typed appears in plaintext anywhere on disk."""

from __future__ import annotations

from agent.ledger import open_ledger
from sync.wire import sealing, verhoeff
from tests.conftest import Kiosk

MOBILES = ["9876501234", "8123409876", "7000012345"]
AADHAARS = [a for a in (f"{n}" for n in range(234567890100, 234567890200)) if verhoeff.is_valid(a)][:3]
K_NUMBERS = ["210499887766", "210455443322", "210411223344"]
NAMES = ["Kamla Bishnoi", "Gordhan Saini"]


def _sell_with_pii(kiosk: Kiosk) -> None:
    """Bills with mobiles and K numbers, certificates with Aadhaar numbers and names."""
    for mobile, k in zip(MOBILES, K_NUMBERS, strict=True):
        kiosk.run(
            "txn",
            "new",
            "--service",
            "ELEC_BILL",
            "--amount",
            "310",
            "--mobile",
            mobile,
            "--field",
            "discom=JVVNL",
            "--field",
            f"k_number={k}",
            check=True,
        )
    for aadhaar, name in zip(AADHAARS, NAMES, strict=False):
        kiosk.run(
            "txn",
            "new",
            "--service",
            "CASTE_CERT",
            "--amount",
            "0",
            "--aadhaar",
            aadhaar,
            "--mobile",
            MOBILES[0],
            "--field",
            f"applicant_name={name}",
            "--field",
            "caste=Meena",
            "--field",
            "district=Tonk",
            check=True,
        )


def test_no_plaintext_pii_on_disk(kiosk: Kiosk) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    _, pub = sealing.new_keypair()
    held = open_ledger(kiosk.cfg)  # held open so the WAL stays on disk to be scanned
    held.set_meta({"server_seal_pub": pub})  # as enrollment would: the server's sealing key
    _sell_with_pii(kiosk)
    # a refused entry must not leak either
    bad = kiosk.run(
        "txn",
        "new",
        "--service",
        "WATER_BILL",
        "--amount",
        "5",
        "--aadhaar",
        AADHAARS[2],
        "--field",
        "consumer_number=123456",
    )
    assert bad.returncode == 2 and AADHAARS[2] not in bad.stderr
    shown = kiosk.run("txn", "list", "--json", check=True).stdout
    assert not any(m in shown for m in MOBILES) and not any(a in shown for a in AADHAARS)
    assert "XXXXXX1234" in shown and f"XXXX XXXX {AADHAARS[0][-4:]}" in shown

    files = [p for p in kiosk.data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"ledger.db", "db.key", "agent.log"} <= names and "ledger.db-wal" in names
    assert (kiosk.data_dir / "ledger.db").read_bytes()[:16] != b"SQLite format 3\x00"
    secrets = MOBILES + AADHAARS + K_NUMBERS + NAMES
    for path in files:
        blob = path.read_bytes()
        for s in secrets:
            for form in (s.encode(), s.encode("utf-16-le")):
                assert form not in blob, f"{s!r} in plaintext in {path.name}"
    assert (kiosk.data_dir / "ledger.db-wal").stat().st_size > 4096
    held.close()
    log = (kiosk.data_dir / "logs" / "agent.log").read_text()
    assert "committed seq=5" in log  # the log is really being written
