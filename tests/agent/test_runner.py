"""`run` in-process: the runner serves the local API, whose new transactions take the one flow
(commit, print on the runner's printer, nudge the sync job); a recording printer stands in."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

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
    assert v["print_state"] == "printed" and [r.token for r in printer.receipts] == [v["token"]]
    assert _sync_due_in(runner) <= 3  # brought forward from a minute away
    st = s.get(url + "/api/status", timeout=10).json()
    assert st["printer"] == {"kind": "network", "state": "ok"} and "not enrolled" in st["sync_state"]
    again = s.post(f"{url}/api/transactions/{v['token']}/reprint", timeout=10)
    assert again.status_code == 202 and again.json()["result"]["print_state"] == "printed"
    assert [r.duplicate for r in printer.receipts] == [False, True]
    runner.shutdown()
    with open_ledger(runner.cfg) as led:
        assert led.find(v["token"])["print_state"] == "printed" and led.count() == 1
