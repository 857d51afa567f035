#!/usr/bin/env python
"""Raw HTTP ingest rate of the central server, against a baseline measured in the same run.

Lines:

  server      POST /v1/batches to `kiosk-server serve` (a real uvicorn process on loopback,
              SQLite default: WAL, synchronous=FULL): request signature + nonce, pydantic
              parsing, hash recomputation and Ed25519 check per record, token/lease checks,
              one transaction per batch. Every record is new (a fresh device each round).
  baseline    the same bodies POSTed to a bare FastAPI endpoint in its own uvicorn process
              that only parses the JSON (json.loads) and answers the record count.

The client pre-builds and pre-signs every record, so only the server's work is timed. Rounds
alternate (server, baseline) and the rates are medians.

    .venv/bin/python bench/server_ingest.py              # ~20 s
    .venv/bin/python bench/server_ingest.py --quick
    .venv/bin/python bench/server_ingest.py --json

Other benches import :func:`measure_ingest` (records/s) or :func:`measure` (all figures).
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kiosks import SimKiosk, process, server_argv  # noqa: E402
from server_stub import admin  # noqa: E402
from server_stub.db import make_engine  # noqa: E402

BASELINE_APP = """
import json
from fastapi import FastAPI, Request
app = FastAPI()
@app.get("/healthz")
def healthz():
    return {"status": "ok"}
@app.post("/v1/batches")
async def batches(request: Request):
    body = json.loads(await request.body())
    return {"count": len(body["records"])}
"""


def _device(url: str, code: str, n: int, batch: int) -> SimKiosk:
    """An enrolled device with n pre-signed records in uncompressed batches of ``batch``."""
    dev = SimKiosk()
    with requests.Session() as session:
        dev.enroll(session, url, code)
    dev.build_backlog(n, max_records=batch, max_bytes=2**40, encoding=None)
    return dev


def _push(session: requests.Session, url: str, dev: SimKiosk, check: bool) -> float:
    t0 = time.perf_counter()
    for b in dev.batches:
        headers = dev.signed_headers("POST", "/v1/batches", b.body, None)
        resp = session.post(url + "/v1/batches", data=b.body, headers=headers, timeout=120)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {resp.text[:200]}")
        if check and any(a["status"] != "accepted" for a in resp.json()["acks"]):
            raise RuntimeError("a record was not accepted")
    return time.perf_counter() - t0


def measure(n: int = 5000, batch: int = 500, rounds: int = 3) -> dict[str, Any]:
    """Records/s of the server and of the bare baseline (medians over ``rounds``), and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = f"sqlite:///{work / 'server-data' / 'server.db'}"
        engine = make_engine(db)
        admin.init_server(engine, int(time.time() * 1000))
        with engine.begin() as conn:
            lsp = admin.create_lsp(conn, "bench", 0).lsp_id
            codes = [
                admin.create_kiosk(conn, lsp, f"k{i}", int(time.time() * 1000), 1).enrollment_code
                for i in range(rounds)
            ]
        engine.dispose()
        (work / "baseline_app.py").write_text(BASELINE_APP, encoding="utf-8")
        serve_argv = server_argv(
            db,
            "serve",
            "--host",
            "127.0.0.1",
            "--rate-limit",
            "0",
            "--log-level",
            "warning",
            "--block-size",
            str(max(n, 1000)),
        )
        base_argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--host",
            "127.0.0.1",
            "--log-level",
            "warning",
        ]
        server_rates, base_rates = [], []
        with process(serve_argv, work) as (server_url, _), process(base_argv, work) as (base_url, _):
            devices = [_device(server_url, code, n, batch) for code in codes]
            s1, s2 = requests.Session(), requests.Session()
            _push(s2, base_url, devices[0], check=False)  # warm-up
            for dev in devices:
                server_rates.append(n / _push(s1, server_url, dev, check=True))
                base_rates.append(n / _push(s2, base_url, dev, check=False))
            wire_bytes = sum(len(b.body) for b in devices[0].batches) / n
            gz_bytes = sum(len(gzip.compress(b.body)) for b in devices[0].batches) / n
    server = statistics.median(server_rates)
    base = statistics.median(base_rates)
    return {
        "records": n,
        "batch": batch,
        "rounds": rounds,
        "server_records_per_s": round(server),
        "baseline_records_per_s": round(base),
        "ratio": round(server / base, 3),
        "json_bytes_per_record": round(wire_bytes, 1),
        "gzip_bytes_per_record": round(gz_bytes, 1),
    }


def measure_ingest(n: int = 5000, batch: int = 500) -> float:
    """Records per second that POST /v1/batches ingests (real uvicorn, SQLite default)."""
    return float(measure(n, batch, rounds=1)["server_records_per_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1,000 records, 1 round")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n, rounds = (1000, 1) if args.quick else (args.records, args.rounds)
    r = measure(n, args.batch, rounds)
    if args.json:
        print(json.dumps(r))
        return
    print(f"records {r['records']} in batches of {r['batch']}, {r['rounds']} round(s), medians")
    print(f"  server    {r['server_records_per_s']:>8} records/s   POST /v1/batches, verify + store")
    print(f"  baseline  {r['baseline_records_per_s']:>8} records/s   bare FastAPI, json.loads only")
    print(f"  ratio     {r['ratio']:>8}             server / baseline")
    print(
        f"  wire      {r['json_bytes_per_record']:>8} B/record JSON,",
        f"{r['gzip_bytes_per_record']} B/record gzip",
    )


if __name__ == "__main__":
    main()
