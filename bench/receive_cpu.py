#!/usr/bin/env python
"""The thread side of ``POST /v1/batches`` alone: CPU of ``server_stub.ingest.receive`` per record.

The storm's server CPU per record (bench/storm.py) is the whole process: uvicorn, the middleware,
the body's parsing, the event loop. This times only what runs in the request's worker thread,
called in this process on the storm's database (``time.thread_time()`` around each call: the
Ed25519 verifies' C time is counted, waiting on the database is not): K kiosks enrolled through
the real HTTP API of `kiosk-server serve` (bench/storm_server.py), each sending R batches of 50
pre-signed records (bench/kiosks.py) and then the same batch again (a resend held in full),
against one Ed25519 verify measured here in the same run. On a shared machine compare the
minimums: other jobs only ever add to a figure.

    .venv/bin/python bench/receive_cpu.py --db postgresql        # $KIOSK_TEST_POSTGRES_URL
    .venv/bin/python bench/receive_cpu.py --kiosks 30 --rounds 5  # SQLite
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.kiosks import SimKiosk  # noqa: E402
from bench.storm import verify_us  # noqa: E402
from bench.storm_server import serve  # noqa: E402
from server_stub import admin  # noqa: E402
from server_stub.auth import DeviceAuthenticator, SignedCall  # noqa: E402
from server_stub.config import ServerConfig  # noqa: E402
from server_stub.ingest import Trust, receive  # noqa: E402
from server_stub.shared import MemoryLimiter  # noqa: E402
from sync.wire.protocol import BatchRequest  # noqa: E402

PATH = "/v1/batches"


def _figures(us: list[float]) -> dict[str, float]:
    ordered = sorted(us)
    return {"min": ordered[0], "p25": ordered[len(ordered) // 4], "median": statistics.median(ordered)}


def measure(db: str, kiosks: int, rounds: int) -> dict[str, dict[str, float]]:
    """us of worker-thread CPU per record: first sends and resends."""
    passes: dict[str, list[float]] = {"accepted": [], "duplicate": []}
    with serve(db, 1) as server, requests.Session() as session:
        fleet = []
        for i in range(kiosks):
            with server.engine.begin() as conn:
                code = admin.create_kiosk(conn, server.lsp_id, f"Shop {i}", int(time.time() * 1000), 72)
            kiosk = SimKiosk()
            kiosk.enroll(session, server.url, code.enrollment_code)
            kiosk.build_backlog(50 * rounds, max_records=50, encoding=None)
            fleet.append(kiosk)
        auth = DeviceAuthenticator(ServerConfig().max_skew_s, MemoryLimiter(0, 1))
        for batch_no in range(rounds):
            for kiosk in fleet:
                body = kiosk.batches[batch_no].body
                batch = BatchRequest.model_validate_json(body)
                for status, times in passes.items():  # the first send, then the same batch again
                    headers = kiosk.signed_headers("POST", PATH, body, None)
                    call = SignedCall(headers, "POST", PATH, hashlib.sha256(body).hexdigest())
                    t0 = time.thread_time()
                    answer = receive(server.engine, auth, call, batch, time.time(), Trust())
                    times.append((time.thread_time() - t0) / len(batch.records) * 1e6)
                    assert all(a.status == status for a in answer.acks), answer.acks[:2]
    return {"first": _figures(passes["accepted"]), "resend": _figures(passes["duplicate"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or a postgresql+psycopg:// URL")
    parser.add_argument("--kiosks", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="batches of 50 records per kiosk")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    got = measure(args.db, args.kiosks, args.rounds)
    v = verify_us()
    print(f"{args.db}: {args.kiosks} kiosks x {args.rounds} batches of 50; load average at start {load:.2f}")
    for name, f in got.items():
        print(
            f"  {name:6}  worker-thread CPU us/record: min {f['min']:.1f}  p25 {f['p25']:.1f}"
            f"  median {f['median']:.1f}  (min / verify {f['min'] / v:.2f})"
        )
    ratio = got["resend"]["median"] / got["first"]["median"]
    print(f"  one Ed25519 verify {v:.1f} us; resend / first (medians) {ratio:.3f}")


if __name__ == "__main__":
    main()
