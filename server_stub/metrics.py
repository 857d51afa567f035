"""Prometheus metrics (``prometheus_client``), served at ``GET /metrics``.

- ``kiosk_server_http_requests_total{route, method, status}``: every answer, by route template
  (``/v1/tokens/{token}``, never the token itself; ``unmatched`` for a path no route knows),
  counted by :class:`MetricsMiddleware`, the outermost layer, so 413s and 415s count too (the
  route template comes from :class:`RouteProbe`, the innermost).
- ``kiosk_server_rate_limited_total{route}``: the 429s among them.
- ``kiosk_server_records_total{status, reason}``: records of batches, by ack (``accepted``,
  ``duplicate``, ``rejected`` with its reason; ``reason="none"`` otherwise), counted in the route.
- ``kiosk_server_ingest_seconds``: histogram of a batch's ingest and commit.
- ``kiosk_server_lease_grants_total`` and ``kiosk_server_lease_serials_total``: blocks granted.
- ``kiosk_server_kiosks{state}``: kiosks by state, computed from the database at each scrape
  (``online``: a heartbeat within ``stale_after_minutes``; ``stale``: older; ``offline``: none for
  ``offline_after_hours`` or never; ``not_enrolled``; ``revoked``: every device revoked), by the
  console's rule (:func:`server_stub.console.network.kiosk_states`).

Several workers (``serve --workers N``) share their counts through prometheus_client's
multiprocess mode: ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder (or empties the
one the environment names) before the workers start, and a scrape sums every worker's file. With
one worker the counts live in the app's own registry.

Who may read it: with ``metrics_token`` set, a caller with ``Authorization: Bearer <token>``;
without, loopback callers only (a scraper on the same host, or a proxy that adds the token).
"""

from __future__ import annotations

import collections
import hmac
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from server_stub.config import ServerConfig
from server_stub.db import read
from server_stub.errors import Forbidden, Unauthorized
from sync.wire.protocol import RecordAck

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KIOSK_STATES = ("online", "stale", "offline", "not_enrolled", "revoked")
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
INGEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The server's counters, on a registry of their own (one per app, so tests can count)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "kiosk_server_http_requests", "HTTP answers", ["route", "method", "status"], registry=r
        )
        self.rate_limited = Counter("kiosk_server_rate_limited", "429 answers", ["route"], registry=r)
        self.records = Counter(
            "kiosk_server_records", "records of batches by ack", ["status", "reason"], registry=r
        )
        self.ingest_seconds = Histogram(
            "kiosk_server_ingest_seconds",
            "ingest and commit of one batch",
            buckets=INGEST_BUCKETS,
            registry=r,
        )
        self.lease_grants = Counter("kiosk_server_lease_grants", "lease blocks granted", registry=r)
        self.lease_serials = Counter("kiosk_server_lease_serials", "serials granted in leases", registry=r)

    def answered(self, route: str, method: str, status: int) -> None:
        self.requests.labels(route, method, str(status)).inc()
        if status == 429:
            self.rate_limited.labels(route).inc()

    def acks(self, acks: Iterable[RecordAck], seconds: float) -> None:
        self.ingest_seconds.observe(seconds)
        # counted first: a labels() look-up and a locked inc() per ack cost ~3 us a record
        for (status, reason), n in collections.Counter((a.status, a.reason or "none") for a in acks).items():
            self.records.labels(status, reason).inc(n)

    def leases(self, blocks: int, serials: int) -> None:
        self.lease_grants.inc(blocks)
        self.lease_serials.inc(serials)


async def app_metrics(request: Request) -> Metrics:
    """``async``: no thread-pool hop for an attribute read (see ``routes.deps.app_state``)."""
    m: Metrics = request.app.state.metrics
    return m


MetricsDep = Annotated[Metrics, Depends(app_metrics)]


class Timer:
    """``with Timer() as t: ...; t.seconds``: monotonic, for the ingest histogram."""

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


ROUTE_BOX = "kiosk.metrics_route"  # scope key: where RouteProbe leaves the route that answered


class RouteProbe:
    """Innermost: after the router has answered, leaves the route it chose (``scope["route"]``) in
    the box the outer :class:`MetricsMiddleware` put in the scope (a middleware between them may
    pass on a copy of the scope; the box is the same object in every copy)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            box = scope.get(ROUTE_BOX)
            if box is not None:
                box.append(getattr(scope.get("route"), "path", None))


class MetricsMiddleware:
    """Outermost: counts every HTTP answer by route template, method and status (a crash counts as
    500; a path no route knows as ``unmatched``)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        box: list[str | None] = []
        scope[ROUTE_BOX] = box

        async def counted(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            route = box[-1] if box and box[-1] else "unmatched"
            self.metrics.answered(str(route), scope["method"], status)


class KioskStates(Collector):
    """``kiosk_server_kiosks{state}``, read from the database when scraped."""

    def __init__(self, engine: Engine, config: ServerConfig, now_ms: Callable[[], int]) -> None:
        self.engine, self.config, self.now_ms = engine, config, now_ms

    def collect(self) -> Iterator[Metric]:
        from server_stub.console import network  # the console's rule, so both say the same

        with read(self.engine) as conn:
            states = network.kiosk_states(conn, self.config, self.now_ms(), detail=False)
        counts = network.glance(states).total
        family = GaugeMetricFamily(
            "kiosk_server_kiosks", "kiosks by state (last heartbeat)", labels=["state"]
        )
        for state in KIOSK_STATES:
            family.add_metric([state], counts[state])
        yield family


def render(metrics: Metrics, engine: Engine, config: ServerConfig, now_ms: Callable[[], int]) -> bytes:
    """The exposition text: this worker's registry, or every worker's files in multiprocess mode."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess():
        MultiProcessCollector(registry)
    else:
        registry.register(_Forward(metrics.registry))
    registry.register(KioskStates(engine, config, now_ms))
    return generate_latest(registry)


class _Forward(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def check_reader(client_host: str | None, authorization: str | None, token: str) -> None:
    """Who may read /metrics: the token's holder when one is set, else loopback callers only."""
    if token:
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized(
                "GET /metrics needs the metrics token (Authorization: Bearer ...)", code="unauthorized"
            )
        return
    if client_host not in LOOPBACK:
        raise Forbidden("/metrics is served to loopback callers only; set a metrics token", code="forbidden")


def prepare_multiprocess_dir(env: dict[str, str] | os._Environ[str], make_dir: Callable[[], str]) -> Path:
    """Before the workers start: the folder the environment names, emptied of old counts, or a
    fresh one from ``make_dir``; exported in ``env`` for the workers."""
    folder = Path(env.get(MULTIPROC_ENV) or make_dir())
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    env[MULTIPROC_ENV] = str(folder)
    return folder
