"""`run` on a disk that fills up (issue 12 item 1), on a real 8 MB tmpfs: the local API answers
JSON 507 ``disk_full`` (never a plain 500), `run` stops cleanly, starts again on the full disk,
survives a SIGKILL that leaves its -wal/-shm behind (no SIGBUS in any later command), and sales
resume once space is freed, with `verify` passing and no token issued twice."""

from __future__ import annotations

import signal

from agent.harness import free_port
from tests.conftest import ELEC, Kiosk, SmallDisk, kiosk_on
from tests.e2e.agent_proc import AgentProcess

BODY = {"service": "ELEC_BILL", "amount": "100", "fields": ELEC["fields"]}


def _refused(agent: AgentProcess, n: int) -> None:
    for _ in range(n):
        resp = agent.api("POST", "/api/transactions", json=BODY)
        assert resp.status_code == 507, resp.text
        assert resp.json()["error"] == "disk_full" and "free disk space" in resp.json()["detail"]
    codes = [a["code"] for a in agent.api("GET", "/api/status").json()["alerts"]]
    assert codes == ["disk_full", "not_enrolled"]  # this test kiosk never enrolled


def _cli_after_crash(k: Kiosk) -> None:
    """Every command after a crash on the full disk: a clear answer, never a signal."""
    for args in (["status"], ["verify"], ["txn", "list"]):
        proc = k.run(*args, process=True)
        assert proc.returncode in (0, 3), (args, proc.returncode, proc.stderr)  # -7 would be SIGBUS
        assert "Traceback" not in proc.stderr
    assert k.run("verify", process=True).returncode == 0


def test_run_on_a_full_disk(small_disk: SmallDisk, kiosk: Kiosk) -> None:
    port = free_port()
    k = kiosk_on(small_disk, kiosk, extra=f"[local_api]\nport = {port}\n")
    k.run("init", "--dev-leases", check=True)
    agent = AgentProcess(k, port=port).start()
    try:
        first = agent.api("POST", "/api/transactions", json=BODY)
        assert first.status_code == 201, first.text
        small_disk.fill()
        _refused(agent, 10)
        assert agent.stop(signal.SIGTERM)[0] == 0
        agent.start()  # again, on the still-full disk
        _refused(agent, 3)
        agent.stop(signal.SIGKILL)  # leaves the -wal and -shm behind
        _cli_after_crash(k)
        small_disk.release()
        agent.start()
        second = agent.api("POST", "/api/transactions", json=BODY)
        assert second.status_code == 201, second.text
        assert second.json()["token"] != first.json()["token"]
        assert agent.stop()[0] == 0
    finally:
        agent.kill()
    assert "Traceback" not in agent.log()
    assert k.json("verify")["count"] == 2
