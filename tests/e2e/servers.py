"""A real central server as a separate process (kiosk-server serve) on a free loopback port,
with its own SQLite file and an LSP ready; it can be stopped, killed and started again on the
same port and data. The process handling is the shared harness (agent/harness.py)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from agent.harness import ServerProcess as _Server


class ServerProcess(_Server):
    def __init__(self, root: Path, *, block_size: int = 1000, rate_limit: float = 0.0) -> None:
        super().__init__(
            root,
            serve_args=["--block-size", str(block_size), "--rate-limit", str(rate_limit)],
            env={k: v for k, v in os.environ.items() if not k.startswith("KIOSK_")},
        )
        self.cli("init")
        self.lsp = self.cli_json("lsp", "add", "--name", "Test LSP")

    def start(self, deadline_s: float = 30.0) -> ServerProcess:
        try:
            super().start(deadline_s)
        except AgentError as exc:
            raise AssertionError(f"{exc.message}: {self.tail_log()}") from None
        return self

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(signal.SIGKILL)

    def new_kiosk(self, name: str = "Shop") -> dict[str, str]:
        doc: dict[str, str] = self.cli_json("kiosk", "add", "--lsp", self.lsp["lsp_id"], "--name", name)
        return doc

    def reconcile(self, date: str) -> Any:
        return json.loads(
            self.cli("reconcile", "--lsp", self.lsp["lsp_id"], "--date", date, "--format", "json")
        )
