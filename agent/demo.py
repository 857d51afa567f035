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
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent import config, ids, printing, syncing, transactions
from agent.errors import NeedsConnection
from agent.harness import ServerProcess
from agent.ledger import Ledger, init_ledger, open_ledger, verify

if TYPE_CHECKING:
    from hardware.sim.printer import PrinterSim
    from sync.engine import SyncReport

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


@dataclass
class _Story:
    """What the steps share: where to write, what to stop, the seeded randomness."""

    out: Any
    root: Path
    stack: ExitStack
    rng: random.Random


def run(out: Any, *, count: int = 50, root: Path | None = None, seed: int = 7) -> dict[str, Any]:
    """Run the demo, writing its story to ``out`` (a rich Console); return a summary."""
    root = root or Path(tempfile.mkdtemp(prefix="kiosk-agent-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with ExitStack() as stack:
        story = _Story(out, root, stack, random.Random(seed))
        out.rule("[bold]kiosk-agent demo")
        out.print(f"working folder: {root}")
        server, lsp_id, kiosk = _central_server(story)
        cfg, ledger, sim, enrolled = _enrolled_kiosk(story, server, kiosk["enrollment_code"])
        server.stop()
        out.print("\n[bold red]link down[/]: the server is unreachable; the queue keeps moving")
        first_token, pending = _offline_day(story, cfg, ledger, sim, count)
        server.start()
        out.print("\n[bold green]link back[/]: syncing")
        report = _sync(story, cfg, ledger, pending)
        check = verify(ledger)
        out.print(f"  ledger verified: {check.count} records, chain and signatures intact: {check.ok}")
        totals = _reconciliation(story, server, lsp_id)
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
            "reconciliation": totals,
            "seconds": round(time.monotonic() - t0, 1),
        }
    out.print(f"done in {summary['seconds']} s; the server and the printer simulator are stopped.")
    return summary


def _central_server(story: _Story) -> tuple[ServerProcess, str, dict[str, Any]]:
    """kiosk-server in its own process with an LSP and one kiosk to enroll."""
    env = dict(os.environ, COLUMNS="120")  # room for the reconciliation table's columns
    server = ServerProcess(story.root, env=env)
    story.stack.callback(server.stop)
    server.cli("init")
    lsp = server.cli_json("lsp", "add", "--name", "Shree Balaji Seva LSP")
    kiosk = server.cli_json("kiosk", "add", "--lsp", lsp["lsp_id"], "--name", "Dausa Bazaar")
    server.start()
    story.out.print(f"central server up on {server.url}; LSP {lsp['lsp_id']}, kiosk {kiosk['kiosk_code']}")
    return server, lsp["lsp_id"], kiosk


def _enrolled_kiosk(
    story: _Story, server: ServerProcess, code: str
) -> tuple[config.Config, Ledger, PrinterSim, dict[str, Any]]:
    """The printer simulator, a kiosk config and ledger, enrolled with the server."""
    from hardware.sim.printer import PrinterSim

    sim = PrinterSim(transport="tcp", width_dots=576)
    sim.start()
    story.stack.callback(sim.stop)
    cfg_path = story.root / "agent.toml"
    cfg_path.write_text(
        '[agent]\ndata_dir = "kiosk"\noperator = "demo-operator"\n'
        f'[printer]\nurl = "{sim.url}"\nwidth_dots = 576\n[sync]\nbatch_max_records = 20\n',
        encoding="utf-8",
    )
    cfg = config.load(str(cfg_path), env={})
    init_ledger(cfg)
    ledger = story.stack.enter_context(open_ledger(cfg))
    enrolled = syncing.enroll(cfg, ledger, server.url, code)
    story.out.print(
        f"kiosk enrolled as [bold]{enrolled['kiosk_code']}[/]: "
        f"{enrolled['tokens_remaining']} tokens leased, printer simulator on {sim.url}"
    )
    return cfg, ledger, sim, enrolled


def _offline_day(
    story: _Story, cfg: config.Config, ledger: Ledger, sim: PrinterSim, count: int
) -> tuple[str, int]:
    """A refused online-only sale, then ``count`` sales recorded and printed with the link down.
    Returns the first receipt's token and how many records wait to sync."""
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
        story.out.print(f"  refused offline, as it should be: {exc.message}")
    first_token = ""
    printer = printing.open_configured(cfg)  # one connection for the whole queue
    story.stack.callback(printer.close)
    for i in range(count):
        v = transactions.create(ledger, _sale(story.rng, i), queue_print=True)
        printing.first_print(cfg, ledger, v["seq"], printer=printer)
        first_token = first_token or v["token"]
    sim.wait_for_cuts(count, timeout=30)
    counts = ledger.outbox_counts()
    story.out.print(
        f"  {count} transactions recorded and {sim.paper.cuts} receipts printed while offline; "
        f"queue: [bold]{counts['pending']}[/] waiting"
    )
    return first_token, int(counts["pending"])


def _sale(rng: random.Random, i: int) -> transactions.NewTxn:
    """The i-th sale of the day's mix, with made-up bill numbers and mobiles."""
    service, amount, fields, with_mobile = _MIX[i % len(_MIX)]
    amt = amount.format(bill=rng.randint(300, 4000), small=rng.randint(80, 600), print=rng.randint(1, 4) * 10)
    f = {k: v.format(k8=f"{rng.randint(0, 10**8 - 1):08d}") for k, v in fields.items()}
    mobile = f"9{rng.randint(0, 10**9 - 1):09d}" if with_mobile else None
    return transactions.NewTxn(service, amt, "demo-operator", mobile=mobile, fields=f)


def _sync(story: _Story, cfg: config.Config, ledger: Ledger, pending: int) -> SyncReport:
    """Drain the queue with a progress bar, then a heartbeat; print what the server said."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("  sync"), BarColumn(), MofNCompleteColumn(), console=story.out) as bar:
        task = bar.add_task("sync", total=pending)
        engine = syncing.make_engine(
            cfg, ledger, progress=lambda done, total: bar.update(task, completed=done)
        )
        assert engine is not None
        report = engine.drain(60)
    engine.heartbeat({"printer": "ok"})  # the centre hears from the kiosk today
    story.out.print(
        f"  sent {report.sent}: {report.accepted} accepted, {report.duplicate} duplicate, "
        f"{report.rejected} rejected, {report.pending} still queued"
    )
    return report


def _reconciliation(story: _Story, server: ServerProcess, lsp_id: str) -> dict[str, Any]:
    """Today's reconciliation: printed as the LSP sees it, its totals returned."""
    today = datetime.fromtimestamp(ids.now_ms() / 1000, ids.IST).strftime("%Y-%m-%d")
    recon = json.loads(server.cli("reconcile", "--lsp", lsp_id, "--date", today, "--format", "json"))
    # The LSP's view, exactly as `kiosk-server reconcile` prints it.
    story.out.file.write(server.cli("reconcile", "--lsp", lsp_id, "--date", today, "--format", "table"))
    story.out.file.flush()
    totals: dict[str, Any] = recon["totals"]
    return totals
