"""The lease storm's ceiling: a do-nothing FastAPI app served like `kiosk-server serve`.

`POST /v1/leases` takes the same body and answers a lease-shaped JSON without any work (no
signature check, no database, no signing); `GET /healthz` lets the bench's process runner wait
for it. bench/storm.py fires the very same lease-storm client at it, with the same uvicorn
settings and worker count, right after the real storm: grants/s over this is the share of the
framework-and-client ceiling the real grant reaches on this machine in this run.

    .venv/bin/python -m uvicorn bench.bare_server:app --workers 2 --port 8000
"""

from __future__ import annotations

import itertools
import json
import threading

from fastapi import FastAPI
from fastapi.responses import Response
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
