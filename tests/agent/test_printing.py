"""The print flow through the printer simulator on a real TCP socket: the
kiosk-agent CLI as a real process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.ledger import open_ledger, verify
from hardware.sim.printer import PrinterSim
from tests.conftest import Kiosk, write_config

ELEC = [
    "--service",
    "ELEC_BILL",
    "--amount",
    "1500.50",
    "--mobile",
    "9876543210",
    "--field",
    "discom=JVVNL",
    "--field",
    "k_number=210412345678",
]


@pytest.fixture
def printer() -> Iterator[PrinterSim]:
    with PrinterSim(transport="tcp") as sim:
        yield sim


def _with_printer(kiosk: Kiosk, url: str) -> None:
    kiosk.config_path.write_text(f'[agent]\ndata_dir = "data"\n[printer]\nurl = "{url}"\nwidth_dots = 384\n')
    kiosk.run("init", "--dev-leases", check=True)


def test_whole_receipt_decodes_and_its_qr_verifies(kiosk: Kiosk, printer: PrinterSim) -> None:
    _with_printer(kiosk, printer.url)
    doc = kiosk.json("txn", "new", *ELEC)
    assert doc["print_state"] == "printed"
    printer.wait_for_cuts(1)
    text = printer.paper.text
    assert doc["token"] in text and "1,500.50" in text and "XXXXXX3210" in text
    assert "9876543210" not in text
    [qr] = printer.paper.qr_payloads
    ok = kiosk.json("receipt", "verify", qr)
    assert ok["ok"] is True and ok["token"] == doc["token"] and ok["seq"] == doc["seq"]
    forged = qr.replace(doc["token"], "99000000024")
    bad = kiosk.run("receipt", "verify", forged)
    assert bad.returncode == 2 and "does not verify" in bad.stderr
    assert printer.paper.rasters and max(r.image.width for r in printer.paper.rasters) <= 384  # 58 mm paper
    assert printer.paper.render().height > 300


def test_printer_absent_then_reprint_once_back(kiosk: Kiosk) -> None:
    sim = PrinterSim(transport="tcp")
    sim.start()
    url = sim.url
    sim.stop()  # the port is known, nothing listens on it
    _with_printer(kiosk, url)
    doc = kiosk.json("txn", "new", *ELEC)  # exit 0 with the JSON although nothing printed
    assert doc["print_state"] == "pending" and "Cannot open the printer" in doc["print_error"]
    shown = kiosk.json("txn", "show", doc["token"])
    assert shown["print_state"] == "pending" and shown["print_error"]
    with PrinterSim(transport="tcp", port=int(url.rsplit(":", 1)[1])) as back:
        kiosk.json(
            "txn", "new", "--service", "WATER_BILL", "--amount", "5", "--field", "consumer_number=123456"
        )
        back.wait_for_cuts(1)
        assert doc["token"] not in back.paper.text  # the pending job did not print by itself
        again = kiosk.json("receipt", "reprint", doc["token"])
        # it never printed: the citizen's only receipt is the original, not a DUPLICATE
        assert again["print_state"] == "printed" and again["duplicate"] is False
        back.wait_for_cuts(2)
        assert "DUPLICATE" not in back.paper.text and back.paper.text.count(doc["token"]) == 1
        third = kiosk.json("receipt", "reprint", doc["token"])
        assert third["print_state"] == "printed" and third["duplicate"] is True
        back.wait_for_cuts(3)
        assert "DUPLICATE" in back.paper.text and back.paper.text.count(doc["token"]) == 2
    assert kiosk.json("txn", "show", doc["token"])["print_state"] == "printed"


def test_unplugged_mid_print_leaves_job_pending_and_ledger_intact(kiosk: Kiosk, printer: PrinterSim) -> None:
    _with_printer(kiosk, printer.url)
    printer.unplug_after = 300
    printer.fail_mode = "unplug"
    doc = kiosk.json("txn", "new", *ELEC)
    assert doc["print_state"] == "pending"
    with open_ledger(kiosk.cfg) as led:
        assert verify(led).ok and led.count() == 1
    printer.replug()
    printer.paper.clear()
    assert kiosk.json("receipt", "reprint", doc["token"])["print_state"] == "printed"
    printer.wait_for_cuts(1)
    assert doc["token"] in printer.paper.text


def test_paper_out(kiosk: Kiosk, printer: PrinterSim) -> None:
    _with_printer(kiosk, printer.url)
    printer.fail_mode = "paper_out"
    doc = kiosk.json("txn", "new", *ELEC)
    assert doc["print_state"] == "pending" and "paper" in doc["print_error"].lower()
    failed = kiosk.run("receipt", "reprint", doc["token"], "--json")
    assert failed.returncode == 5 and "paper" in failed.stderr.lower()
    assert printer.paper.cuts == 0


def test_render_png_without_printer(kiosk: Kiosk) -> None:
    kiosk.run("init", "--dev-leases", check=True)
    doc = kiosk.json("txn", "new", *ELEC)
    assert doc["print_state"] is None  # no printer configured: no job
    out = kiosk.root / "r.png"
    assert kiosk.json("receipt", "render", doc["token"], "--png", str(out))["png"] == str(out)
    from PIL import Image

    with Image.open(out) as img:
        assert img.width == 576 and img.height > 300
    assert kiosk.run("receipt", "reprint", doc["token"]).returncode == 2


def test_print_worker_prints_in_order_and_reports_the_printer(kiosk: Kiosk) -> None:
    from agent import printing, transactions
    from agent.ledger import LedgerAccess, init_ledger
    from hardware import RecordingPrinter

    write_config(kiosk.root, '[printer]\nurl = "socket://127.0.0.1:9"\n')  # on; the recorder stands in
    init_ledger(kiosk.cfg, dev_leases=True)
    recorder = RecordingPrinter(build=False)
    water = {"consumer_number": "3345678901"}
    with open_ledger(kiosk.cfg) as led:
        access = LedgerAccess(led)
        worker = printing.PrintWorker(kiosk.cfg, access, recorder)
        worker.start()
        try:
            seqs = []
            for i in range(5):
                with access() as held:
                    req = transactions.NewTxn("WATER_BILL", str(10 + i), "op1", fields=water)
                    seqs.append(transactions.create(held, req, queue_print=True)["seq"])
            futures = [worker.enqueue_first_print(seq) for seq in seqs]
            assert [f.result(10).state for f in futures] == ["printed"] * 5  # type: ignore[attr-defined]
            assert [r.seq for r in recorder.receipts] == seqs and worker.state == "ok"
            recorder.fail("offline")
            assert worker.check().result(10) == "offline" and worker.state == "offline"
            failed = worker.reprint(str(seqs[0]))
            assert failed["print_state"] == "pending" and "offline" in str(failed["print_error"])
        finally:
            worker.stop()
        idle = printing.PrintWorker(kiosk.cfg, access, recorder)  # never started: nothing runs
        waiting = idle.enqueue_first_print(seqs[0])
        idle.stop()  # a stop drops what waits (the job stays pending in the ledger)
        assert waiting.cancelled()
