"""`kiosk-agent run` as a real process: started, polled until /healthz, signalled."""

from __future__ import annotations

import signal
import subprocess
import time
from typing import Any

import requests

from agent.harness import free_port
from tests.conftest import Kiosk


class AgentProcess:
    def __init__(self, kiosk: Kiosk, *, port: int | None = None) -> None:
        self.kiosk = kiosk
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None
        self.session = requests.Session()

    def start(self, *extra: str) -> AgentProcess:
        log = open(self.kiosk.root / "run.log", "a")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.kiosk.argv("run", *extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.kiosk.env,
        )
        log.close()
        self.started_at = time.monotonic()
        self.wait_ready()
        return self

    def wait_ready(self, deadline_s: float = 30) -> None:
        assert self.proc is not None
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"run exited {self.proc.returncode}: {self.log()[-1500:]}")
            try:
                if self.session.get(self.url + "/healthz", timeout=1).status_code == 200:
                    self.ready_after = time.monotonic() - self.started_at
                    return
            except requests.RequestException:
                pass
            time.sleep(0.02)  # polling with a deadline
        raise AssertionError("run did not become ready")

    @property
    def token(self) -> str:
        return (self.kiosk.data_dir / "api.token").read_text().strip()

    def api(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - t0

    def log(self) -> str:
        return (self.kiosk.root / "run.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def with_port(kiosk: Kiosk, port: int, extra: str = "") -> None:
    kiosk.config_path.write_text(f'[agent]\ndata_dir = "data"\n[local_api]\nport = {port}\n{extra}')
