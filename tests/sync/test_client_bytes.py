"""SyncClient's byte counters are the real TCP payload: they match, byte for byte,
what a proxy between the client and a real server sees (request lines, every
header including the ones requests and http.client add, compressed bodies)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from agent import syncing, transactions
from agent.ledger import open_ledger
from sync.errors import SyncError
from tests.e2e.faultproxy import FaultProxy
from tests.e2e.servers import ServerProcess
from tests.e2e.syncworld import World, config_at, make_kiosk, realistic_txn


def test_counters_match_the_bytes_on_the_wire(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "server", rate_limit=0) as srv, FaultProxy(srv.port) as proxy:
        w = World(srv)
        kiosk = make_kiosk(tmp_path / "k")
        w.enroll(kiosk)
        cfg = config_at(kiosk, "p.toml", f'[server]\nurl = "{proxy.url}"\n')
        with open_ledger(cfg) as led:
            rng = random.Random(5)
            for _ in range(300):
                transactions.create(led, realistic_txn(rng))
            engine = syncing.make_engine(cfg, led)
            assert engine is not None
            proxy.reset_counters()
            report = engine.run_once()  # batches (zstd up, gzip down), leases, catalog
            assert report.error is None and report.accepted == 300
            with pytest.raises(SyncError):
                engine.client.token_status("NOPE" * 30)  # a 4xx answer counts too
            assert (engine.client.bytes_sent, engine.client.bytes_received) == (
                proxy.bytes_up,
                proxy.bytes_down,
            )
        w.close()
