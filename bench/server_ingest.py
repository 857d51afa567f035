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
import contextlib
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.harness import HOST, ServerProcess, free_port, stop_process, wait_healthy  # noqa: E402
from server_stub import admin  # noqa: E402
from server_stub.db import make_engine  # noqa: E402
from sync.wire.canonical import genesis_hash, public_key_b64, record_hash, sign_hash  # noqa: E402
from sync.wire.signing import sign_request  # noqa: E402
from sync.wire.verhoeff import token_for_serial  # noqa: E402

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


def _env() -> dict[str, str]:
    """The children import the repo's packages even when it is not installed."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


@contextlib.contextmanager
def _baseline(work: Path) -> Iterator[str]:
    """The bare FastAPI app in its own uvicorn process; its URL."""
    (work / "baseline_app.py").write_text(BASELINE_APP, encoding="utf-8")
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "baseline_app:app", "--host", HOST, "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--log-level", "warning"],
        cwd=work,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    url = f"http://{HOST}:{port}"
    try:
        wait_healthy(url, proc, deadline_s=60)
        yield url
    finally:
        stop_process(proc, timeout_s=20)


def _server(work: Path, n: int, rounds: int) -> tuple[ServerProcess, list[str]]:
    """A fresh server database with one LSP and ``rounds`` kiosks; the (not started) server
    and the kiosks' enrollment codes."""
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
    serve_args = ["--rate-limit", "0", "--block-size", str(max(n, 1000))]
    return ServerProcess(work, db=db, serve_args=serve_args, env=_env()), codes


class _Device:
    """An enrolled device with n pre-signed records in batch bodies."""

    def __init__(self, url: str, code: str, n: int, batch: int) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.device_id = str(uuid.uuid4())
        resp = requests.post(
            url + "/v1/enroll",
            json={
                "enrollment_code": code,
                "device_public_key": public_key_b64(self.key.public_key()),
                "device_id": self.device_id,
            },
            timeout=30,
        )
        resp.raise_for_status()
        enrolled = resp.json()
        serials = (
            s for lease in enrolled["leases"] for s in range(lease["start_serial"], lease["end_serial"])
        )
        prev = genesis_hash(self.device_id)
        wire = []
        for seq in range(1, n + 1):
            rec: dict[str, Any] = {
                "seq": seq,
                "txn_id": str(uuid.uuid4()),
                "kind": "sale",
                "created_at": 1_790_000_000_000 + seq,
                "operator": "op1",
                "service": "ELEC_BILL",
                "amount_paise": 150_000 + seq,
                "fee_paise": 1000,
                "token": token_for_serial(next(serials)),
                "fields": {"discom": "JVVNL", "k_number": "210412345678"},
                "catalog_version": 1,
                "prev_hash": prev,
            }
            h = record_hash(rec)
            rec["sig"] = sign_hash(self.key, h)
            del rec["prev_hash"]
            wire.append((rec, prev))
            prev = h
        self.bodies = [
            json.dumps({"prev_hash": wire[i][1], "records": [r for r, _ in wire[i : i + batch]]}).encode()
            for i in range(0, n, batch)
        ]

    def headers(self, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            **sign_request(self.key, self.device_id, "POST", "/v1/batches", body),
        }


def _push(session: requests.Session, url: str, dev: _Device, check: bool) -> float:
    t0 = time.perf_counter()
    for body in dev.bodies:
        resp = session.post(url + "/v1/batches", data=body, headers=dev.headers(body), timeout=120)
        if resp.status_code != 200:
            raise RuntimeError(f"{resp.status_code}: {resp.text[:200]}")
        if check and any(a["status"] != "accepted" for a in resp.json()["acks"]):
            raise RuntimeError("a record was not accepted")
    return time.perf_counter() - t0


def measure(n: int = 5000, batch: int = 500, rounds: int = 3) -> dict[str, Any]:
    """Records/s of the server and of the bare baseline (medians over ``rounds``), and their ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server, codes = _server(work, n, rounds)
        server_rates, base_rates = [], []
        with server, _baseline(work) as base_url:
            devices = [_Device(server.url, code, n, batch) for code in codes]
            s1, s2 = requests.Session(), requests.Session()
            _push(s2, base_url, devices[0], check=False)  # warm-up
            for dev in devices:
                server_rates.append(n / _push(s1, server.url, dev, check=True))
                base_rates.append(n / _push(s2, base_url, dev, check=False))
            wire_bytes = sum(len(b) for b in devices[0].bodies) / n
            gz_bytes = sum(len(gzip.compress(b)) for b in devices[0].bodies) / n
    server_rate = statistics.median(server_rates)
    base = statistics.median(base_rates)
    return {
        "records": n,
        "batch": batch,
        "rounds": rounds,
        "server_records_per_s": round(server_rate),
        "baseline_records_per_s": round(base),
        "ratio": round(server_rate / base, 3),
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
