"""`run` in-process: the runner serves the local API, whose new transactions take the one flow
(commit, print on the runner's printer, nudge the sync job); a recording printer stands in."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from agent.api import load_or_create_token
from agent.harness import free_port
from agent.ledger import init_ledger, open_ledger
from agent.runner import Runner
from hardware import RecordingPrinter
from tests.conftest import Kiosk, write_config
from tests.e2e.conftest import WATER


@pytest.fixture
def running(kiosk: Kiosk) -> Iterator[tuple[Runner, RecordingPrinter, requests.Session, str]]:
    port = free_port()
    write_config(
        kiosk.root, f'[printer]\nurl = "socket://127.0.0.1:9"\nlang = "en"\n[local_api]\nport = {port}\n'
    )
    cfg = kiosk.cfg
    init_ledger(cfg, dev_leases=True)
    printer = RecordingPrinter(build=False)
    runner = Runner(cfg, threading.Event(), printer=printer)
    runner.start()
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {load_or_create_token(cfg)}"
    try:
        yield runner, printer, s, f"http://127.0.0.1:{port}"
    finally:
        s.close()
        runner.shutdown()


def _sync_due_in(runner: Runner) -> float:
    job = runner.scheduler.get_job("sync")
    return float((job.next_run_time - dt.datetime.now(dt.UTC)).total_seconds())


def _until(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)  # polling with a deadline


def test_a_sale_through_the_runner_prints_and_nudges_sync(
    running: tuple[Runner, RecordingPrinter, requests.Session, str],
) -> None:
    runner, printer, s, url = running
    deadline = time.monotonic() + 20
    while _sync_due_in(runner) < 10 or runner.printer_state != "ok":  # first sync round and status check
        assert time.monotonic() < deadline, (runner.sync_state, runner.printer_state)
        time.sleep(0.05)  # polling with a deadline
    made = s.post(url + "/api/transactions", json=WATER, timeout=10)
    assert made.status_code == 201, made.text
    v = made.json()
    assert v["print"] == {"state": "queued"}  # answered right after the commit
    _until(lambda: [r.token for r in printer.receipts] == [v["token"]])
    shown = f"{url}/api/transactions/{v['token']}"
    _until(lambda: s.get(shown, timeout=10).json()["print_state"] == "printed")
    assert _sync_due_in(runner) <= 3  # brought forward from a minute away
    st = s.get(url + "/api/status", timeout=10).json()
    assert st["printer"] == {"kind": "network", "state": "ok"} and "not enrolled" in st["sync_state"]
    again = s.post(f"{url}/api/transactions/{v['token']}/reprint", timeout=10)
    assert again.status_code == 202 and again.json()["result"]["print_state"] == "printed"
    assert [r.duplicate for r in printer.receipts] == [False, True]
    runner.shutdown()
    with open_ledger(runner.cfg) as led:
        assert led.find(v["token"])["print_state"] == "printed" and led.count() == 1


def test_paper_out_fails_the_reprint_and_shows_in_status_at_once(
    running: tuple[Runner, RecordingPrinter, requests.Session, str],
) -> None:
    runner, printer, s, url = running
    printer.fail("paper_out")
    made = s.post(url + "/api/transactions", json=WATER, timeout=10)
    assert made.status_code == 201 and made.json()["print"] == {"state": "queued"}
    token = made.json()["token"]
    # within seconds of the failed print, not at the next 30 s poll
    _until(lambda: s.get(url + "/api/status", timeout=10).json()["printer"]["state"] == "paper_out", 3)
    shown = s.get(f"{url}/api/transactions/{token}", timeout=10).json()
    assert shown["print_state"] == "pending" and "out of paper" in shown["print_error"]
    again = s.post(f"{url}/api/transactions/{token}/reprint", timeout=10)
    assert again.status_code == 503 and again.json()["error"] == "print_failed"
    assert "out of paper" in again.json()["detail"]
    printer.recover()
    ok = s.post(f"{url}/api/transactions/{token}/reprint", timeout=10)
    assert ok.status_code == 202 and ok.json()["result"]["print_state"] == "printed"
    assert s.get(url + "/api/status", timeout=10).json()["printer"]["state"] == "ok"
    assert [r.duplicate for r in printer.receipts] == [False]  # no copy had printed: the original


def test_idempotency_key_replays_the_sale_and_refuses_another_body(
    running: tuple[Runner, RecordingPrinter, requests.Session, str],
) -> None:
    runner, printer, s, url = running
    key = {"Idempotency-Key": "form-1_a"}
    first = s.post(url + "/api/transactions", json=WATER, headers=key, timeout=10)
    assert first.status_code == 201 and "Idempotent-Replay" not in first.headers
    again = s.post(url + "/api/transactions", json=WATER, headers=key, timeout=10)
    assert again.status_code == 200 and again.headers["Idempotent-Replay"] == "true"
    assert again.json()["txn_id"] == first.json()["txn_id"] and again.json()["token"] == first.json()["token"]
    other = s.post(url + "/api/transactions", json=dict(WATER, amount="7"), headers=key, timeout=10)
    assert other.status_code == 422 and other.json()["error"] == "idempotency_key_reused"
    bad = s.post(url + "/api/transactions", json=WATER, headers={"Idempotency-Key": "no spaces!"}, timeout=10)
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_input"
    _until(lambda: len(printer.receipts) == 1)
    with runner.access() as led:  # type: ignore[misc]
        assert led.count() == 1
    assert [r.token for r in printer.receipts] == [first.json()["token"]]  # printed once
