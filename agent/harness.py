"""The central server as a child process, for `kiosk-agent demo`, the end-to-end tests and the
benches: a free loopback port, `kiosk-server` started by its command line, polled until
``/healthz`` answers, stopped (and killed if it will not stop).

It lives in the shipped package because the demo uses it; it imports nothing of
``server_stub`` (the server runs in its own interpreter), so the agent keeps its one-way imports.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from agent.errors import AgentError

HOST = "127.0.0.1"
# `kiosk-server` without relying on the console script being on PATH (a source checkout, a venv
# not activated): the same interpreter, the same entry point, the same program name.
SERVER_COMMAND = (
    sys.executable,
    "-c",
    "import sys; sys.argv[0] = 'kiosk-server'; from server_stub.cli import main; main()",
)


PORTS_ENV = "KIOSK_FREE_PORTS"  # "LOW-HIGH": where free_port looks (test workers side by side)


_last_port = 0  # the last port free_port handed out from its range


def _ports(low: int, high: int) -> list[int]:
    """The range from the port after the last one handed out (from a random one at first:
    processes differ), wrapping round: one process never hands out the same port twice in a row
    (a port is only free until its server binds it)."""
    size = high - low + 1
    start = _last_port + 1 if low <= _last_port <= high else random.randint(low, high)
    return [low + (start - low + i) % size for i in range(size)]


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now. The OS picks it, unless ``$KIOSK_FREE_PORTS`` is
    ``LOW-HIGH``: then the next free one of that range. Test processes running side by side are
    each given their own range (tests/conftest.py), so two of them never pick the same port in the
    moment before either binds it."""
    span = os.environ.get(PORTS_ENV)
    if not span:
        with socket.socket() as s:
            s.bind((host, 0))
            return int(s.getsockname()[1])
    low, high = (int(part) for part in span.split("-", 1))
    global _last_port
    for port in _ports(low, high):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _last_port = port
        return port
    raise AgentError(f"no free port in {PORTS_ENV}={span}")


def wait_healthy(url: str, proc: subprocess.Popen[Any] | None = None, *, deadline_s: float = 30.0) -> None:
    """Poll ``url + '/healthz'`` until it answers 200; fail at once if ``proc`` exits first."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AgentError(f"the process serving {url} exited with {proc.returncode}")
        try:
            if requests.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)  # polling with a deadline
    raise AgentError(f"{url} did not answer /healthz within {deadline_s:g} s")


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> int:
    """Send ``sig`` (if it still runs) and reap it; SIGKILL if it has not exited within ``timeout_s``."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class ServerProcess:
    """`kiosk-server` with its own database under ``root`` on a free loopback port. It can be
    stopped, killed and started again on the same port and data; a context manager stops it."""

    def __init__(
        self,
        root: Path,
        *,
        db: str | None = None,
        serve_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.db = db or f"sqlite:///{root / 'server.db'}"
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log = root / "server.log"
        self.serve_args = list(serve_args)
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self, *args: str) -> list[str]:
        return [*SERVER_COMMAND, "--db", self.db, *args]

    def cli(self, *args: str) -> str:
        """One admin command (``init``, ``lsp add``, ``reconcile`` ...); its standard output."""
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=120)
        if proc.returncode != 0:
            raise AgentError(
                f"kiosk-server {' '.join(args[:2])} exited {proc.returncode}: {proc.stderr[-800:]}"
            )
        return proc.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def start(self, deadline_s: float = 30.0) -> ServerProcess:
        if self.proc is not None:
            raise AgentError(f"the server on {self.url} is already running")
        serve = ["serve", "--host", HOST, "--port", str(self.port), "--log-level", "warning"]
        if "--workers" not in self.serve_args:  # `serve` defaults to one per core; a test needs one
            serve += ["--workers", "1"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(*serve, *self.serve_args), stdout=log, stderr=log, env=self.env
            )
        try:
            wait_healthy(self.url, self.proc, deadline_s=deadline_s)
        except AgentError as exc:
            self.stop(signal.SIGKILL)
            raise AgentError(f"the server did not start ({exc.message}); see {self.log}") from None
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None

    def tail_log(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["HOST", "SERVER_COMMAND", "ServerProcess", "free_port", "stop_process", "wait_healthy"]
