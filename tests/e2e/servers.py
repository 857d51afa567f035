"""A real central server as a separate process (kiosk-server serve) on a free
loopback port, with its own SQLite file; it can be stopped, killed and
started again on the same port and data."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, root: Path, *, block_size: int = 1000, rate_limit: float = 0.0) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.db = f"sqlite:///{root / 'server.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.block_size = block_size
        self.rate_limit = rate_limit
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")}
        self.cli("init")
        self.lsp = self.cli_json("lsp", "add", "--name", "Test LSP")

    def argv(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).with_name("kiosk-server")), "--db", self.db, *args]

    def cli(self, *args: str) -> str:
        proc = subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"kiosk-server {args} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    def new_kiosk(self, name: str = "Shop") -> dict[str, str]:
        doc: dict[str, str] = self.cli_json("kiosk", "add", "--lsp", self.lsp["lsp_id"], "--name", name)
        return doc

    def start(self) -> ServerProcess:
        assert self.proc is None
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.argv(
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--block-size",
                str(self.block_size),
                "--rate-limit",
                str(self.rate_limit),
                "--log-level",
                "warning",
            ),
            stdout=log,
            stderr=log,
            env=self.env,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}: {self.tail_log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.02)  # polling with a deadline
        raise AssertionError("server did not become healthy")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.proc = None

    def tail_log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)

    def reconcile(self, date: str) -> Any:
        return json.loads(
            self.cli("reconcile", "--lsp", self.lsp["lsp_id"], "--date", date, "--format", "json")
        )
