"""What kiosks call: enrollment, then signed requests (batches, leases, catalog, heartbeat, tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from server_stub import catalog, enroll, tokens
from server_stub.db import read, write
from server_stub.heartbeat import record_heartbeat
from server_stub.ingest import Trust, receive
from server_stub.leases import grant
from server_stub.routes.deps import (
    COMMON,
    DEVICE,
    RATE_LIMITED,
    DeviceDep,
    SignedCallDep,
    StateDep,
    error_doc,
)
from sync.wire.protocol import (
    BatchRequest,
    BatchResponse,
    CatalogResponse,
    EnrollRequest,
    EnrollResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaseRequest,
    LeaseResponse,
    TokenStatus,
)

router = APIRouter(tags=["device"])


@router.post(
    "/v1/enroll",
    response_model=EnrollResponse,
    responses={
        **COMMON,
        401: error_doc("invalid, used or expired code, or a revoked device"),
        409: error_doc("device id in use"),
        **RATE_LIMITED,
    },
)
def post_enroll(req: EnrollRequest, st: StateDep) -> EnrollResponse:
    return enroll.attempt(st.engine, st.counter, req, st.keys, st.config, st.clock())


@router.post(
    "/v1/batches",
    response_model=BatchResponse,
    response_model_exclude_none=True,  # no "reason": null, "final_token": null per record
    responses=DEVICE,
)
def post_batches(req: BatchRequest, call: SignedCallDep, st: StateDep) -> Response:
    answer = receive(st.engine, st.auth, call, req, st.clock(), Trust.of(st.config))
    # Serialised once here: returned as a model, FastAPI would validate the 500 acks again.
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")


@router.post(
    "/v1/leases",
    response_model=LeaseResponse,
    responses={**DEVICE, 409: error_doc("the device holds as many unused tokens as it may")},
)
def post_leases(req: LeaseRequest, call: SignedCallDep, st: StateDep) -> LeaseResponse:
    signed = st.auth.admit(call, st.clock())
    with write(st.engine) as conn:  # one transaction: the signature's nonce and the grant
        dev = st.auth.authenticate(conn, call, st.clock(), signed)
        granted = grant(conn, st.keys, dev.device_id, req, st.config, st.now_ms())
    return LeaseResponse(block_size=st.config.block_size, leases=granted)


@router.get("/v1/catalog", response_model=CatalogResponse, responses=DEVICE)
def get_catalog(
    dev: DeviceDep, st: StateDep, since: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> CatalogResponse:
    with read(st.engine) as conn:
        latest = catalog.latest_version(conn)
        body = catalog.get_version(conn, latest) if latest > since else None
    return CatalogResponse(version=latest, catalog=body)


@router.post("/v1/heartbeat", response_model=HeartbeatResponse, responses=DEVICE)
def post_heartbeat(req: HeartbeatRequest, dev: DeviceDep, st: StateDep) -> HeartbeatResponse:
    with write(st.engine) as conn:
        return record_heartbeat(conn, dev.device_id, dev.kiosk_code, req, st.now_ms(), st.config.timezone)


@router.get(
    "/v1/tokens/{token}",
    response_model=TokenStatus,
    response_model_exclude_none=True,
    responses={**DEVICE, 422: error_doc("not a token number (shape or check digit)")},
)
def get_token(
    token: Annotated[str, Path(max_length=80, pattern=r"^[0-9A-Za-z-]+$")], dev: DeviceDep, st: StateDep
) -> TokenStatus:
    return tokens.lookup(st.engine, st.counter, dev, token, st.config, st.clock())
