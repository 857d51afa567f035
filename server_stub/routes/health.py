"""Ops: is the server ready (database reachable; the keys were loaded at start-up); the server's
public signing key, for whoever verifies what it signed (statements, leases); Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response

from server_stub import metrics
from server_stub.db import read
from server_stub.metrics import MetricsDep
from server_stub.routes.deps import StateDep, error_doc
from sync.wire.protocol import Health

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, responses={503: error_doc("not ready")})
def healthz(st: StateDep) -> Health:
    with read(st.engine) as conn:
        conn.execute(sa.select(1))
    return Health(status="ok")


@router.get("/v1/server-key", description="The server's Ed25519 signing public key (base64, raw 32 bytes).")
def server_key(st: StateDep) -> dict[str, str]:
    return {"sign_public_key": st.keys.sign_public_b64, "fingerprint": st.keys.fingerprints()["sign"]}


@router.get(
    "/metrics",
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        },
        401: error_doc("a metrics token is set and was not given"),
        403: error_doc("no metrics token is set and the caller is not on loopback"),
    },
)
def get_metrics(request: Request, st: StateDep, m: MetricsDep) -> Response:
    client = request.client.host if request.client else None
    metrics.check_reader(client, request.headers.get("authorization"), st.config.metrics_token)
    return Response(metrics.render(m, st.engine, st.config, st.now_ms), media_type=metrics.CONTENT_TYPE)
