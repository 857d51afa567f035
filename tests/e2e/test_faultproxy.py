"""The fault proxy does what each fault says, against a real server (the other
sync fault tests rely on it)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
import requests

from agent import syncing, transactions
from agent.ledger import open_ledger
from sync.errors import TransientSyncError
from tests.e2e.faultproxy import Fault, FaultProxy
from tests.e2e.syncworld import World, config_at, make_kiosk, realistic_txn


def test_synthesised_answers_and_drops(world: tuple[World, FaultProxy]) -> None:
    _w, proxy = world
    proxy.set_schedule([Fault("ratelimit", retry_after=30), Fault("error", status=502), Fault("drop")])
    s = requests.Session()
    r = s.get(proxy.url + "/healthz", timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert s.get(proxy.url + "/healthz", timeout=5).status_code == 502
    with pytest.raises(requests.ConnectionError):
        s.get(proxy.url + "/healthz", timeout=5)
    assert s.get(proxy.url + "/healthz", timeout=5).status_code == 200  # schedule used up: pass
    assert [x.upstream_status for x in proxy.seen[-4:]] == [None, None, None, 200]


def test_stall_times_the_client_out_and_offline_refuses(world: tuple[World, FaultProxy]) -> None:
    _w, proxy = world
    proxy.set_schedule([Fault("stall", seconds=0.5)])
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(proxy.url + "/healthz", timeout=0.1)
    assert time.monotonic() - t0 < 0.45
    proxy.offline = True
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(proxy.url + "/healthz", timeout=5)
    finally:
        proxy.offline = False


@pytest.mark.parametrize("kind", ["cut", "partial", "stall_forward"])
def test_answer_lost_after_the_server_committed(
    world: tuple[World, FaultProxy], tmp_path: Path, kind: str
) -> None:
    w, proxy = world
    kiosk = make_kiosk(tmp_path / "k")
    w.enroll(kiosk)
    cfg = config_at(kiosk, "p.toml", f'[server]\nurl = "{proxy.url}"\ntimeout_s = 0.2\n')
    with open_ledger(cfg) as led:
        rec = transactions.create(led, realistic_txn(random.Random(3)))
        engine = syncing.make_engine(cfg, led)
        assert engine is not None
        batch = engine.outbox.next_batch(10, 1 << 20)
        assert batch is not None
        proxy.set_schedule([Fault(kind, seconds=0.3, keep=0.7)], only="/v1/batches")
        with pytest.raises(TransientSyncError):
            engine.client.push(batch.prev_hash, batch.records)
        deadline = time.monotonic() + 10  # stall_forward delivers late: poll the server for it
        while not w.server_records(led.device_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(s, h) for s, h, _t, _f in w.server_records(led.device_id)] == [(1, rec["hash"])]
        assert led.outbox_counts()["sent"] == 1  # committed there, not acked here


def test_throttle_costs_what_the_link_would(world: tuple[World, FaultProxy]) -> None:
    w, _proxy = world
    with FaultProxy(w.server.port, bps=64_000, latency_s=0.05) as slow:
        s = requests.Session()
        t0 = time.monotonic()
        s.post(slow.url + "/healthz", data=b"x" * 8000, timeout=30)  # 405, but the body crossed the link
        took = time.monotonic() - t0
        # 8 KB at 64 kbit/s = 1 s up, one round trip for the handshake, 50 ms each way
        assert 1.15 < took < 3.0, took
        assert slow.bytes_up > 8000 and slow.head_bytes_up < 400
