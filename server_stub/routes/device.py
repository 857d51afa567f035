"""What kiosks call: enrollment, then signed requests (batches, leases, catalog, heartbeat, tokens)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from server_stub import catalog
from server_stub.enroll import enroll
from server_stub.heartbeat import record_heartbeat
from server_stub.ingest import ingest_batch
from server_stub.leases import allocate
from server_stub.routes.deps import COMMON, DEVICE, DeviceDep, DeviceTransactionDep, StateDep, error_doc
from server_stub.tokens import token_status
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
        401: error_doc("invalid, used or expired code"),
        409: error_doc("device id in use"),
    },
)
def post_enroll(req: EnrollRequest, st: StateDep) -> EnrollResponse:
    with st.engine.begin() as conn:
        return enroll(conn, req, st.keys(), st.config, st.now_ms())


@router.post(
    "/v1/batches",
    response_model=BatchResponse,
    response_model_exclude_none=True,  # no "reason": null, "final_token": null per record
    responses=DEVICE,
)
def post_batches(req: BatchRequest, txn: DeviceTransactionDep, st: StateDep) -> BatchResponse:
    answer = ingest_batch(txn.conn, txn.device, req, st.now_ms())
    txn.conn.commit()
    return answer


@router.post("/v1/leases", response_model=LeaseResponse, responses=DEVICE)
def post_leases(req: LeaseRequest, dev: DeviceDep, st: StateDep) -> LeaseResponse:
    config = st.config
    count = min(req.count, config.max_blocks_per_request)
    with st.engine.begin() as conn:
        granted = allocate(conn, st.keys(), dev.device_id, count, config.block_size, st.now_ms())
    return LeaseResponse(block_size=config.block_size, leases=granted)


@router.get("/v1/catalog", response_model=CatalogResponse, responses=DEVICE)
def get_catalog(
    dev: DeviceDep, st: StateDep, since: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> CatalogResponse:
    with st.engine.connect() as conn:
        latest = catalog.latest_version(conn)
        body = catalog.get_version(conn, latest) if latest > since else None
    return CatalogResponse(version=latest, catalog=body)


@router.post("/v1/heartbeat", response_model=HeartbeatResponse, responses=DEVICE)
def post_heartbeat(req: HeartbeatRequest, dev: DeviceDep, st: StateDep) -> HeartbeatResponse:
    with st.engine.begin() as conn:
        return record_heartbeat(conn, dev.device_id, dev.kiosk_code, req, st.now_ms(), st.config.timezone)


@router.get("/v1/tokens/{token}", response_model=TokenStatus, responses=DEVICE)
def get_token(
    token: Annotated[str, Path(max_length=80, pattern=r"^[0-9A-Za-z-]+$")], dev: DeviceDep, st: StateDep
) -> TokenStatus:
    with st.engine.connect() as conn:
        return token_status(conn, token)
