"""e2e fixtures: a kiosk ready for `run` on a free port, offline (dev leases) or
enrolled with a server that is then stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.harness import free_port
from tests.conftest import Kiosk
from tests.e2e.agent_proc import AgentProcess, with_port
from tests.e2e.faultproxy import FaultProxy
from tests.e2e.servers import ServerProcess
from tests.e2e.syncworld import World

WATER = {"service": "WATER_BILL", "amount": "120.50", "fields": {"consumer_number": "3345678901"}}
FAST_SYNC = "[sync]\ninterval_s = 5\nbackoff_base_s = 0.2\nbackoff_cap_s = 1.0\n"


@pytest.fixture
def agent(kiosk: Kiosk) -> Iterator[AgentProcess]:
    """Not started; initialised with development leases, not enrolled."""
    port = free_port()
    with_port(kiosk, port)
    kiosk.run("init", "--dev-leases", check=True)
    a = AgentProcess(kiosk, port=port)
    yield a
    a.kill()


@pytest.fixture
def enrolled_agent(kiosk: Kiosk, tmp_path: Path) -> Iterator[tuple[AgentProcess, ServerProcess]]:
    """Enrolled with a server that is stopped again (start it with `with server:`); a fast sync
    interval. The agent is not started."""
    port = free_port()
    with_port(kiosk, port, FAST_SYNC)
    kiosk.run("init", check=True)
    server = ServerProcess(tmp_path / "srv")
    with server:
        kiosk.json("enroll", "--server", server.url, "--code", server.new_kiosk()["enrollment_code"])
    a = AgentProcess(kiosk, port=port)
    yield a, server
    a.kill()
    server.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, FaultProxy]]:
    """One server per test module, with a pass-through fault proxy in front of it."""
    with ServerProcess(tmp_path_factory.mktemp("server"), rate_limit=0) as srv:
        w = World(srv)
        with FaultProxy(srv.port) as proxy:
            yield w, proxy
        w.close()
