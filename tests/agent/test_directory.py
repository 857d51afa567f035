"""Any kiosk's receipt verified offline: the agent pulls the server's signed device directory into
files, checks every page on load, and `receipt verify` accepts a genuine receipt of another kiosk
and refuses a forged one with no network (a real server process, then stopped)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import directory, printing, syncing
from agent.ledger import open_ledger
from hardware.receipt import receipt_qr_text
from tests.conftest import Kiosk, write_config
from tests.e2e.servers import ServerProcess

WATER = ("txn", "new", "--service", "WATER_BILL", "--amount", "10", "--field", "consumer_number=123456")


def _kiosk(root: Path) -> Kiosk:
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_AGENT_")}
    return Kiosk(root, write_config(root), env)


def _enrolled(k: Kiosk, server: ServerProcess) -> None:
    k.run("init", check=True)
    k.json("enroll", "--server", server.url, "--code", server.new_kiosk()["enrollment_code"])


def qr_of(k: Kiosk, token: str) -> str:
    """The QR text printed on ``token``'s receipt at kiosk ``k``."""
    with open_ledger(k.cfg) as led:
        data = printing.receipt_data(led, led.find(token), duplicate=False, lang="en")
        return receipt_qr_text(data, led.sign)


def pull(k: Kiosk) -> dict[str, int]:
    with open_ledger(k.cfg) as led:
        key = led.meta("server_sign_pub")
        engine = syncing.make_engine(k.cfg, led)
        assert engine is not None and key
        return directory.pull(k.cfg, key, engine.client)


@pytest.fixture
def two_kiosks(tmp_path: Path) -> Iterator[tuple[Kiosk, Kiosk, str]]:
    """Kiosk ``here`` holds the directory (server stopped again); ``there`` sold one receipt."""
    here, there = _kiosk(tmp_path / "here"), _kiosk(tmp_path / "there")
    server = ServerProcess(tmp_path / "srv")
    with server:
        _enrolled(here, server)
        _enrolled(there, server)
        sale = there.json(*WATER)
        assert pull(here)["devices"] == 2
        assert pull(here)["pages"] == 0  # incremental: nothing new since
    yield here, there, qr_of(there, sale["token"])


def test_another_kiosks_receipt_verifies_offline_and_a_forged_one_is_refused(
    two_kiosks: tuple[Kiosk, Kiosk, str],
) -> None:
    here, there, qr = two_kiosks
    doc = here.json("receipt", "verify", qr)
    assert doc["ok"] is True and doc["checked_with"] == "directory" and doc["seq"] == 1
    with open_ledger(there.cfg) as led:
        assert doc["kiosk_code"] == led.kiosk_code and doc["device_id"] == led.device_id
    parts = qr.split("|")
    forged = "|".join([*parts[:3], "2", *parts[4:]])  # another seq under the same signature
    refused = here.run("receipt", "verify", forged)
    assert refused.returncode == 2 and "forged" in refused.stderr and forged not in refused.stderr
    own_key_forgery = qr_of(here, here.json(*WATER)["token"]).split("|")
    fake = "|".join([own_key_forgery[0], parts[1], *own_key_forgery[2:]])  # signed by a kiosk, not that one
    assert here.run("receipt", "verify", fake).returncode == 2


def test_a_tampered_directory_page_is_never_trusted(two_kiosks: tuple[Kiosk, Kiosk, str]) -> None:
    here, _there, qr = two_kiosks
    (page,) = directory.folder(here.cfg).glob("page-*.json")
    doc = json.loads(page.read_text())
    doc["body"]["devices"][1]["public_key"] = doc["body"]["devices"][0]["public_key"]
    page.write_text(json.dumps(doc))
    with open_ledger(here.cfg) as led:
        loaded = directory.load(here.cfg, led.meta("server_sign_pub"))
    assert loaded.refused == 1 and loaded.devices == 0
    refused = here.run("receipt", "verify", qr)
    assert refused.returncode == 2 and "directory does not hold" in refused.stderr


def test_kiosk_agent_sync_pulls_the_directory_too(tmp_path: Path) -> None:
    here, there = _kiosk(tmp_path / "here"), _kiosk(tmp_path / "there")
    with ServerProcess(tmp_path / "srv") as server:
        _enrolled(here, server)
        _enrolled(there, server)
        sale = there.json(*WATER)
        first = here.json("sync", "--once")
        assert first["directory_devices_added"] == 2
        assert here.json("sync", "--once")["directory_devices_added"] == 0  # incremental
    doc = here.json("receipt", "verify", qr_of(there, sale["token"]))  # the server is gone: offline
    assert doc["ok"] is True and doc["checked_with"] == "directory"
