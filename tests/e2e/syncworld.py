"""Helpers for the sync fault tests: kiosks made in-process against a real server
process, realistic transactions through the real ledger API, and the oracle
(the server's SQLite read directly, read-only, compared with the ledger)."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from agent import config as config_mod
from agent import syncing, transactions
from agent.ledger import Ledger, init_ledger, open_ledger
from server_stub import admin
from server_stub.db import quarantine, records, tokens
from tests.conftest import Kiosk, write_config
from tests.e2e.servers import ServerProcess

# A realistic mix at a Rajasthan e-Mitra counter: bills with a consumer number and a mobile,
# certificates with a name, printing.
_NAMES = ["Sita Devi", "Ram Prasad", "Mohan Lal", "Pooja Meena", "Vikram Singh", "Kamla Kumari"]
_DISTRICTS = ["Jaipur", "Ajmer", "Jodhpur", "Udaipur", "Bikaner", "Kota"]


class FakeClock:
    """The engine's sleep and drain clock: backoff is exercised, nobody waits."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s

    def __call__(self) -> float:
        return self.t


def realistic_txn(rng: random.Random, operator: str = "op1") -> transactions.NewTxn:
    mobile = f"{rng.choice('6789')}{rng.randrange(10**9):09d}"
    roll = rng.random()
    if roll < 0.40:
        return transactions.NewTxn(
            "ELEC_BILL",
            f"{rng.randrange(150, 6000)}.{rng.randrange(100):02d}",
            operator,
            mobile=mobile,
            fields={
                "discom": rng.choice(["JVVNL", "AVVNL", "JDVVNL"]),
                "k_number": f"2104{rng.randrange(10**8):08d}",
            },
        )
    if roll < 0.65:
        return transactions.NewTxn(
            "WATER_BILL",
            f"{rng.randrange(80, 1500)}",
            operator,
            mobile=mobile,
            fields={"consumer_number": f"33{rng.randrange(10**8):08d}"},
        )
    if roll < 0.75:
        return transactions.NewTxn(
            "CASTE_CERT",
            "0",
            operator,
            fields={
                "applicant_name": rng.choice(_NAMES),
                "caste": rng.choice(["Jat", "Meena", "Gurjar", "Mali"]),
                "district": rng.choice(_DISTRICTS),
            },
        )
    if roll < 0.85:
        return transactions.NewTxn(
            "INCOME_CERT",
            "0",
            operator,
            mobile=mobile if rng.random() < 0.5 else None,
            fields={
                "applicant_name": rng.choice(_NAMES),
                "annual_income": str(rng.randrange(30, 300) * 1000),
            },
        )
    return transactions.NewTxn(
        "PRINT_LAMINATION",
        f"{rng.randrange(1, 8) * 5}",
        operator,
        fields={
            "pages": str(rng.randrange(1, 9)),
            "job": rng.choice(["print", "colour_print", "lamination"]),
        },
    )


def make_kiosk(root: Path, *, extra: str = "") -> Kiosk:
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_AGENT_")}
    return Kiosk(root, write_config(root, extra), env)


def config_at(kiosk: Kiosk, name: str, extra: str) -> config_mod.Config:
    """Another config file for the same data dir (e.g. a short timeout through the proxy)."""
    path = kiosk.root / name
    path.write_text(f'[agent]\ndata_dir = "data"\n{extra}', encoding="utf-8")
    return config_mod.load(str(path), env={})


@dataclass
class World:
    """A running server process plus the test's own handle on its database."""

    server: ServerProcess

    def __post_init__(self) -> None:
        path = self.server.db.removeprefix("sqlite:///")
        self.db = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        self.ro = sa.create_engine(f"sqlite:///file:{path}?mode=ro&uri=true", connect_args={"timeout": 30})

    def enrollment_code(self, name: str = "Shop") -> str:
        """A new kiosk on the server (the admin function the server's CLI calls)."""
        with self.db.begin() as conn:
            return admin.create_kiosk(
                conn, self.server.lsp["lsp_id"], name, int(time.time() * 1000), 1
            ).enrollment_code

    def enroll(self, kiosk: Kiosk, url: str | None = None, *, dev_leases: bool = False) -> dict[str, Any]:
        init_ledger(kiosk.cfg, dev_leases=dev_leases)
        with open_ledger(kiosk.cfg) as led:
            return syncing.enroll(kiosk.cfg, led, url or self.server.url, self.enrollment_code())

    # -- the oracle ------------------------------------------------------------
    def server_records(self, device_id: str) -> list[tuple[int, str, str | None, str | None]]:
        with self.ro.connect() as conn:
            return [
                (r.seq, r.hash, r.token, r.final_token)
                for r in conn.execute(
                    sa.select(records.c.seq, records.c.hash, records.c.token, records.c.final_token)
                    .where(records.c.device_id == device_id)
                    .order_by(records.c.seq)
                )
            ]

    def quarantined(self, device_id: str) -> list[tuple[int, str, str]]:
        with self.ro.connect() as conn:
            return [
                (r.seq, r.hash, r.reason)
                for r in conn.execute(
                    sa.select(quarantine.c.seq, quarantine.c.hash, quarantine.c.reason)
                    .where(quarantine.c.device_id == device_id)
                    .order_by(quarantine.c.seq)
                )
            ]

    def token_owners(self) -> dict[str, list[tuple[str, int]]]:
        with self.ro.connect() as conn:
            out: dict[str, list[tuple[str, int]]] = {}
            for r in conn.execute(sa.select(tokens.c.token, tokens.c.device_id, tokens.c.seq)):
                out.setdefault(r.token, []).append((r.device_id, r.seq))
            return out

    def close(self) -> None:
        self.db.dispose()
        self.ro.dispose()


def ledger_view(led: Ledger) -> list[tuple[int, str, str | None, str | None, str]]:
    """(seq, hash, token, final token, outbox state) for every record, oldest first."""
    return [
        (int(r[0]), str(r[1]), r[2], r[3], str(r[4]))
        for r in led.conn.execute(
            "SELECT r.seq, r.hash, r.token, o.final_token, o.state FROM records r "
            "JOIN outbox o ON o.seq = r.seq ORDER BY r.seq"
        )
    ]


def exhaust_leases(led: Ledger) -> None:
    """Spend every token block, as a kiosk long offline would (the next sales get provisional tokens)."""
    with led.write() as conn:
        conn.execute("UPDATE leases SET next_serial = end_serial")
