"""What kiosks call: enrollment, then signed requests (batches, leases, catalog, heartbeat, tokens,
the device directory)."""

from __future__ import annotations

import gzip
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from server_stub import catalog, directory, enroll, tokens
from server_stub.db import read, write
from server_stub.heartbeat import record_heartbeat
from server_stub.ingest import Trust, receive
from server_stub.leases import grant
from server_stub.metrics import MetricsDep, Timer
from server_stub.routes.deps import (
    COMMON,
    DEVICE,
    RATE_LIMITED,
    SIGNED,
    DeviceDep,
    SignedCallDep,
    StateDep,
    error_doc,
)
from sync.wire.directory import DirectoryPage
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


def post_batches(req: BatchRequest, call: SignedCallDep, st: StateDep, m: MetricsDep) -> Response:
    """The usual batch never gets here: ``server_stub/fastbatch.py`` answers it the same way without
    the framework. This route answers the rest (a query string, a body the schema refuses) and
    documents the endpoint."""
    with Timer() as t:
        answer = receive(st.engine, st.auth, call, req, st.clock(), Trust.of(st.config))
    m.acks(answer.acks, t.seconds)
    # Serialised once here: returned as a model, FastAPI would validate the 500 acks again.
    return Response(answer.model_dump_json(exclude_none=True), media_type="application/json")


router.add_api_route(
    "/v1/batches",
    post_batches,
    methods=["POST"],
    response_model=BatchResponse,
    response_model_exclude_none=True,  # no "reason": null, "final_token": null per record
    responses=DEVICE,
    openapi_extra=SIGNED,
)


@router.post(
    "/v1/leases",
    response_model=LeaseResponse,
    responses={**DEVICE, 409: error_doc("the device holds as many unused tokens as it may")},
    openapi_extra=SIGNED,
)
def post_leases(req: LeaseRequest, call: SignedCallDep, st: StateDep, m: MetricsDep) -> Response:
    signed = st.auth.admit(call, st.clock())
    with write(st.engine) as conn:  # one transaction: the signature's nonce and the grant
        # the device row is read once, locked: a device's lease requests are answered in turn
        dev = st.auth.authenticate(conn, call, st.clock(), signed, lock=True)
        granted = grant(conn, st.keys, dev, req, st.config, st.now_ms())
    m.leases(len(granted), sum(g.end_serial - g.start_serial for g in granted))
    # Serialised here: returned as a model, FastAPI would validate it again on the way out.
    answer = LeaseResponse(block_size=st.config.block_size, leases=granted)
    return Response(answer.model_dump_json(), media_type="application/json")


@router.get("/v1/catalog", response_model=CatalogResponse, responses=DEVICE, openapi_extra=SIGNED)
def get_catalog(
    dev: DeviceDep, st: StateDep, since: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> CatalogResponse:
    with read(st.engine) as conn:
        latest = catalog.latest_version(conn)
        body = catalog.get_version(conn, latest) if latest > since else None
    return CatalogResponse(version=latest, catalog=body)


@router.post("/v1/heartbeat", response_model=HeartbeatResponse, responses=DEVICE, openapi_extra=SIGNED)
def post_heartbeat(req: HeartbeatRequest, dev: DeviceDep, st: StateDep) -> HeartbeatResponse:
    with write(st.engine) as conn:
        return record_heartbeat(conn, dev.device_id, dev.kiosk_code, req, st.now_ms(), st.config.timezone)


@router.get(
    "/v1/tokens/{token}",
    response_model=TokenStatus,
    response_model_exclude_none=True,
    responses={**DEVICE, 422: error_doc("not a token number (shape or check digit)")},
    openapi_extra=SIGNED,
)
def get_token(
    token: Annotated[str, Path(max_length=80, pattern=r"^[0-9A-Za-z-]+$")], dev: DeviceDep, st: StateDep
) -> TokenStatus:
    return tokens.lookup(st.engine, st.counter, dev, token, st.config, st.clock())


@router.get("/v1/directory", response_model=DirectoryPage, responses=DEVICE, openapi_extra=SIGNED)
def get_directory(
    request: Request, dev: DeviceDep, st: StateDep, since: Annotated[int, Query(ge=0, le=2**62)] = 0
) -> Response:
    """Devices enrolled after ``since`` with their public keys, signed by the server (one page;
    ``more`` says ask again since ``version``). Gzipped when the kiosk accepts it: a whole state's
    80,000 devices are ~13 MB of JSON, ~5.4 MB on the wire."""
    with read(st.engine) as conn:
        page = directory.page(conn, st.keys, since)
    body = page.model_dump_json().encode("utf-8")
    if "gzip" not in request.headers.get("accept-encoding", ""):
        return Response(body, media_type="application/json")
    packed = gzip.compress(body, compresslevel=6, mtime=0)
    return Response(packed, media_type="application/json", headers={"Content-Encoding": "gzip"})
