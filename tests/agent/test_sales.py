"""The one new-transaction flow (validate, commit, queue the print, print, nudge sync) and the
void rules, in-process on the real ledger with a recording printer; the local API and the CLI
(click's CliRunner) call the same flow."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
from click.testing import CliRunner

from agent import config, sales, transactions
from agent.api import ApiServer, create_app
from agent.cli import cli
from agent.errors import InvalidInput, NeedsConnection
from agent.ledger import Ledger, LedgerAccess, verify
from agent.transactions import TxnView
from hardware import RecordingPrinter
from tests.conftest import ELEC, Kiosk, write_config

TOKEN = "s" * 43


def _cfg(kiosk: Kiosk, printer_url: str | None) -> config.Config:
    extra = "" if printer_url is None else f'[printer]\nurl = "{printer_url}"\nlang = "en"\n'
    write_config(kiosk.root, extra)
    return kiosk.cfg


def _req(amount: str = "100", **kw: object) -> transactions.NewTxn:
    return transactions.NewTxn(ELEC["service"], amount, None, fields=dict(ELEC["fields"]), **kw)  # type: ignore[arg-type]


@pytest.fixture
def recorder() -> RecordingPrinter:
    return RecordingPrinter(build=False)


def test_commit_then_print_then_nudge(kiosk: Kiosk, ledger: Ledger, recorder: RecordingPrinter) -> None:
    cfg = _cfg(kiosk, "socket://127.0.0.1:9")  # printing on; the recorder stands in for it
    order: list[str] = []

    def nudge(v: TxnView) -> None:
        order.append(f"nudge {v['seq']}")
        assert len(recorder.receipts) == v["seq"]  # the receipt came out before sync was nudged
        assert ledger.by_seq(v["seq"])["print_state"] == "printed"

    v = sales.new_sale(cfg, ledger, _req("250"), then=sales.AfterCommit(printer=recorder, nudge=nudge))
    assert v["print_state"] == "printed" and v["print_error"] is None and order == ["nudge 1"]
    [receipt] = recorder.receipts
    assert receipt.token == v["token"] and receipt.amount_paise == 25000 and not receipt.duplicate
    assert v["operator"] == cfg.settings.agent.operator  # nobody logged in: the configured one
    assert ledger.find(v["token"])["print_state"] == "printed" and verify(ledger).ok


def test_empty_printer_url_means_no_printing(
    kiosk: Kiosk, ledger: Ledger, recorder: RecordingPrinter
) -> None:
    cfg = _cfg(kiosk, "")
    assert cfg.settings.printer.enabled is False and cfg.settings.printer.kind == "none"
    v = sales.new_sale(cfg, ledger, _req(), then=sales.AfterCommit(printer=recorder))
    assert v["print_state"] is None and recorder.receipts == []
    assert ledger.find(v["token"])["print_state"] is None  # no job queued that nothing would print


def test_api_with_empty_printer_url_queues_no_print_job(kiosk: Kiosk, ledger: Ledger) -> None:
    """The bug: `[printer] url = ""` made the API queue a print job that was never printed."""
    cfg = _cfg(kiosk, "")
    committed: list[int] = []
    app = create_app(ledger, cfg, token=TOKEN, on_commit=lambda v: committed.append(v["seq"]))
    with ApiServer(app) as server:
        r = requests.post(
            server.url + "/api/transactions",
            json=ELEC,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        assert r.json()["print_state"] is None and committed == [1]
    assert ledger.by_seq(1)["print_state"] is None


def test_api_prints_on_the_printer_it_is_given(
    kiosk: Kiosk, ledger: Ledger, recorder: RecordingPrinter
) -> None:
    cfg = _cfg(kiosk, "/dev/ttyS-none")
    app = create_app(LedgerAccess(ledger), cfg, token=TOKEN, printer=recorder)
    with ApiServer(app) as server:
        h = {"Authorization": f"Bearer {TOKEN}"}
        made = requests.post(server.url + "/api/transactions", json=ELEC, headers=h, timeout=10).json()
        status = requests.get(server.url + "/api/status", headers=h, timeout=10).json()
    assert made["print_state"] == "printed" and [r.token for r in recorder.receipts] == [made["token"]]
    assert status["printer"] == {"kind": "serial", "state": "unknown"}


def test_printer_trouble_never_undoes_the_sale(
    kiosk: Kiosk, ledger: Ledger, recorder: RecordingPrinter
) -> None:
    from agent import printing

    cfg = _cfg(kiosk, "socket://127.0.0.1:9")
    recorder.fail("paper_out")
    nudged: list[int] = []
    v = sales.new_sale(
        cfg, ledger, _req(), then=sales.AfterCommit(recorder, lambda v: nudged.append(v["seq"]))
    )
    assert v["print_state"] == "pending" and "paper" in str(v["print_error"]).lower()
    assert nudged == [1] and ledger.count() == 1 and recorder.receipts == []
    recorder.recover()
    again = printing.reprint(cfg, ledger, v["token"], recorder)
    # nothing came out before: the citizen's only receipt is the original, not a DUPLICATE
    assert again["print_state"] == "printed" and again["duplicate"] is False
    assert printing.reprint(cfg, ledger, v["token"], recorder)["duplicate"] is True
    assert [r.duplicate for r in recorder.receipts] == [False, True]
    assert ledger.find(v["token"])["print_state"] == "printed"


def test_bad_input_writes_nothing_prints_nothing(
    kiosk: Kiosk, ledger: Ledger, recorder: RecordingPrinter
) -> None:
    cfg = _cfg(kiosk, "socket://127.0.0.1:9")
    nudged: list[int] = []
    then = sales.AfterCommit(recorder, lambda v: nudged.append(v["seq"]))
    with pytest.raises(InvalidInput, match="at most 2 decimals"):
        sales.new_sale(cfg, ledger, _req("10.005"), then=then)
    online_only = next(s for s in transactions.current_catalog(ledger).services if s.online_only)
    req = transactions.NewTxn(online_only.code, "10", "op1")
    with pytest.raises(NeedsConnection):
        sales.new_sale(cfg, ledger, req, online=False, then=then)
    assert ledger.count() == 0 and recorder.receipts == [] and nudged == []
    assert ledger.rows() == []


def test_a_failing_nudge_does_not_fail_the_sale(kiosk: Kiosk, ledger: Ledger) -> None:
    def broken(v: TxnView) -> None:
        raise RuntimeError("scheduler gone")

    v = sales.new_sale(kiosk.cfg, ledger, _req(), then=sales.AfterCommit(nudge=broken))
    assert v["seq"] == 1 and ledger.count() == 1


def test_logged_in_operator_serves_and_voids(kiosk: Kiosk, ledger: Ledger) -> None:
    ledger.operators.add("asha", 1)
    ledger.operators.log_in("asha")
    sale = sales.new_sale(kiosk.cfg, ledger, _req())
    assert sale["operator"] == "asha"
    given = sales.new_sale(
        kiosk.cfg, ledger, transactions.NewTxn(ELEC["service"], "5", "ravi", fields=ELEC["fields"])
    )
    assert given["operator"] == "ravi"
    void = sales.void_sale(kiosk.cfg, ledger, sale["token"], "wrong bill")
    assert void["kind"] == "void" and void["operator"] == "asha" and void["token"] == sale["token"]
    assert ledger.find(sale["token"])["voided_by"] == void["seq"]


def test_void_rules(ledger: Ledger) -> None:
    sale = transactions.create(
        ledger, transactions.NewTxn(ELEC["service"], "100", "op1", fields=ELEC["fields"])
    )
    with pytest.raises(InvalidInput, match="reason"):
        sales.void(ledger, sale["token"], " " * 3, "op1")
    with pytest.raises(InvalidInput, match="reason"):
        sales.void(ledger, sale["token"], "x" * 201, "op1")
    rec = sales.void(ledger, sale["token"], "duplicate entry", "op1")
    with pytest.raises(InvalidInput, match="only a sale"):
        sales.void(ledger, str(rec["seq"]), "void of a void", "op1")
    with pytest.raises(InvalidInput, match="already voided"):
        sales.void(ledger, sale["token"], "again", "op1")
    assert ledger.count() == 2 and verify(ledger).ok


@pytest.fixture
def cli_kiosk(kiosk: Kiosk) -> Iterator[Kiosk]:
    write_config(kiosk.root, '[printer]\nurl = ""\n')
    result = CliRunner().invoke(cli, ["--config", str(kiosk.config_path), "init", "--dev-leases"])
    assert result.exit_code == 0, result.output
    yield kiosk


def test_cli_txn_new_and_void_take_the_same_flow(cli_kiosk: Kiosk) -> None:
    runner = CliRunner()
    base = ["--config", str(cli_kiosk.config_path)]
    fields = [a for k, val in ELEC["fields"].items() for a in ("--field", f"{k}={val}")]
    made = runner.invoke(
        cli, [*base, "txn", "new", "--service", ELEC["service"], "--amount", "75", *fields, "--json"]
    )
    assert made.exit_code == 0, made.output
    v = json.loads(made.output)
    assert v["amount_paise"] == 7500 and v["print_state"] is None  # url = "": no job queued
    voided = runner.invoke(cli, [*base, "txn", "void", v["token"], "--reason", "typo", "--json"])
    assert voided.exit_code == 0, voided.output
    assert json.loads(voided.output)["voids_seq"] == v["seq"]
    again = runner.invoke(cli, [*base, "txn", "void", v["token"], "--reason", "typo"])
    assert isinstance(again.exception, InvalidInput) and "already voided" in str(again.exception)


def test_a_failing_print_queue_never_fails_the_committed_sale(kiosk: Kiosk, ledger: Ledger) -> None:
    write_config(kiosk.root, '[printer]\nurl = "socket://127.0.0.1:9"\n')

    def broken(seq: int) -> None:
        raise RuntimeError("print worker gone")

    v = sales.new_sale(kiosk.cfg, ledger, _req(), then=sales.AfterCommit(enqueue=broken))
    assert ledger.count() == 1 and ledger.find(v["token"])["print_state"] == "pending"
