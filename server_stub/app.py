"""The HTTP API (FastAPI). Handlers are thin: authenticate, call one module, return a model."""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from server_stub import catalog, reconcile
from server_stub.auth import Device, DeviceAuthenticator, RateLimiter, authenticate_lsp, check_kiosk_of_lsp
from server_stub.bodies import WIRE_DIGEST_KEY, BodyGuard
from server_stub.config import ENV_CONFIG_JSON, ServerConfig
from server_stub.db import devices, make_engine
from server_stub.enroll import enroll
from server_stub.errors import Forbidden, RateLimited, ServerError, Unavailable
from server_stub.heartbeat import record_heartbeat
from server_stub.ingest import ingest_batch
from server_stub.keys import ServerKeys, load_keys
from server_stub.leases import allocate
from server_stub.tokens import token_status
from sync.wire.canonical import load_public_key_b64
from sync.wire.protocol import (
    BatchRequest,
    BatchResponse,
    CatalogResponse,
    EnrollRequest,
    EnrollResponse,
    ErrorBody,
    Health,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaseRequest,
    LeaseResponse,
    Reconciliation,
    TokenStatus,
)
from sync.wire.signing import HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP

log = logging.getLogger(__name__)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


COMMON: dict[int | str, dict[str, Any]] = {
    400: _err("bad request"),
    413: _err("body too large"),
    415: _err("wrong content type or encoding"),
    422: _err("the body or a parameter does not match the schema"),
    503: _err("try again later"),
}
DEVICE: dict[int | str, dict[str, Any]] = {
    **COMMON,
    401: _err("not signed, stale, replayed, unknown or revoked device"),
    429: {
        "model": ErrorBody,
        "description": "rate limited",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
    },
}

# Security schemes, so OpenAPI documents the signing headers.
_sig_device = APIKeyHeader(name=HEADER_DEVICE, auto_error=False, scheme_name="DeviceId")
_sig_ts = APIKeyHeader(name=HEADER_TIMESTAMP, auto_error=False, scheme_name="Timestamp")
_sig_nonce = APIKeyHeader(name=HEADER_NONCE, auto_error=False, scheme_name="Nonce")
_sig_sig = APIKeyHeader(
    name=HEADER_SIGNATURE,
    auto_error=False,
    scheme_name="Signature",
    description="base64 Ed25519 over METHOD\\npath?query\\nsha256(body)\\ntimestamp\\nnonce",
)
_lsp_bearer = HTTPBearer(auto_error=False, scheme_name="LspApiKey", description="the LSP's API key")


@dataclass
class AppState:
    config: ServerConfig
    engine: Engine
    clock: Callable[[], float]
    auth: DeviceAuthenticator
    _keys: ServerKeys | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def keys(self) -> ServerKeys:
        if self._keys is None:
            with self._lock, self.engine.connect() as conn:
                self._keys = load_keys(conn)
        return self._keys


def _error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail}, headers=headers)


def _validation_detail(exc: RequestValidationError) -> str:
    # Never echo input values: they may carry a mobile or Aadhaar number.
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    config: ServerConfig, engine: Engine | None = None, clock: Callable[[], float] = time.time
) -> FastAPI:
    engine = engine or make_engine(config.db)
    limiter = RateLimiter(config.rate_per_s, config.rate_burst)
    state = AppState(
        config=config,
        engine=engine,
        clock=clock,
        auth=DeviceAuthenticator(engine, config.max_skew_s, limiter),
    )
    app = FastAPI(
        title="kiosk-agent central server",
        version="1",
        description="Enrollment, token leases, signed idempotent ingest and reconciliation.",
    )
    app.state.kiosk = state

    @app.exception_handler(ServerError)
    async def _server_error(_request: Request, exc: ServerError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
        if isinstance(exc, Unavailable):
            headers = {"Retry-After": "5"}
        return _error_response(exc.status, exc.code, exc.message, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _error_response(422, "invalid_request", _validation_detail(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return _error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(OperationalError)
    async def _db_busy(_request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return _error_response(503, "unavailable", "the database is busy; try again", {"Retry-After": "5"})

    @app.exception_handler(DBAPIError)
    async def _db_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        log.error("database error: %s", type(exc.orig).__name__)
        return _error_response(
            503, "unavailable", "the database refused the request; try again", {"Retry-After": "5"}
        )

    def device(
        request: Request,
        _d: Annotated[str | None, Security(_sig_device)] = None,
        _t: Annotated[str | None, Security(_sig_ts)] = None,
        _n: Annotated[str | None, Security(_sig_nonce)] = None,
        _s: Annotated[str | None, Security(_sig_sig)] = None,
    ) -> Device:
        raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
        path = raw_path.decode("latin-1")
        query = request.scope.get("query_string", b"")
        if query:
            path += "?" + query.decode("latin-1")
        digest = request.scope.get(WIRE_DIGEST_KEY, EMPTY_SHA256)
        return state.auth.authenticate(request.headers, request.method, path, digest, state.clock())

    def lsp_caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_lsp_bearer)] = None,
    ) -> str:
        header = f"Bearer {credentials.credentials}" if credentials else None
        with engine.connect() as conn:
            return authenticate_lsp(conn, header)

    DeviceDep = Annotated[Device, Depends(device)]

    @app.get("/healthz", response_model=Health, responses={503: _err("not ready")}, tags=["ops"])
    def healthz() -> Health:
        with engine.connect() as conn:
            conn.execute(sa.select(1))
        state.keys()
        return Health(status="ok")

    @app.post(
        "/v1/enroll",
        response_model=EnrollResponse,
        tags=["device"],
        responses={**COMMON, 401: _err("invalid, used or expired code"), 409: _err("device id in use")},
    )
    def post_enroll(req: EnrollRequest) -> EnrollResponse:
        with engine.begin() as conn:
            return enroll(conn, req, state.keys(), config, state.now_ms())

    @app.post(
        "/v1/batches",
        response_model=BatchResponse,
        response_model_exclude_none=True,  # no "reason": null, "final_token": null per record
        tags=["device"],
        responses=DEVICE,
    )
    def post_batches(req: BatchRequest, dev: DeviceDep) -> BatchResponse:
        with engine.connect() as conn:
            public_key = conn.execute(
                sa.select(devices.c.public_key).where(devices.c.device_id == dev.device_id)
            ).scalar_one()
        key = load_public_key_b64(public_key)
        with engine.begin() as conn:
            return ingest_batch(conn, dev.device_id, key, req, state.now_ms())

    @app.post("/v1/leases", response_model=LeaseResponse, tags=["device"], responses=DEVICE)
    def post_leases(req: LeaseRequest, dev: DeviceDep) -> LeaseResponse:
        count = min(req.count, config.max_blocks_per_request)
        with engine.begin() as conn:
            granted = allocate(conn, state.keys(), dev.device_id, count, config.block_size, state.now_ms())
        return LeaseResponse(block_size=config.block_size, leases=granted)

    @app.get("/v1/catalog", response_model=CatalogResponse, tags=["device"], responses=DEVICE)
    def get_catalog(dev: DeviceDep, since: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> CatalogResponse:
        with engine.connect() as conn:
            latest = catalog.latest_version(conn)
            body = catalog.get_version(conn, latest) if latest > since else None
        return CatalogResponse(version=latest, catalog=body)

    @app.post("/v1/heartbeat", response_model=HeartbeatResponse, tags=["device"], responses=DEVICE)
    def post_heartbeat(req: HeartbeatRequest, dev: DeviceDep) -> HeartbeatResponse:
        with engine.begin() as conn:
            return record_heartbeat(conn, dev.device_id, dev.kiosk_code, req, state.now_ms(), config.timezone)

    @app.get("/v1/tokens/{token}", response_model=TokenStatus, tags=["device"], responses=DEVICE)
    def get_token(
        token: Annotated[str, Path(max_length=80, pattern=r"^[0-9A-Za-z-]+$")], dev: DeviceDep
    ) -> TokenStatus:
        with engine.connect() as conn:
            return token_status(conn, token)

    @app.get(
        "/v1/reconciliation",
        tags=["lsp"],
        responses={
            200: {
                "model": Reconciliation,
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "JSON, or CSV with `format=csv` or `Accept: text/csv`",
            },
            **COMMON,
            401: _err("missing or wrong API key"),
            403: _err("the kiosk or LSP is not yours"),
            404: _err("no such kiosk"),
        },
    )
    def get_reconciliation(
        request: Request,
        caller: Annotated[str, Depends(lsp_caller)],
        date: Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD (IST)")],
        kiosk_code: Annotated[str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z-]+$")] = None,
        lsp_id: Annotated[
            str | None, Query(max_length=32, pattern=r"^[0-9A-Za-z-]+$", description="your own LSP id")
        ] = None,
        format: Annotated[Literal["json", "csv"] | None, Query()] = None,
    ) -> Response:
        if lsp_id is not None and lsp_id != caller:
            raise Forbidden("you may only read your own LSP's reconciliation", code="forbidden")
        day = reconcile.parse_day(date)
        with engine.connect() as conn:
            if kiosk_code:
                check_kiosk_of_lsp(conn, caller, kiosk_code)
            report = reconcile.build(conn, caller, day, config.timezone, config.sla_hours, kiosk_code)
        wants_csv = format == "csv" or (format is None and "text/csv" in request.headers.get("accept", ""))
        if wants_csv:
            return PlainTextResponse(reconcile.to_csv(report), media_type="text/csv")
        return JSONResponse(report.model_dump(mode="json"))

    app.add_middleware(BodyGuard, max_bytes=config.max_body_bytes)
    # Acks of a 500-record batch are ~30 KB of JSON and compress ~15x: on a 2G link the answer
    # costs as much as the request unless it is compressed too.
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory for ``serve --workers N``: the CLI passes the config in the environment."""
    text = os.environ.get(ENV_CONFIG_JSON)
    config = ServerConfig.from_json(text) if text else ServerConfig.from_env()
    return create_app(config)
