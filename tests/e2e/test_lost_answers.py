"""SIGKILL `kiosk-agent run` between a sale's commit and its answer, again and again, while the
client retries with its Idempotency-Key: never a second sale (issue 12, item 5).

Two kinds of kill, alternating, with the ESC/POS printer simulator attached over TCP:

- **answer lost**: the sale goes through a fault proxy that forwards it, reads the agent's whole
  answer (so the commit happened) and closes without sending any of it; then `run` is SIGKILLed
  before the client hears anything. The retry after the restart must be the replay.
- **kill at a random moment**: the sale goes straight to `run`, which is SIGKILLed a random few
  milliseconds later (before, during or after the commit); the retry either makes the sale (the
  kill came first) or replays it.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agent.ledger import open_ledger, verify
from hardware.sim.printer import PrinterSim
from tests.conftest import Kiosk
from tests.e2e.agent_proc import AgentProcess, with_port
from tests.e2e.conftest import WATER
from tests.e2e.faultproxy import Fault, FaultProxy

KILLS = int(os.environ.get("KIOSK_TEST_LOST_ANSWER_KILLS", "30"))


@pytest.fixture
def printer() -> Iterator[PrinterSim]:
    with PrinterSim(transport="tcp") as sim:
        yield sim


def _sale(i: int) -> dict[str, Any]:
    return dict(WATER, amount=f"{100 + i}")


def _post(url: str, token: str, i: int, timeout: float = 10, host: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": f"form-{i}"}
    if host:  # through the proxy: the agent answers only requests naming its own address
        headers["Host"] = host
    return requests.post(url + "/api/transactions", json=_sale(i), headers=headers, timeout=timeout)


def _answer_lost(agent: AgentProcess, proxy: FaultProxy, i: int) -> None:
    proxy.set_schedule(lambda _n, _m, _p: Fault("cut"))
    with pytest.raises(requests.ConnectionError):
        _post(proxy.url, agent.token, i, host=f"127.0.0.1:{agent.port}")
    assert proxy.seen[-1].upstream_status == 201  # the agent committed and answered
    agent.kill()  # committed, answered into the void, and now gone


def _kill_at_random(agent: AgentProcess, rng: random.Random, i: int) -> None:
    got: list[object] = []

    def client() -> None:
        try:
            got.append(_post(agent.url, agent.token, i, timeout=5))
        except requests.RequestException as exc:
            got.append(exc)

    t = threading.Thread(target=client)
    t.start()
    time.sleep(rng.uniform(0.0, 0.03))  # the kill moment is what is randomised
    assert agent.proc is not None
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(timeout=10)
    t.join(10)


def _retry(agent: AgentProcess, i: int) -> requests.Response:
    resp = _post(agent.url, agent.token, i)
    assert resp.status_code in (200, 201), resp.text
    return resp


def test_sigkill_between_commit_and_answer_never_sells_twice(kiosk: Kiosk, printer: PrinterSim) -> None:
    agent = AgentProcess(kiosk)
    with_port(kiosk, agent.port, f'[printer]\nurl = "{printer.url}"\nwidth_dots = 384\n')
    kiosk.run("init", "--dev-leases", check=True)
    rng = random.Random(int(os.environ.get("KIOSK_TEST_SEED", "12")))
    replays = made = 0
    try:
        with FaultProxy(agent.port) as proxy:
            for i in range(KILLS):
                agent.start()
                if i % 2 == 0:
                    _answer_lost(agent, proxy, i)
                else:
                    _kill_at_random(agent, rng, i)
                agent.start()
                resp = _retry(agent, i)
                if i % 2 == 0:  # the commit happened before the kill: it must be the replay
                    assert resp.status_code == 200 and resp.headers["Idempotent-Replay"] == "true"
                replays += resp.status_code == 200
                made += resp.status_code == 201
                again = _retry(agent, i)  # and any later retry is the same sale
                assert again.status_code == 200 and again.json()["txn_id"] == resp.json()["txn_id"]
                agent.kill()
    finally:
        agent.kill()
    with open_ledger(kiosk.cfg) as led:
        rows = led.rows()
        assert verify(led).ok
    amounts = sorted(r["amount_paise"] for r in rows)
    assert amounts == [(100 + i) * 100 for i in range(KILLS)]  # one sale per key: 0 duplicates
    assert len({r["token"] for r in rows}) == KILLS
    assert replays >= KILLS // 2 and replays + made == KILLS
