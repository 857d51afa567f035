"""agent/harness.py: the server as a child process, shared by the demo, e2e tests and benches."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from agent.errors import AgentError
from agent.harness import PORTS_ENV, ServerProcess, free_port


def test_free_port_is_free_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing holds it


def test_free_port_walks_its_range_and_skips_a_port_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        low = taken - 1 if taken > 1024 else taken
        monkeypatch.setenv(PORTS_ENV, f"{low}-{low + 2}")
        picks = [free_port() for _ in range(6)]
    assert taken not in picks  # a port something listens on is never handed out
    assert set(picks) <= {low, low + 1, low + 2}
    assert all(a != b for a, b in zip(picks, picks[1:], strict=False))  # never the same twice in a row


def test_free_port_says_when_its_range_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setenv(PORTS_ENV, f"{taken}-{taken}")
        with pytest.raises(AgentError, match=PORTS_ENV):
            free_port()


def test_server_starts_answers_and_is_gone_after_the_block(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path)
    srv.cli("init")
    assert srv.cli_json("lsp", "add", "--name", "LSP")["lsp_id"]
    with srv:
        assert requests.get(srv.url + "/healthz", timeout=5).status_code == 200
    assert srv.proc is None
    with pytest.raises(requests.ConnectionError):
        requests.get(srv.url + "/healthz", timeout=5)
    assert "Traceback" not in srv.tail_log()


def test_a_server_that_exits_fails_fast_with_its_log(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path, serve_args=["--no-such-option"])
    t0 = time.monotonic()
    with pytest.raises(AgentError, match="did not start.*server.log"):
        srv.start(deadline_s=60)
    assert time.monotonic() - t0 < 30 and srv.proc is None  # it saw the exit, not the deadline
    assert "no-such-option" in srv.tail_log()


def test_a_failing_admin_command_says_which_and_why(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="kiosk-server lsp add exited 2"):
        ServerProcess(tmp_path).cli("lsp", "add")  # --name missing
