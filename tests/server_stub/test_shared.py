"""Rate limits that hold across hosts: two `kiosk-server serve` processes ("hosts") on one
PostgreSQL and one Redis share every bucket; without Redis a host keeps its own."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis

from agent.harness import stop_process
from server_stub import admin
from server_stub.config import ServerConfig
from server_stub.db import make_engine
from server_stub.errors import RateLimited, Unavailable
from server_stub.shared import MemoryLimiter, RedisCounter, RedisLimiter
from tests.server_stub.conftest import PG_SKIP, _db_url, free_port, kiosk_server_argv, wait_healthy
from tests.server_stub.kiosk_fake import FakeKiosk

REDIS_URL = os.environ.get("KIOSK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis() -> redis.Redis:
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"needs Redis at {REDIS_URL} (KIOSK_TEST_REDIS_URL)")
    return client


def test_a_redis_bucket_refuses_beyond_its_burst_and_refills_at_its_rate() -> None:
    client = _redis()
    bucket = RedisLimiter(client, f"test:{secrets.token_hex(4)}:", rate_per_s=2.0, burst=3)
    now = 1_000_000.0
    for _ in range(3):
        bucket.take("dev", now)
    with pytest.raises(RateLimited) as refused:
        bucket.take("dev", now)
    assert refused.value.retry_after_s == 1
    bucket.take("dev", now + 0.5)  # one token back after half a second at 2/s
    bucket.take("other", now)  # another key has its own bucket


def test_a_redis_window_counter_counts_per_window() -> None:
    counter = RedisCounter(_redis(), f"test:{secrets.token_hex(4)}:")
    assert [counter.add("k", 60, 120.0) for _ in range(3)] == [1, 2, 3]
    assert counter.add("k", 60, 130.0, 0) == 3
    assert counter.add("k", 60, 180.0) == 1  # the next minute


def test_redis_down_is_a_transient_503_not_a_crash() -> None:
    dead = redis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    with pytest.raises(Unavailable):
        RedisLimiter(dead, "x:", 1.0, 1).take("dev", 0.0)


def test_without_redis_a_host_needs_only_its_database() -> None:
    config = ServerConfig()
    assert config.shared_state == ""
    bucket = MemoryLimiter(1.0, 2)
    bucket.take("dev", 0.0)
    bucket.take("dev", 0.0)
    with pytest.raises(RateLimited):
        bucket.take("dev", 0.0)


@contextmanager
def _host(db_url: str, keys: Path, log: Path, *flags: str) -> Iterator[str]:
    port = free_port()
    argv = kiosk_server_argv(db_url, "--keys-dir", str(keys), "serve", "--port", str(port), *flags)
    argv += ["--workers", "1", "--log-level", "warning"]
    env = dict(os.environ, KIOSK_SERVER_RATE_BURST="4")
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, 60, proc)
        yield url
    finally:
        stop_process(proc, timeout_s=30)  # SIGTERM, then SIGKILL after 30 s


def _heartbeats(fake: FakeKiosk, urls: list[str], n: int) -> tuple[Counter[int], float]:
    """``n`` heartbeats from one kiosk, alternating between the hosts; statuses and seconds taken."""
    got: Counter[int] = Counter()
    t0 = time.monotonic()
    for i in range(n):
        fake.base_url = urls[i % len(urls)]
        got[fake.call("POST", "/v1/heartbeat", {"head_seq": 0, "queue_depth": 0}).status_code] += 1
    return got, time.monotonic() - t0


@contextmanager
def _two_hosts(tmp_path: Path, kiosks: int, *flags: str) -> Iterator[tuple[list[str], list[FakeKiosk]]]:
    """Two serve processes on one fresh PostgreSQL schema, and ``kiosks`` enrolled kiosks."""
    gen = _db_url("postgresql", tmp_path)
    db_url = next(gen)
    engine = make_engine(db_url)
    try:
        admin.init_server(engine, int(time.time() * 1000), tmp_path / "keys")
        with engine.begin() as conn:
            lsp = admin.create_lsp(conn, "P", 0).lsp_id
            codes = [
                admin.create_kiosk(conn, lsp, f"k{i}", int(time.time() * 1000), 1).enrollment_code
                for i in range(kiosks)
            ]
        with ExitStack() as stack:
            urls = [
                stack.enter_context(_host(db_url, tmp_path / "keys", tmp_path / f"host{i}.log", *flags))
                for i in range(2)
            ]
            fakes = [FakeKiosk(urls[0]) for _ in codes]
            for fake, code in zip(fakes, codes, strict=True):
                fake.enroll(code)
            yield urls, fakes
    finally:
        engine.dispose()
        with pytest.raises(StopIteration):
            next(gen)


@PG_SKIP
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "each-host-alone"])
def test_two_hosts_on_one_postgres_and_one_redis_share_the_per_device_limit(
    tmp_path: Path, shared: bool
) -> None:
    _redis()
    flags = ["--rate-limit", "0.5"] + (["--shared-state", REDIS_URL] if shared else [])
    with _two_hosts(tmp_path, 1, *flags) as (urls, (fake,)):
        got, took = _heartbeats(fake, urls, 16)
    allowed = 4 + int(took * 0.5) + 1  # the burst, what refilled meanwhile, one of slack
    if shared:
        assert got[200] <= allowed and got[429] >= 16 - allowed, (got, took)
    else:  # each host keeps its own bucket: twice the burst gets through
        assert got[200] >= 8, got
    assert set(got) <= {200, 429}


@PG_SKIP
def test_two_hosts_share_the_global_limit_of_all_devices_together(tmp_path: Path) -> None:
    _redis()
    db = f"redis://127.0.0.1:6379/{secrets.choice(range(8, 16))}"  # its own "all-devices" bucket
    redis.Redis.from_url(db).delete("kiosk:global:all-devices")
    flags = ["--rate-limit", "0", "--global-rate-limit", "1", "--shared-state", db]
    with _two_hosts(tmp_path, 3, *flags) as (urls, fakes):
        total: Counter[int] = Counter()
        t0 = time.monotonic()
        for fake in fakes * 3:
            got, _ = _heartbeats(fake, urls, 2)
            total.update(got)
        took = time.monotonic() - t0
    assert total[200] <= 1 + int(took) + 1, (total, took)  # 1 deep, 1 a second, one of slack
    assert total[429] >= 18 - (2 + int(took)), total
