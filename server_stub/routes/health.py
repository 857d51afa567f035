"""Ops: is the server ready (database reachable, keys loaded)."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter

from server_stub.routes.deps import StateDep, error_doc
from sync.wire.protocol import Health

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=Health, responses={503: error_doc("not ready")})
def healthz(st: StateDep) -> Health:
    with st.engine.connect() as conn:
        conn.execute(sa.select(1))
    st.keys()
    return Health(status="ok")
