"""`kiosk-agent demo`: the whole story on one machine, no config needed.

A central server (its own process, its own SQLite) on a free loopback port,
an LSP and a kiosk, enrollment, the printer simulator, 50 transactions while
the link is down, the queue, the link back, a sync with a progress bar, the
LSP's reconciliation for today and a receipt PNG. Everything it starts, it stops.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from agent import config, ids, printing, syncing, transactions
from agent.errors import AgentError, NeedsConnection
from agent.ledger import init_ledger, open_ledger, verify

# (service, amount in rupees, fields, mobile) -- a day at a rural e-Mitra
_MIX: list[tuple[str, str, dict[str, str], bool]] = [
    ("ELEC_BILL", "{bill}", {"discom": "JVVNL", "k_number": "2104{k8}"}, True),
    ("WATER_BILL", "{small}", {"consumer_number": "33{k8}"}, True),
    ("INCOME_CERT", "0", {"applicant_name": "Sita Devi", "annual_income": "96000"}, False),
    ("CASTE_CERT", "0", {"applicant_name": "Ramesh Meena", "caste": "Meena", "district": "Dausa"}, True),
    (
        "BIRTH_CERT",
        "0",
        {"child_name": "Aarav", "date_of_birth": "2026-10-02", "place_of_birth": "Dausa"},
        False,
    ),
    ("PRINT_LAMINATION", "{print}", {"pages": "2", "job": "lamination"}, False),
    ("SCHOLARSHIP", "0", {"student_name": "Pooja Meena", "institution_code": "RJ0812"}, True),
    ("JAN_AADHAAR", "0", {"family_head": "Ram Prasad"}, True),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """kiosk-server as a child process."""

    def __init__(self, root: Path) -> None:
        self.db = f"sqlite:///{root / 'server.db'}"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        exe = [sys.executable, "-c", "from server_stub.cli import main; main()", "--db", self.db, *args]
        env = dict(os.environ, COLUMNS="120")  # room for the reconciliation table's columns
        return subprocess.run(exe, capture_output=True, text=True, check=True, timeout=120, env=env).stdout

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "from server_stub.cli import main; main()",
                    "--db",
                    self.db,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AgentError(f"the demo server exited; see {self.log}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)  # polling with a deadline
        raise AgentError("the demo server did not start in 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def run(out: Any, *, count: int = 50, root: Path | None = None, seed: int = 7) -> dict[str, Any]:
    """Run the demo, writing its story to ``out`` (a rich Console); return a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from hardware.sim.printer import PrinterSim

    rng = random.Random(seed)
    root = root or Path(tempfile.mkdtemp(prefix="kiosk-agent-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with ExitStack() as stack:
        out.rule("[bold]kiosk-agent demo")
        out.print(f"working folder: {root}")
        server = _Server(root)
        stack.callback(server.stop)
        server.cli("init")
        lsp = json.loads(server.cli("lsp", "add", "--name", "Shree Balaji Seva LSP", "--json"))
        kiosk = json.loads(
            server.cli("kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Dausa Bazaar", "--json")
        )
        server.start()
        out.print(f"central server up on {server.url}; LSP {lsp['lsp_id']}, kiosk {kiosk['kiosk_code']}")

        sim = PrinterSim(transport="tcp", width_dots=576)
        sim.start()
        stack.callback(sim.stop)
        cfg_path = root / "agent.toml"
        cfg_path.write_text(
            '[agent]\ndata_dir = "kiosk"\noperator = "demo-operator"\n'
            f'[printer]\nurl = "{sim.url}"\nwidth_dots = 576\n[sync]\nbatch_max_records = 20\n',
            encoding="utf-8",
        )
        cfg = config.load(str(cfg_path), env={})
        init_ledger(cfg)
        ledger = stack.enter_context(open_ledger(cfg))
        enrolled = syncing.enroll(cfg, ledger, server.url, kiosk["enrollment_code"])
        out.print(
            f"kiosk enrolled as [bold]{enrolled['kiosk_code']}[/]: "
            f"{enrolled['tokens_remaining']} tokens leased, printer simulator on {sim.url}"
        )

        server.stop()
        out.print("\n[bold red]link down[/]: the server is unreachable; the queue keeps moving")
        try:
            transactions.create(
                ledger,
                transactions.NewTxn(
                    "MOBILE_RECHARGE",
                    "199",
                    "demo-operator",
                    mobile="9876543210",
                    fields={"operator_code": "JIO"},
                ),
                online=False,
            )
        except NeedsConnection as exc:
            out.print(f"  refused offline, as it should be: {exc.message}")
        first_token = ""
        printer = printing.open_configured(cfg)  # one connection for the whole queue
        stack.callback(printer.close)
        for i in range(count):
            service, amount, fields, with_mobile = _MIX[i % len(_MIX)]
            amt = amount.format(
                bill=rng.randint(300, 4000), small=rng.randint(80, 600), print=rng.randint(1, 4) * 10
            )
            f = {k: v.format(k8=f"{rng.randint(0, 10**8 - 1):08d}") for k, v in fields.items()}
            mobile = f"9{rng.randint(0, 10**9 - 1):09d}" if with_mobile else None
            v = transactions.create(
                ledger,
                transactions.NewTxn(service, amt, "demo-operator", mobile=mobile, fields=f),
                queue_print=True,
            )
            printing.first_print(cfg, ledger, v["seq"], printer=printer)
            first_token = first_token or v["token"]
        sim.wait_for_cuts(count, timeout=30)
        counts = ledger.outbox_counts()
        out.print(
            f"  {count} transactions recorded and {sim.paper.cuts} receipts printed while offline; "
            f"queue: [bold]{counts['pending']}[/] waiting"
        )

        server.start()
        out.print("\n[bold green]link back[/]: syncing")
        with Progress(TextColumn("  sync"), BarColumn(), MofNCompleteColumn(), console=out) as bar:
            task = bar.add_task("sync", total=counts["pending"])
            engine = syncing.make_engine(
                cfg, ledger, progress=lambda done, total: bar.update(task, completed=done)
            )
            assert engine is not None
            report = engine.drain(60)
        engine.heartbeat({"printer": "ok"})  # the centre hears from the kiosk today
        out.print(
            f"  sent {report.sent}: {report.accepted} accepted, {report.duplicate} duplicate, "
            f"{report.rejected} rejected, {report.pending} still queued"
        )
        check = verify(ledger)
        out.print(f"  ledger verified: {check.count} records, chain and signatures intact: {check.ok}")

        today = datetime.fromtimestamp(ids.now_ms() / 1000, ids.IST).strftime("%Y-%m-%d")
        recon = json.loads(
            server.cli("reconcile", "--lsp", lsp["lsp_id"], "--date", today, "--format", "json")
        )
        # The LSP's view, exactly as `kiosk-server reconcile` prints it.
        out.file.write(server.cli("reconcile", "--lsp", lsp["lsp_id"], "--date", today, "--format", "table"))
        out.file.flush()

        png = printing.render(cfg, ledger, first_token, root / "receipt.png")
        sim.paper.save_png(root / "printer-paper.png")
        out.print(f"receipt: {png}\nall paper from the printer simulator: {root / 'printer-paper.png'}")
        summary = {
            "root": str(root),
            "kiosk_code": enrolled["kiosk_code"],
            "transactions": count,
            "report": report.public(),
            "verified": check.ok,
            "receipt_png": str(png),
            "reconciliation": recon["totals"],
            "seconds": round(time.monotonic() - t0, 1),
        }
    out.print(f"done in {summary['seconds']} s; the server and the printer simulator are stopped.")
    return summary
