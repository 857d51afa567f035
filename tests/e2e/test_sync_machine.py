"""A hypothesis state machine over two kiosks (A, B) and one real server process:
new transactions (sometimes with every token block spent), offline / online,
crashes (the in-memory engine dropped and the ledger reopened, sometimes with
records left 'sent', sometimes after the server committed them), syncs through
the fault proxy, server restarts on the same database. Invariants after every
step: each ledger verifies, the server never holds a record a ledger lacks,
every acked record is on the server, no token is used twice across the kiosks.
At the end a clean sync leaves the server holding exactly each ledger."""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agent import syncing, transactions
from agent.ledger import Ledger, open_ledger, verify
from sync.errors import SyncError
from tests.e2e.faultproxy import FaultProxy, random_faults
from tests.e2e.servers import ServerProcess
from tests.e2e.syncworld import (
    FakeClock,
    World,
    config_at,
    exhaust_leases,
    ledger_view,
    make_kiosk,
    realistic_txn,
)

TIMEOUT_S = 0.1
AGENTS = st.sampled_from(["A", "B"])


class _Agent:
    def __init__(self, root: Path, world: World, proxy: FaultProxy) -> None:
        self.proxy = proxy
        kiosk = make_kiosk(root)
        world.enroll(kiosk, proxy.url)
        self.cfg = config_at(
            kiosk,
            "machine.toml",
            f"[server]\ntimeout_s = {TIMEOUT_S}\n[sync]\nbatch_max_records = 3\n"
            "backoff_base_s = 0.01\nbackoff_cap_s = 1.0\n",
        )
        self.ledger: Ledger = open_ledger(self.cfg)
        self.device_id = self.ledger.device_id

    def engine(self) -> Any:
        engine = syncing.make_engine(self.cfg, self.ledger, sleep=lambda _s: None)
        assert engine is not None
        return engine

    def reopen(self) -> None:
        self.ledger.close()
        self.ledger = open_ledger(self.cfg)


class SyncMachine(RuleBasedStateMachine):
    server: ServerProcess
    world: World

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="syncmachine-"))
        self.proxies = {name: FaultProxy(self.server.port).start() for name in "AB"}
        self.agents = {name: _Agent(self.tmp / name, self.world, self.proxies[name]) for name in "AB"}
        self.restarts = 0

    def teardown(self) -> None:
        agents = getattr(self, "agents", {})
        try:
            if agents:
                if self.server.proc is None:
                    self.server.start()
                for name, agent in agents.items():
                    self.proxies[name].offline = False
                    self.proxies[name].set_schedule([])
                    clock = FakeClock()  # the backoff (capped at 1 s) advances it: ~100 rounds at most
                    engine = syncing.make_engine(agent.cfg, agent.ledger, sleep=clock.sleep)
                    assert engine is not None
                    report = engine.drain(50, clock=clock)
                    assert report.error is None and report.pending == 0, report.public()
                    view = ledger_view(agent.ledger)
                    assert [s for *_x, s in view] == ["acked"] * len(view)
                    assert [(s, h, t, f) for s, h, t, f, _st in view] == self.world.server_records(
                        agent.device_id
                    )
                    assert self.world.quarantined(agent.device_id) == []
                self.tokens_unique()
        finally:
            for agent in agents.values():
                agent.ledger.close()
            for proxy in getattr(self, "proxies", {}).values():
                proxy.stop()
            shutil.rmtree(getattr(self, "tmp", ""), ignore_errors=True)

    # -- rules ------------------------------------------------------------------
    @rule(name=AGENTS, n=st.integers(1, 4), spent=st.booleans())
    def new_txns(self, name: str, n: int, spent: bool) -> None:
        agent = self.agents[name]
        if spent and self.rng.random() < 0.3:
            exhaust_leases(agent.ledger)  # long offline: provisional tokens
        for _ in range(n):
            transactions.create(agent.ledger, realistic_txn(self.rng))

    @rule(name=AGENTS)
    def go_offline(self, name: str) -> None:
        self.proxies[name].offline = True

    @rule(name=AGENTS)
    def go_online(self, name: str) -> None:
        self.proxies[name].offline = False

    @rule(name=AGENTS, leave=st.sampled_from(["nothing", "sent", "sent_and_committed"]))
    def crash(self, name: str, leave: str) -> None:
        agent = self.agents[name]
        if leave != "nothing":
            engine = agent.engine()
            batch = engine.outbox.next_batch(3, 1 << 20)  # marked 'sent' in the ledger
            if batch is not None and leave == "sent_and_committed":
                try:
                    engine.client.push(batch.prev_hash, batch.records)  # the answer is never stored
                except SyncError:
                    pass
        agent.reopen()

    @rule(name=AGENTS, faults=st.integers(0, 4), seed=st.integers(0, 2**16))
    def sync(self, name: str, faults: int, seed: int) -> None:
        agent = self.agents[name]
        self.proxies[name].set_schedule(random_faults(random.Random(seed), faults, stall_s=TIMEOUT_S * 2.5))
        report = agent.engine().run_once()
        online = not self.proxies[name].offline and self.server.proc is not None
        if online and faults == 0 and report.error is None:
            assert report.pending == 0

    @precondition(lambda self: self.restarts < 1)
    @rule()
    def restart_server(self) -> None:
        self.restarts += 1
        self.server.stop()
        self.server.start()

    # -- invariants -------------------------------------------------------------
    @invariant()
    def ledgers_verify(self) -> None:
        for agent in getattr(self, "agents", {}).values():
            assert verify(agent.ledger).ok

    @invariant()
    def server_within_ledgers(self) -> None:
        for agent in getattr(self, "agents", {}).values():
            view = ledger_view(agent.ledger)
            on_server = {(s, h) for s, h, _t, _f in self.world.server_records(agent.device_id)}
            assert on_server <= {(s, h) for s, h, *_ in view}, "the server holds a record the ledger lacks"
            acked = {(s, h) for s, h, _t, _f, st_ in view if st_ == "acked"}
            assert acked <= on_server, "an acked record is not on the server"

    @invariant()
    def tokens_unique(self) -> None:
        seen: set[str] = set()
        for agent in getattr(self, "agents", {}).values():
            for _s, _h, token, final, _st in ledger_view(agent.ledger):
                for t in {x for x in (token, final) if x is not None}:
                    assert t not in seen, f"token {t} used twice"
                    seen.add(t)
        assert all(len(v) == 1 for v in self.world.token_owners().values())


@pytest.fixture(scope="module")
def machine_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ServerProcess(tmp_path_factory.mktemp("server"), rate_limit=0) as srv:
        world = World(srv)
        yield srv, world
        world.close()


def test_sync_state_machine(machine_server: Any) -> None:
    SyncMachine.server, SyncMachine.world = machine_server
    SyncMachine.TestCase.settings = settings(
        max_examples=20,
        stateful_step_count=18,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    SyncMachine.TestCase().runTest()
