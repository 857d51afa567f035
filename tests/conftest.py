"""Shared fixtures: a kiosk data dir with its config, the CLI as a real
process, and an open ledger for in-process tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent import config as config_mod
from agent.ledger import Ledger, init_ledger, open_ledger


@dataclass
class Kiosk:
    """A kiosk's config file and data dir in a temp folder."""

    root: Path
    config_path: Path
    env: dict[str, str]

    @property
    def cfg(self) -> config_mod.Config:
        return config_mod.load(str(self.config_path), env={})

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "agent", "--config", str(self.config_path), *args]

    def run(self, *args: str, check: bool = False, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
        return proc

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json", check=True).stdout)


def write_config(root: Path, extra: str = "") -> Path:
    path = root / "agent.toml"
    path.write_text(f'[agent]\ndata_dir = "data"\n{extra}', encoding="utf-8")
    return path


@pytest.fixture
def kiosk(tmp_path: Path) -> Kiosk:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_AGENT_")}
    return Kiosk(tmp_path, write_config(tmp_path), env)


@pytest.fixture
def ledger(kiosk: Kiosk) -> Iterator[Ledger]:
    init_ledger(kiosk.cfg, dev_leases=True)
    with open_ledger(kiosk.cfg) as led:
        yield led


ELEC = {
    "service": "ELEC_BILL",
    "amount": "1250.50",
    "fields": {"discom": "JVVNL", "k_number": "210412345678"},
}
