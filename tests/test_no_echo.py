"""No error repeats what was typed when it may be a citizen's number: an Aadhaar-like string is fed
to every input that can reach an error message, on both sides (kiosk-agent and kiosk-server
CLIs, the server's API, the kiosk's local API), and its digits are in no output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.agent.test_api import TOKEN, Hooks, _start
from tests.conftest import ELEC, Kiosk
from tests.server_stub.conftest import Harness, db_url, run_cli, start_server  # noqa: F401 - its fixtures

NUMBER = "234567890124"  # 12 digits, as an Aadhaar number
SPACED = "2345 6789 0124"


def assert_clean(*outputs: str) -> None:
    for out in outputs:
        flat = out.replace("\\u0020", " ")
        for i in range(len(NUMBER) - 7):
            assert NUMBER[i : i + 8] not in flat.replace(" ", ""), out
        assert SPACED not in flat, out


AGENT_CLI = [
    ["txn", "new", "--service", NUMBER, "--amount", "1"],
    ["txn", "new", "--service", "ELEC_BILL", "--amount", NUMBER],
    ["txn", "new", "--service", "ELEC_BILL", "--amount", SPACED],
    ["txn", "new", "--service", "WATER_BILL", "--amount", "1", "--mobile", NUMBER],
    ["txn", "new", "--service", "WATER_BILL", "--amount", "1", "--aadhaar", NUMBER],
    ["txn", "new", "--service", "ELEC_BILL", "--amount", "1", "--field", NUMBER],
    ["txn", "new", "--service", "ELEC_BILL", "--amount", "1", "--field", f"{NUMBER}=1"],
    ["txn", "new", "--service", "ELEC_BILL", "--amount", "1", "--field", f"discom={NUMBER}"],
    ["txn", "show", NUMBER],
    ["txn", "void", NUMBER, "--reason", "typo"],
    ["txn", "list", "--limit", f"{NUMBER}x"],
    ["receipt", "render", NUMBER, "--png", "x.png"],
    ["receipt", "verify", NUMBER],
    ["receipt", "verify", f"KA1|{NUMBER}|{NUMBER}|{NUMBER}|ab|cd"],
    ["enroll", "--server", NUMBER, "--code", "X"],
    ["enroll", "--server", f"http://{NUMBER}", "--code", "X"],
    ["enroll", "--server", "http://127.0.0.1:9", "--code", NUMBER],
    ["enroll", "--server", "http://127.0.0.1:9", "--code", "X", "--fingerprint", NUMBER],
    ["restore", "--from", NUMBER, "--yes"],
    ["backup", "--to", f"/nonexistent/{NUMBER}/b.db"],
    ["sim", "printer", "--fail", NUMBER],
]


@pytest.mark.parametrize("args", AGENT_CLI, ids=lambda a: " ".join(a[:3]))
def test_agent_cli_errors_do_not_echo(kiosk: Kiosk, args: list[str]) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    proc = kiosk.run(*args)
    assert proc.returncode != 0, proc.stdout
    assert_clean(proc.stdout, proc.stderr)


SERVER_CLI = [
    ["kiosk", "add", "--lsp", NUMBER, "--name", "Shop"],
    ["kiosk", "add", "--lsp", "LSP0001", "--name", "Shop", "--expires-hours", NUMBER],
    ["device", "revoke", NUMBER],
    ["device", "reinstate", NUMBER],
    ["lsp", "rotate-key", NUMBER],
    ["reconcile", "--lsp", NUMBER, "--date", "2026-12-01"],
    ["reconcile", "--lsp", "LSP0001", "--date", NUMBER],
    ["reconcile", "--lsp", "LSP0001", "--date", "2026-12-01", "--kiosk", NUMBER],
    ["catalog", "load", f"/nonexistent/{NUMBER}.json"],
    ["serve", "--port", NUMBER],
]


@pytest.mark.parametrize("args", SERVER_CLI, ids=lambda a: " ".join(a[:2]))
def test_server_cli_errors_do_not_echo(tmp_path: Path, args: list[str]) -> None:
    db = f"sqlite:///{tmp_path / 's.db'}"
    assert run_cli(db, "init").returncode == 0
    assert run_cli(db, "lsp", "add", "--name", "One").returncode == 0
    proc = run_cli(db, *args)
    assert proc.returncode != 0, proc.stdout
    assert_clean(proc.stdout, proc.stderr)


def test_server_api_errors_do_not_echo(start_server: Any) -> None:  # noqa: F811 - the fixture
    server: Harness = start_server(rate_per_s=0)
    lsp = server.lsp()
    fake = server.enrolled(lsp.lsp_id)
    key = {"device_public_key": "A" * 43 + "=", "device_id": fake.device_id}
    answers = [
        server.session.post(f"{server.url}/v1/enroll", json={"enrollment_code": NUMBER, **key}, timeout=30),
        server.session.post(f"{server.url}/v1/enroll", json={"enrollment_code": SPACED, **key}, timeout=30),
        fake.call("GET", f"/v1/tokens/{NUMBER}"),
        fake.call("GET", f"/v1/catalog?since={NUMBER}"),
        fake.call("POST", "/v1/leases", {"count": int(NUMBER)}),
        fake.call("POST", "/v1/leases", {"request_id": NUMBER * 6}),
        fake.call("POST", "/v1/heartbeat", {"head_seq": 0, "hardware": {NUMBER * 3: NUMBER}}),
    ]
    for field, value in (("date", NUMBER), ("kiosk_code", NUMBER), ("lsp_id", NUMBER)):
        params = {"date": "2026-12-01", field: value}
        answers.append(server.lsp_get(lsp.api_key, "/v1/reconciliation", params=params))
    for change in (
        {"service": NUMBER},
        {"token": NUMBER},
        {"fields": {NUMBER: NUMBER}},
        {"mobile": NUMBER * 2},
    ):
        rec = fake.wire(fake.make_record(append=False))
        answers.append(
            fake.call("POST", "/v1/batches", {"prev_hash": fake.head_hash, "records": [{**rec, **change}]})
        )
    for resp in answers:
        assert 400 <= resp.status_code < 500 or resp.json().get("acks"), resp.text
        assert_clean(resp.text, json.dumps(dict(resp.headers)))


@pytest.fixture
def local_api(kiosk: Kiosk) -> Iterator[tuple[str, requests.Session]]:
    from agent.ledger import init_ledger, open_ledger

    init_ledger(kiosk.cfg, dev_leases=True)
    with open_ledger(kiosk.cfg) as ledger:
        server = _start(kiosk, ledger, Hooks(), with_printer=True)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            yield server.url, s
        finally:
            server.stop()


def test_local_api_errors_do_not_echo(local_api: tuple[str, requests.Session]) -> None:
    url, s = local_api
    bodies: list[dict[str, Any]] = [
        {**ELEC, "service": NUMBER},
        {**ELEC, "amount": NUMBER},
        {**ELEC, "amount": SPACED},
        {**ELEC, "mobile": NUMBER},
        {**ELEC, "aadhaar": NUMBER},
        {**ELEC, "operator": NUMBER * 20},
        {**ELEC, "fields": {**ELEC["fields"], NUMBER: "1"}},
        {**ELEC, "fields": {"discom": NUMBER, "k_number": "210412345678"}},
        {**ELEC, NUMBER: 1},
    ]
    answers = [s.post(f"{url}/api/transactions", json=b, timeout=10) for b in bodies]
    answers += [
        s.get(f"{url}/api/transactions/{NUMBER}", timeout=10),
        s.post(f"{url}/api/transactions/{NUMBER}/void", json={"reason": "typo"}, timeout=10),
        s.post(f"{url}/api/transactions/{NUMBER}/reprint", timeout=10),
        s.get(f"{url}/api/transactions", params={"limit": NUMBER}, timeout=10),
    ]
    for resp in answers:
        assert 400 <= resp.status_code < 500, (resp.status_code, resp.text)
        assert_clean(resp.text)
