"""Footprint of `kiosk-agent run`: time to READY, idle RSS and CPU, RSS after
10,000 transactions through the local API.

Baselines measured beside it in the same run: a bare `python -c pass` start
(for READY) and an idle Python process that imports nothing (for RSS).

    .venv/bin/python bench/agent_footprint.py            # ~2.5 min: 60 s idle, 10,000 transactions
    .venv/bin/python bench/agent_footprint.py --quick    # 10 s idle, 1,000 transactions
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agent.harness import free_port  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def start_run(cfg: Path) -> tuple[subprocess.Popen[bytes], float]:
    """Start `kiosk-agent run` with a NOTIFY_SOCKET of our own; return it and seconds to READY=1."""
    sock_path = cfg.parent / "notify.sock"
    sock_path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path))
    exe = str(Path(sys.executable).with_name("kiosk-agent"))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [exe, "--config", str(cfg), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    while True:
        msg = sock.recv(4096).decode()
        if "READY=1" in msg:
            ready = time.perf_counter() - t0
            break
    sock.close()
    return proc, ready


def python_start() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - t0


def bare_rss() -> float:
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    time.sleep(0.5)  # let it settle: this is the baseline being measured, not a wait for a result
    r = rss_mb(p.pid)
    p.communicate(b"")
    return r


def ready_times(cfg: Path) -> tuple[list[float], list[float]]:
    """Five starts to READY=1, each beside a bare `python -c pass` start."""
    readies, starts = [], []
    for _ in range(5):  # interleaved with the baseline
        starts.append(python_start())
        proc, ready = start_run(cfg)
        readies.append(ready)
        proc.terminate()
        proc.wait(timeout=10)
    return readies, starts


def api_rate(work: Path, port: int, n_txn: int) -> float:
    """Transactions per second through the running agent's local API."""
    token = (work / "data" / "api.token").read_text().strip()
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    body = {
        "service": "ELEC_BILL",
        "amount": "1250.50",
        "mobile": "9876543210",
        "fields": {"discom": "JVVNL", "k_number": "210412345678"},
    }
    t_api = time.perf_counter()
    for _ in range(n_txn):
        r = s.post(f"http://127.0.0.1:{port}/api/transactions", json=body, timeout=30)
        r.raise_for_status()
    return n_txn / (time.perf_counter() - t_api)


def measure(idle_s: int, n_txn: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kiosk-footprint-", dir=ROOT.parent))
    try:
        port = free_port()
        cfg = work / "agent.toml"
        cfg.write_text(f'[agent]\ndata_dir = "data"\nlog_level = "WARNING"\n[local_api]\nport = {port}\n')
        exe = str(Path(sys.executable).with_name("kiosk-agent"))
        subprocess.run([exe, "--config", str(cfg), "init", "--dev-leases"], check=True, capture_output=True)
        readies, starts = ready_times(cfg)
        proc, ready = start_run(cfg)
        c0, t0 = cpu_s(proc.pid), time.monotonic()
        time.sleep(idle_s)  # the idle period being measured
        idle_cpu = (cpu_s(proc.pid) - c0) / (time.monotonic() - t0) * 100
        idle_rss = rss_mb(proc.pid)
        base_rss = bare_rss()
        rate = api_rate(work, port, n_txn)
        after_rss = rss_mb(proc.pid)
        proc.terminate()
        code = proc.wait(timeout=10)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "ready_s_median": round(statistics.median(readies), 3),
        "python_start_s_median": round(statistics.median(starts), 3),
        "ready_vs_python_start": round(statistics.median(readies) / statistics.median(starts), 1),
        "idle_seconds": idle_s,
        "idle_cpu_percent": round(idle_cpu, 3),
        "idle_rss_mb": round(idle_rss, 1),
        "bare_python_rss_mb": round(base_rss, 1),
        "idle_rss_vs_bare_python": round(idle_rss / base_rss, 1),
        "transactions": n_txn,
        "rss_after_transactions_mb": round(after_rss, 1),
        "api_transactions_per_s": round(rate, 1),
        "exit_code_after_sigterm": code,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    idle_s = 10 if args.quick else 60
    n_txn = 1000 if args.quick else 10_000
    out = measure(idle_s, n_txn)
    if args.json:
        print(json.dumps(out))
        return
    print(
        f"time to READY=1   median {out['ready_s_median']} s "
        f"(python -c pass {out['python_start_s_median']} s, {out['ready_vs_python_start']}x)  target <= 1.5 s"
    )
    print(
        f"idle RSS          {out['idle_rss_mb']} MB after {idle_s} s "
        f"(bare python {out['bare_python_rss_mb']} MB, {out['idle_rss_vs_bare_python']}x)   target <= 80 MB"
    )
    print(f"idle CPU          {out['idle_cpu_percent']} % over {idle_s} s   target < 1 %")
    print(
        f"RSS after {n_txn} transactions via the local API: {out['rss_after_transactions_mb']} MB "
        f"({out['api_transactions_per_s']} txn/s)"
    )
    print(f"SIGTERM exit code {out['exit_code_after_sigterm']}")


if __name__ == "__main__":
    main()
