"""The HTTP API (FastAPI): the app's state, the routers of :mod:`server_stub.routes`, the error
handlers and the body guard. Handlers are thin: authenticate, call one module, return a model.

The server's keys are loaded here, once, before the first request (:mod:`server_stub.keys`): a
request never reads them from storage, so no handler opens a second connection for them."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from sqlalchemy.engine import Engine

from server_stub.admission import Admission, Gate
from server_stub.auth import DeviceAuthenticator
from server_stub.bodies import BodyGuard
from server_stub.config import ENV_CONFIG_JSON, ServerConfig
from server_stub.console import ROUTERS as CONSOLE_ROUTERS
from server_stub.db import is_postgres, make_engine
from server_stub.fastbatch import BatchFastPath
from server_stub.fastlease import AsyncPool, LeaseFastPath
from server_stub.keys import KeySource, ServerKeys, load_keys
from server_stub.metrics import Metrics, MetricsMiddleware, RouteProbe
from server_stub.routes import ROUTERS, AppState, handlers
from server_stub.routes.deps import document_signing
from server_stub.shared import open_shared_state


def create_app(
    config: ServerConfig,
    engine: Engine | None = None,
    clock: Callable[[], float] = time.time,
    keys: ServerKeys | None = None,
) -> FastAPI:
    """The app on ``config``; ``keys`` default to the key files / environment (ConfigError when
    missing: run ``kiosk-server init``)."""
    keys = keys or load_keys(KeySource.at(config.keys_path()))
    engine = engine or make_engine(config.db, connections=pool_size(config))
    shared = open_shared_state(config, engine)
    app = FastAPI(
        title="kiosk-agent central server",
        version="1",
        description="Enrollment, token leases, signed idempotent ingest and reconciliation.",
        lifespan=_threads(config),
    )
    app.state.kiosk = AppState(
        config=config,
        engine=engine,
        clock=clock,
        auth=DeviceAuthenticator(config.max_skew_s, shared.limiter, shared.global_limiter),
        keys=keys,
        counter=shared.counter,
    )
    handlers.install(app)
    for router in (*ROUTERS, *CONSOLE_ROUTERS):
        app.include_router(router)
    document_signing(app)
    app.add_middleware(RouteProbe)  # innermost: tells MetricsMiddleware which route answered
    app.state.metrics = Metrics()  # outermost: every answer counts, 413s, 415s and shed 429s too
    # A kiosk's batch answered without the framework, in threads of its own.
    app.state.batch_threads = ThreadPoolExecutor(pool_size(config), thread_name_prefix="batch")
    app.add_middleware(
        BatchFastPath, state=app.state.kiosk, metrics=app.state.metrics, threads=app.state.batch_threads
    )
    app.add_middleware(BodyGuard, max_bytes=config.max_body_bytes)
    if is_postgres(engine):  # the usual lease request answered in the event loop, in one statement
        app.state.lease_pool = AsyncPool(engine)  # closed by the lifespan
        app.add_middleware(
            LeaseFastPath, state=app.state.kiosk, metrics=app.state.metrics, pool=app.state.lease_pool
        )
    # Acks of a 500-record batch are ~30 KB of JSON and compress ~15x: on a 2G link the answer
    # costs as much as the request unless it is compressed too.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    # Outermost: a request beyond what the worker can take is answered before anything else runs.
    app.add_middleware(Admission, gate=Gate(config.max_in_flight, config.queue_wait_s))
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def pool_size(config: ServerConfig) -> int:
    """Database connections per worker: one per request slot, and two for health checks."""
    return config.max_in_flight + 2


def _threads(config: ServerConfig) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Handlers run in anyio's thread pool: as many threads as connections, so a thread never
    waits for a connection (a pool wait would be a 503) and no thread idles on the GIL (the batch
    fast path's pool is as big; admission lets no more requests run at once than there are
    connections). At the end the lease fast path's connections are closed (the batch threads end
    with the app: an idle executor's threads exit when it is collected)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = pool_size(config)
        yield
        if (pool := getattr(app.state, "lease_pool", None)) is not None:
            await pool.close()

    return lifespan


def create_app_from_env() -> FastAPI:
    """uvicorn factory for ``serve --workers N``: the CLI passes the config in the environment."""
    text = os.environ.get(ENV_CONFIG_JSON)
    config = ServerConfig.from_json(text) if text else ServerConfig.from_env()
    return create_app(config)
