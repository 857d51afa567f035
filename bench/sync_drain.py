"""Sync drain: how fast and how lean the agent empties its queue.

In one run:
1. drain 10,000 queued transactions to a local server (txn/s), beside the
   server's raw HTTP ingest of pre-signed records (bench/server_ingest.py) as
   the baseline: the ratio is what the agent's side costs on top;
2. bytes on the wire per transaction, both directions, counted as real TCP
   payload at a proxy (request and response heads and bodies);
3. through a throttling proxy (64 kbit/s each way, 150 ms each way = 300 ms
   round trip), the time to drain a one-week backlog of 1,000 transactions.

Where the bytes go: request/response heads per transaction (at the proxy), and
the batch body per record as JSON, gzip and zstd, with the Ed25519 signatures
(64 random bytes each, incompressible) compressed apart from the rest.

A realistic mix: electricity bills (K number + mobile), water bills (consumer
number + mobile), certificates (a name, an income), printing.

    .venv/bin/python bench/sync_drain.py            # ~1-2 min
    .venv/bin/python bench/sync_drain.py --quick    # 2,000 + 300 transactions
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent import config, ids, syncing, transactions  # noqa: E402
from agent.ledger import init_ledger, open_ledger  # noqa: E402
from bench.server_ingest import measure_ingest  # noqa: E402
from tests.e2e.faultproxy import FaultProxy  # noqa: E402 - the tests' own proxy: throttles, counts bytes
from tests.e2e.servers import ServerProcess  # noqa: E402

WEEK_MS = 7 * 86_400_000


def _request(rng: random.Random, i: int) -> transactions.NewTxn:
    kind = i % 10
    mobile = f"9{rng.randint(0, 10**9 - 1):09d}"
    if kind < 4:
        return transactions.NewTxn(
            "ELEC_BILL",
            str(rng.randint(150, 6000)),
            "asha",
            mobile=mobile,
            fields={"discom": "JVVNL", "k_number": f"2104{rng.randint(0, 10**8 - 1):08d}"},
        )
    if kind < 6:
        return transactions.NewTxn(
            "WATER_BILL",
            str(rng.randint(80, 900)),
            "asha",
            mobile=mobile,
            fields={"consumer_number": f"33{rng.randint(0, 10**8 - 1):08d}"},
        )
    if kind < 8:
        return transactions.NewTxn(
            "INCOME_CERT",
            "0",
            "asha",
            fields={
                "applicant_name": rng.choice(["Sita Devi", "Ram Lal Meena", "Kamla Bishnoi", "Mohd Aslam"]),
                "annual_income": str(rng.randint(20, 900) * 1000),
            },
        )
    return transactions.NewTxn(
        "PRINT_LAMINATION",
        str(rng.randint(1, 10) * 10),
        "asha",
        fields={"pages": str(rng.randint(1, 12)), "job": "print"},
    )


def _kiosk(root: Path, server: ServerProcess, n: int, *, spread_ms: int = 0) -> config.Config:
    """An enrolled kiosk with ``n`` queued transactions (and leases for all of them)."""
    root.mkdir(parents=True)
    (root / "agent.toml").write_text(f'[agent]\ndata_dir = "data"\n[tokens]\nmin_remaining = {n + 100}\n')
    cfg = config.load(str(root / "agent.toml"), env={})
    init_ledger(cfg)
    with open_ledger(cfg) as led:
        syncing.enroll(cfg, led, server.url, server.new_kiosk()["enrollment_code"])
        engine = syncing.make_engine(cfg, led)
        assert engine is not None
        engine.top_up_leases()
    start = int(time.time() * 1000) - spread_ms
    clock = {"t": start}

    def now() -> int:  # a week of trading, in order, made in seconds
        clock["t"] += max(1, spread_ms // max(n, 1))
        return clock["t"]

    rng = random.Random(7)
    with open_ledger(cfg, now=now if spread_ms else ids.now_ms) as led:
        for i in range(n):
            transactions.create(led, _request(rng, i))
    return cfg


def _drain(cfg: config.Config, url: str | None = None) -> tuple[float, dict[str, Any]]:
    with open_ledger(cfg) as led:
        engine = syncing.make_engine(cfg, led)
        assert engine is not None
        if url:
            engine.client.base_url = url
        t0 = time.perf_counter()
        report = engine.push()
        took = time.perf_counter() - t0
        engine.client.session.close()
        assert report.pending == 0 and report.rejected == 0, report
        return took, report.public()


def _body_sizes(cfg: config.Config, batch: int = 500) -> dict[str, float]:
    """Per-record bytes of the batch bodies, uncompressed and compressed both ways: where they go."""
    from agent.ledger.ledger import RECORD_COLUMNS, record_from_row
    from sync.client import compress

    cols = ", ".join(RECORD_COLUMNS)
    with open_ledger(cfg) as led:
        rows = led.conn.execute(f"SELECT {cols}, sig FROM records ORDER BY seq").fetchall()
    wire = []
    for raw in rows:
        row = dict(zip([*RECORD_COLUMNS, "sig"], raw, strict=True))
        rec = record_from_row(row)
        rec.pop("prev_hash")
        wire.append(dict(rec, sig=row["sig"]))
    bodies = [
        json.dumps({"prev_hash": "0" * 64, "records": wire[i : i + batch]}, separators=(",", ":")).encode()
        for i in range(0, len(wire), batch)
    ]
    n = len(wire)
    sigs = [{"sig": r["sig"]} for r in wire]
    return {
        "json": sum(map(len, bodies)) / n,
        "gzip": sum(len(compress(b, "gzip")) for b in bodies) / n,
        "zstd": sum(len(compress(b, "zstd")) for b in bodies) / n,
        "zstd_without_sig": sum(
            len(
                compress(
                    json.dumps(
                        [{k: v for k, v in r.items() if k != "sig"} for r in wire[i : i + batch]]
                    ).encode(),
                    "zstd",
                )
            )
            for i in range(0, n, batch)
        )
        / n,
        "zstd_sigs_only": sum(
            len(compress(json.dumps(sigs[i : i + batch]).encode(), "zstd")) for i in range(0, n, batch)
        )
        / n,
    }


def run(n_drain: int, n_week: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kiosk-syncbench-", dir=ROOT.parent))
    try:
        baseline = measure_ingest(n_drain, 500)
        with ServerProcess(work / "srv", rate_limit=0) as server:
            cfg = _kiosk(work / "k1", server, n_drain)
            took, rep = _drain(cfg)
            drain_rate = n_drain / took

            cfg2 = _kiosk(work / "k2", server, n_week, spread_ms=WEEK_MS)
            with FaultProxy(server.port, bps=64_000, latency_s=0.15) as proxy:
                week_s, rep2 = _drain(cfg2, proxy.url)
                up, down = proxy.bytes_up, proxy.bytes_down
                head_up, head_down, requests_ = proxy.head_bytes_up, proxy.head_bytes_down, proxy.requests
            sizes = _body_sizes(cfg2)
        return {
            "drain_transactions": n_drain,
            "drain_txn_per_s": round(drain_rate, 1),
            "server_raw_ingest_per_s": round(baseline, 1),
            "drain_vs_raw_ingest": round(drain_rate / baseline, 2),
            "week_transactions": n_week,
            "week_backlog_seconds_64kbit_300ms": round(week_s, 1),
            "wire_bytes_per_txn_up": round(up / n_week, 1),
            "wire_bytes_per_txn_down": round(down / n_week, 1),
            "wire_bytes_per_txn": round((up + down) / n_week, 1),
            "week_requests": requests_,
            "wire_head_bytes_per_txn_up": round(head_up / n_week, 2),
            "wire_head_bytes_per_txn_down": round(head_down / n_week, 2),
            "record_bytes": {k: round(v, 1) for k, v in sizes.items()},
            "week_report": rep2,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    r = run(2000, 300) if args.quick else run(10_000, 1000)
    if args.json:
        print(json.dumps(r))
        return
    wire, week = r["wire_bytes_per_txn"], r["week_backlog_seconds_64kbit_300ms"]
    rb = r["record_bytes"]
    rows = [
        (
            f"drain {r['drain_transactions']} queued txns, local server",
            f"{r['drain_txn_per_s']} txn/s",
            f"raw ingest {r['server_raw_ingest_per_s']}/s: {r['drain_vs_raw_ingest']}x",
            "",
        ),
        (
            "wire bytes per txn, both directions",
            f"{wire} ({r['wire_bytes_per_txn_up']} up, {r['wire_bytes_per_txn_down']} down)",
            f"heads {r['wire_head_bytes_per_txn_up']} up, {r['wire_head_bytes_per_txn_down']} down",
            f"<= 128: {'met' if wire <= 128 else 'MISSED'}",
        ),
        (
            "  batch body per record",
            f"json {rb['json']}, gzip {rb['gzip']}, zstd {rb['zstd']}",
            f"zstd: sigs alone {rb['zstd_sigs_only']}, the rest {rb['zstd_without_sig']}",
            "",
        ),
        (
            f"{r['week_transactions']}-txn week backlog, 64 kbit/s, 300 ms RTT",
            f"{week} s",
            f"{r['week_requests']} requests",
            f"< 25 s: {'met' if week < 25 else 'MISSED'}",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
