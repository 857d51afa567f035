"""A sale's answer through the local API with the ESC/POS printer simulator attached.

The agent side is `kiosk-agent run` in this process (``agent.runner.Runner``: the real local API
on uvicorn, the scheduler, the print worker) with ``[printer] url`` the simulator on a real TCP
socket, set to answer its status queries slowly (``--print-delay``), so a receipt takes longer
than a sale: the answers must not wait for it. The baseline, in the same process and interleaved
round by round, is a bare FastAPI endpoint on the same uvicorn server code doing one
``Ledger.append`` of the same draft on a second ledger (no guard, no catalog, no view, no print).

    .venv/bin/python bench/local_api.py            # 10 rounds x 20 per side, ~1 min
    .venv/bin/python bench/local_api.py --quick    # 4 rounds x 15

Target: the sale's answer p99 under 20 ms; every receipt printed afterwards, in order.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent import config as config_mod  # noqa: E402
from agent import transactions  # noqa: E402
from agent.api import bind, load_or_create_token, serve  # noqa: E402
from agent.harness import free_port  # noqa: E402
from agent.ledger import Ledger, init_ledger, open_ledger  # noqa: E402
from agent.runner import Runner  # noqa: E402
from hardware.sim.printer import PrinterSim  # noqa: E402

SALE_FIELDS = {"consumer_number": "3345678901"}
SALE: dict[str, Any] = {"service": "WATER_BILL", "amount": "120.50", "fields": SALE_FIELDS}


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def make_config(root: Path, printer_url: str) -> config_mod.Config:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "agent.toml"
    path.write_text(
        f'[agent]\ndata_dir = "data"\noperator = "op1"\n[printer]\nurl = "{printer_url}"\nwidth_dots = 384\n'
        f'lang = "en"\n[local_api]\nport = {free_port()}\n'
    )
    return config_mod.load(str(path), env={})


def bare_app(led: Ledger) -> Any:
    """The baseline: one endpoint, one append of the same draft, under one lock."""
    from fastapi import FastAPI

    app = FastAPI()
    lock = threading.Lock()
    draft = transactions.build_draft(
        transactions.NewTxn(str(SALE["service"]), str(SALE["amount"]), "op1", fields=dict(SALE_FIELDS)),
        transactions.current_catalog(led),
        online=False,
        seal_key=None,
    )

    @app.post("/bare", status_code=201)
    def bare(body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            rec = led.append(dict(draft))  # type: ignore[arg-type]
        return {"seq": rec["seq"], "token": rec.get("token")}

    return app


def start_bare(root: Path) -> tuple[str, threading.Event, Ledger]:
    cfg = make_config(root, "none")
    init_ledger(cfg, dev_leases=True)
    led = open_ledger(cfg)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    ready, stop = threading.Event(), threading.Event()
    threading.Thread(
        target=serve, args=(bare_app(led), "127.0.0.1", port, ready, stop), kwargs={"sock": sock}, daemon=True
    ).start()
    if not ready.wait(10):
        raise SystemExit("the bare endpoint did not start")
    return f"http://127.0.0.1:{port}/bare", stop, led


def timed_posts(s: requests.Session, url: str, n: int, headers: dict[str, str]) -> list[tuple[float, Any]]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = s.post(url, json=SALE, headers=headers, timeout=30)
        dt = (time.perf_counter() - t0) * 1000
        if resp.status_code != 201:
            raise SystemExit(f"{url} answered {resp.status_code}: {resp.text[:200]}")
        out.append((dt, resp.json()))
    return out


def run_rounds(args: argparse.Namespace, agent_url: str, token: str, bare_url: str) -> dict[str, Any]:
    s = requests.Session()
    agent_ms: list[float] = []
    bare_ms: list[float] = []
    sales: list[Any] = []
    auth = {"Authorization": f"Bearer {token}"}
    timed_posts(s, agent_url, 5, auth)  # warm-up, both sides
    timed_posts(s, bare_url, 5, {})
    for r in range(args.rounds):
        sides = [("agent", agent_url, auth), ("bare", bare_url, {})]
        for name, url, headers in sides if r % 2 == 0 else reversed(sides):
            got = timed_posts(s, url, args.n, headers)
            (agent_ms if name == "agent" else bare_ms).extend(dt for dt, _ in got)
            if name == "agent":
                sales.extend(body for _, body in got)
    s.close()
    return {"agent_ms": agent_ms, "bare_ms": bare_ms, "sales": sales}


def summarise(res: dict[str, Any], printed_in_order: bool, printed: int, drain_s: float) -> dict[str, Any]:
    a, b = res["agent_ms"], res["bare_ms"]
    doc = {
        "sales": len(a),
        "agent_p50_ms": round(pct(a, 50), 2),
        "agent_p99_ms": round(pct(a, 99), 2),
        "agent_mean_ms": round(statistics.fmean(a), 2),
        "bare_p50_ms": round(pct(b, 50), 2),
        "bare_p99_ms": round(pct(b, 99), 2),
        "bare_mean_ms": round(statistics.fmean(b), 2),
        "receipts_printed": printed,
        "printed_in_commit_order": printed_in_order,
        "printer_drain_s_after_last_answer": round(drain_s, 2),
    }
    doc["p50_ratio_agent_over_bare"] = round(doc["agent_p50_ms"] / doc["bare_p50_ms"], 2)
    doc["p99_ratio_agent_over_bare"] = round(doc["agent_p99_ms"] / doc["bare_p99_ms"], 2)
    doc["target_p99_under_20ms"] = doc["agent_p99_ms"] < 20
    return doc


def check_paper(sim: PrinterSim, sales: list[Any], timeout_s: float) -> tuple[bool, int, float]:
    t0 = time.perf_counter()
    want = len(sales) + 5  # the warm-up sales printed too
    try:
        sim.wait_for_cuts(want, timeout=timeout_s)
    except Exception:
        pass
    drain = time.perf_counter() - t0
    text = sim.paper.text
    tokens = [str(v["token"]) for v in sorted(sales, key=lambda v: int(v["seq"]))]
    in_order = all(text.count(t) == 1 for t in tokens) and sorted(tokens, key=text.index) == tokens
    return in_order, sim.paper.cuts, drain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("-n", type=int, default=20, help="sales per side per round")
    ap.add_argument("--print-delay", type=float, default=0.03, help="the simulator's status reply delay (s)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--dir", default=None, help="parent of the temp dir (default: the system's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.n = 4, 15
    root = Path(tempfile.mkdtemp(prefix="kiosk-bench-api-", dir=args.dir))
    sim = PrinterSim(transport="tcp", delay=args.print_delay)
    sim.start()
    sim.fail_mode = "slow"  # a receipt takes longer than a sale: answers must not wait for it
    runner = bare_stop = bare_led = None
    try:
        cfg = make_config(root / "agent", sim.url)
        init_ledger(cfg, dev_leases=True)
        runner = Runner(cfg, threading.Event())
        runner.start()
        bare_url, bare_stop, bare_led = start_bare(root / "bare")
        agent_url = f"http://127.0.0.1:{runner.port}/api/transactions"
        res = run_rounds(args, agent_url, load_or_create_token(cfg), bare_url)
        doc = summarise(res, *check_paper(sim, res["sales"], timeout_s=120))
        doc.update(print_delay_s=args.print_delay, rounds=args.rounds, per_round=args.n)
    finally:
        if runner is not None:
            runner.shutdown()
        if bare_stop is not None:
            bare_stop.set()
        if bare_led is not None:
            bare_led.close()
        sim.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(doc, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
