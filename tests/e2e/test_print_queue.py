"""Sales at once through `kiosk-agent run` with the ESC/POS printer simulator on a real TCP
socket: one print worker owns the printer, so every receipt prints, in commit order (issue 12,
item 6; before it, 16 of 20 receipts of two sales at once did not print)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hardware.sim.printer import PrinterSim
from tests.conftest import Kiosk
from tests.e2e.agent_proc import AgentProcess, with_port
from tests.e2e.conftest import WATER

SALES = 20
CLIENTS = 4


@pytest.fixture
def printer() -> Iterator[PrinterSim]:
    with PrinterSim(transport="tcp") as sim:
        yield sim


def test_concurrent_sales_all_print_in_order(kiosk: Kiosk, printer: PrinterSim) -> None:
    agent = AgentProcess(kiosk)
    with_port(kiosk, agent.port, f'[printer]\nurl = "{printer.url}"\nwidth_dots = 384\nlang = "en"\n')
    kiosk.run("init", "--dev-leases", check=True)
    made: list[dict[str, object]] = []
    lock = threading.Lock()

    def client(c: int) -> None:
        for i in range(SALES // CLIENTS):
            resp = agent.api("POST", "/api/transactions", json=dict(WATER, amount=f"{10 + c * 100 + i}"))
            assert resp.status_code == 201, resp.text
            with lock:
                made.append(resp.json())

    try:
        agent.start()
        threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(made) == SALES and all(v["print"] == {"state": "queued"} for v in made)
        printer.wait_for_cuts(SALES, timeout=60)
        text = printer.paper.text
        by_seq = [str(v["token"]) for v in sorted(made, key=lambda v: int(str(v["seq"])))]
        assert all(text.count(t) == 1 for t in by_seq)  # every receipt, once
        assert sorted(by_seq, key=text.index) == by_seq  # in commit order
        deadline = time.monotonic() + 10
        while any(s["print_state"] != "printed" for s in _shown(agent, by_seq)):
            assert time.monotonic() < deadline, "print states not stored"
            time.sleep(0.05)  # polling with a deadline
        assert agent.api("GET", "/api/status").json()["printer"]["state"] == "ok"
    finally:
        agent.kill()


def _shown(agent: AgentProcess, tokens: list[str]) -> list[dict[str, object]]:
    return [agent.api("GET", f"/api/transactions/{t}").json() for t in tokens]
