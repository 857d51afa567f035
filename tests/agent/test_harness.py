"""agent/harness.py: the server as a child process, shared by the demo, e2e tests and benches."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from agent.errors import AgentError
from agent.harness import ServerProcess, free_port


def test_free_port_is_free_on_loopback() -> None:
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # nothing holds it


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
