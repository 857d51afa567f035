"""`kiosk-agent run` as a real process: start, serve, stop on SIGTERM."""

from __future__ import annotations

import signal

from tests.e2e.agent_proc import AgentProcess
from tests.e2e.conftest import WATER
from tests.e2e.servers import ServerProcess


def test_sigterm_exits_0_fast_and_loses_nothing(agent: AgentProcess) -> None:
    agent.start()
    made = [agent.api("POST", "/api/transactions", json=WATER) for _ in range(5)]
    assert all(r.status_code == 201 for r in made), made[0].text
    tokens = {r.json()["token"] for r in made}
    code, took = agent.stop(signal.SIGTERM)
    assert code == 0 and took < 5, (code, took)
    listed = agent.kiosk.json("txn", "list")
    assert {d["token"] for d in listed} == tokens
    assert agent.kiosk.json("verify")["ok"] is True
    assert "kiosk-agent stopped" in agent.log()


def test_ctrl_c_takes_the_same_path(agent: AgentProcess) -> None:
    agent.start()
    code, took = agent.stop(signal.SIGINT)
    assert code == 0 and took < 5


def test_second_run_on_same_data_dir_refuses(agent: AgentProcess) -> None:
    agent.start()
    second = agent.kiosk.run("run", timeout=30, process=True)
    assert second.returncode == 2 and "already using" in second.stderr
    assert agent.proc is not None and agent.proc.poll() is None  # the first one is unharmed
    assert agent.stop()[0] == 0
    # and after a SIGKILL the OS lock is gone: run starts again
    agent.start()
    agent.kill()
    agent.start()
    assert agent.stop()[0] == 0


def test_runs_before_enrollment_and_says_why_sync_waits(agent: AgentProcess) -> None:
    agent.start()
    st = agent.api("GET", "/api/status").json()
    assert st["kiosk_code"] is None and "not enrolled" in st["sync_state"]
    assert agent.api("POST", "/api/transactions", json=WATER).status_code == 201


def test_server_unreachable_then_back_syncs_by_itself(
    enrolled_agent: tuple[AgentProcess, ServerProcess],
) -> None:
    agent, server = enrolled_agent
    agent.start()
    try:
        made = agent.api("POST", "/api/transactions", json=WATER).json()
        import time

        deadline = time.monotonic() + 20
        while "waiting" not in agent.api("GET", "/api/status").json()["sync_state"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling with a deadline
        with server:
            deadline = time.monotonic() + 30
            while agent.api("GET", f"/api/transactions/{made['token']}").json()["sync_state"] != "acked":
                assert time.monotonic() < deadline, agent.api("GET", "/api/status").json()
                time.sleep(0.1)  # polling with a deadline
            # A connection kept alive from before the server restarted may fail once; the next
            # round (backoff starts at 0.2 s here) then reports ok.
            while not agent.api("GET", "/api/status").json()["sync_state"].startswith("ok"):
                assert time.monotonic() < deadline, agent.api("GET", "/api/status").json()
                time.sleep(0.1)  # polling with a deadline
    finally:
        assert agent.stop()[0] == 0
