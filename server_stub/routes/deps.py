"""What every router reads from the app: the state (config, engine, clock, keys loaded at start-up,
authenticator with its rate limiter, shared counters) and the callers (a signed device, an LSP),
as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from server_stub.auth import ADMITTED_KEY, Device, DeviceAuthenticator, SignedCall, authenticate_lsp
from server_stub.bodies import WIRE_DIGEST_KEY
from server_stub.config import ServerConfig
from server_stub.db import read, write
from server_stub.keys import ServerKeys
from server_stub.limits import WindowCounter
from sync.wire.protocol import ErrorBody
from sync.wire.signing import HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIMESTAMP

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@dataclass
class AppState:
    """Held in ``app.state.kiosk``; routers get it with :data:`StateDep`."""

    config: ServerConfig
    engine: Engine
    clock: Callable[[], float]
    auth: DeviceAuthenticator
    keys: ServerKeys
    counter: WindowCounter

    def now_ms(self) -> int:
        return int(self.clock() * 1000)


async def app_state(request: Request) -> AppState:
    """``async``: FastAPI runs a plain ``def`` dependency in the thread pool, a hop that costs more
    than this attribute read (so do :func:`signed_call` and ``metrics.app_metrics``)."""
    state: AppState = request.app.state.kiosk
    return state


StateDep = Annotated[AppState, Depends(app_state)]


def error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
COMMON: dict[int | str, dict[str, Any]] = {
    400: error_doc("bad request"),
    413: error_doc("body too large"),
    415: error_doc("wrong content type or encoding"),
    422: error_doc("the body or a parameter does not match the schema"),
    503: {"model": ErrorBody, "description": "busy or not ready: try again later", "headers": RETRY_AFTER},
}
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": ErrorBody, "description": "rate limited", "headers": RETRY_AFTER}
}
DEVICE: dict[int | str, dict[str, Any]] = {
    **COMMON,
    401: error_doc("not signed, stale, replayed, unknown or revoked device"),
    **RATE_LIMITED,
}

# Security schemes, so OpenAPI documents the signing headers. Documented only (see SIGNED and
# document_signing): solved as four Security dependencies they cost ~60 us a request for headers
# signed_call reads anyway.
_sig_device = APIKeyHeader(name=HEADER_DEVICE, auto_error=False, scheme_name="DeviceId")
_sig_ts = APIKeyHeader(name=HEADER_TIMESTAMP, auto_error=False, scheme_name="Timestamp")
_sig_nonce = APIKeyHeader(name=HEADER_NONCE, auto_error=False, scheme_name="Nonce")
_sig_sig = APIKeyHeader(
    name=HEADER_SIGNATURE,
    auto_error=False,
    scheme_name="Signature",
    description="base64 Ed25519 over METHOD\\npath?query\\nsha256(body)\\ntimestamp\\nnonce",
)
_SIGNING = (_sig_device, _sig_ts, _sig_nonce, _sig_sig)
SIGNED: dict[str, Any] = {"security": [{s.scheme_name: []} for s in _SIGNING]}
"""``openapi_extra`` of every route a device signs (the operation's security requirements)."""


def document_signing(app: FastAPI) -> None:
    """The signing headers' security schemes in ``app``'s OpenAPI components (the routes name them
    with :data:`SIGNED`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemes = build().setdefault("components", {}).setdefault("securitySchemes", {})
            for s in _SIGNING:
                schemes[s.scheme_name] = s.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


_lsp_bearer = HTTPBearer(auto_error=False, scheme_name="LspApiKey", description="the LSP's API key")


async def signed_call(request: Request) -> SignedCall:
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    path = raw_path.decode("latin-1")
    query = request.scope.get("query_string", b"")
    if query:
        path += "?" + query.decode("latin-1")
    digest = request.scope.get(WIRE_DIGEST_KEY, EMPTY_SHA256)
    return SignedCall(request.headers, request.method, path, digest, request.scope.get(ADMITTED_KEY))


SignedCallDep = Annotated[SignedCall, Depends(signed_call)]


def signed_device(st: StateDep, call: SignedCallDep) -> Device:
    """The device that signed the request (its nonce recorded in a transaction of its own)."""
    signed = st.auth.admit(call, st.clock())
    with write(st.engine) as conn:
        return st.auth.authenticate(conn, call, st.clock(), signed)


DeviceDep = Annotated[Device, Depends(signed_device)]


def lsp_caller(
    st: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_lsp_bearer)] = None,
) -> str:
    """The LSP id of the caller's API key."""
    header = f"Bearer {credentials.credentials}" if credentials else None
    with read(st.engine) as conn:
        return authenticate_lsp(conn, header)


LspDep = Annotated[str, Depends(lsp_caller)]
