"""The lease storm's ceiling: a do-nothing FastAPI app served like `kiosk-server serve`.

`POST /v1/leases` takes the same body and answers a lease-shaped JSON without any work (no
signature check, no database, no signing); `GET /healthz` lets the bench's process runner wait
for it. bench/storm.py fires the very same lease-storm client at it, with the same uvicorn
settings and worker count, right after the real storm: grants/s over this is the share of the
framework-and-client ceiling the real grant reaches on this machine in this run.

    .venv/bin/python -m uvicorn bench.bare_server:app --workers 2 --port 8000

:func:`ours` is the same do-nothing route inside the server's own app (``create_app``: its
middleware, error handlers and routers, on a throw-away SQLite file): what the middleware and the
app around a handler cost, beside the bare app.

    .venv/bin/python -m uvicorn bench.bare_server:ours --factory --workers 2 --port 8000
"""

from __future__ import annotations

import itertools
import json
import tempfile
import threading
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

app = FastAPI()
_SERIALS = itertools.count(1)
_LOCK = threading.Lock()


class _Ask(BaseModel):
    count: int = 1


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/leases")
def leases(ask: _Ask) -> Response:
    with _LOCK:
        start = next(_SERIALS) * 1000
    lease = {"lease_id": start, "start_serial": start, "end_serial": start + 1000, "sig": "-"}
    body = json.dumps({"block_size": 1000, "leases": [lease]})
    return Response(body, media_type="application/json")


def ours() -> FastAPI:
    """``create_app`` with :func:`leases` answering ``POST /v1/leases`` before the real route."""
    from server_stub import admin
    from server_stub.app import create_app
    from server_stub.config import ServerConfig
    from server_stub.db import make_engine

    tmp = Path(tempfile.mkdtemp(prefix="kiosk-bare-ours-"))  # one per worker; under the OS's temp dir
    url = f"sqlite:///{tmp / 'server.db'}"
    config = ServerConfig(db=url, keys_dir=str(tmp / "keys"), rate_per_s=0)
    engine = make_engine(url)
    admin.init_server(engine, int(time.time() * 1000), config.keys_path())
    ours_app = create_app(config, engine=engine)
    ours_app.router.routes.insert(0, APIRoute("/v1/leases", leases, methods=["POST"]))
    return ours_app
