"""Reconciliation per LSP, kiosk and IST day: amounts, commission by catalog version, voids, late
syncs, gaps, forks, missing heartbeats; the same document over HTTP (JSON, CSV) and the CLI."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from server_stub import catalog
from tests.server_stub.conftest import Harness, run_cli
from tests.server_stub.kiosk_fake import FakeKiosk

IST = ZoneInfo("Asia/Kolkata")


def ist_ms(day: int, hh: int, mm: int = 0) -> int:
    return int(datetime(2026, 9, day, hh, mm, tzinfo=IST).timestamp() * 1000)


def set_clock(h: Harness, fakes: list[FakeKiosk], ms: int) -> None:
    import time

    h.clock.offset = ms / 1000 - time.time()
    for f in fakes:
        f.now = None
    for f in fakes:
        f.now = h.clock()


def catalog_v2() -> str:
    doc = json.loads(catalog.bundled_catalog_text())
    doc["version"] = 2
    for s in doc["services"]:
        if s["code"] == "WATER_BILL":
            s["commission"] = {"kind": "flat", "paise": 900}
    return json.dumps(doc)


def scenario(h: Harness) -> dict[str, Any]:
    lsp1, lsp2 = h.lsp("One"), h.lsp("Two")
    set_clock(h, [], ist_ms(20, 23))  # enrolled the evening before
    a, b, c = h.enrolled(lsp1.lsp_id), h.enrolled(lsp1.lsp_id), h.enrolled(lsp2.lsp_id)
    fakes = [a, b, c]
    set_clock(h, fakes, ist_ms(21, 20))
    with h.engine.begin() as conn:
        assert catalog.add_version(conn, catalog_v2(), h.now_ms()).version == 2
    assert a.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code == 200
    recs = [
        a.make_record(service="ELEC_BILL", amount_paise=150_000, fee_paise=1000, created_at=ist_ms(21, 10)),
        a.make_record(service="CASTE_CERT", amount_paise=0, fee_paise=5000, created_at=ist_ms(21, 11)),
        a.make_record(
            service="WATER_BILL",
            amount_paise=20_000,
            fee_paise=1000,
            created_at=ist_ms(21, 12),
            catalog_version=2,
        ),
        a.make_record(
            service="WATER_BILL", amount_paise=20_000, fee_paise=1000, created_at=ist_ms(21, 12, 30)
        ),
    ]
    recs.append(
        a.make_record(
            kind="void",
            voids_seq=1,
            reason="typo",
            token=recs[0]["token"],
            service="ELEC_BILL",
            amount_paise=150_000,
            fee_paise=1000,
            created_at=ist_ms(21, 13),
        )
    )
    assert {x["status"] for x in a.push(recs).json()["acks"]} == {"accepted"}
    c_rec = c.make_record(created_at=ist_ms(21, 9))
    assert c.push([c_rec]).json()["acks"][0]["status"] == "accepted"

    _next_morning(h, fakes, a)
    return {"lsp1": lsp1, "lsp2": lsp2, "a": a, "b": b, "c": c}


def _next_morning(h: Harness, fakes: list[FakeKiosk], a: FakeKiosk) -> None:
    set_clock(h, fakes, ist_ms(22, 5))
    next_day = a.make_record(
        service="WATER_BILL", amount_paise=20_000, fee_paise=1000, created_at=ist_ms(22, 0, 1)
    )  # the next IST day (still the 21st in UTC), on catalog v1 within the grace period
    # 28.5 h before it was received: a late sync; and made before the record before it: a clock
    # that stepped back, counted as clock_suspect
    late = a.make_record(
        service="ELEC_BILL", amount_paise=100_000, fee_paise=1000, created_at=ist_ms(21, 0, 30)
    )
    assert [x["status"] for x in a.push([next_day, late]).json()["acks"]] == ["accepted", "accepted"]
    fork = a.make_record(
        seq=7,
        prev_hash=next_day["hash"],
        append=False,
        created_at=ist_ms(21, 14),
        token=late["token"],
        amount_paise=1,
    )
    assert a.push([fork]).json()["acks"][0]["reason"] == "fork"
    a.make_record(created_at=ist_ms(21, 15))  # seq 8 never arrives
    gap = [a.make_record(created_at=ist_ms(21, 15, 30)), a.make_record(created_at=ist_ms(21, 16))]
    assert [x["reason"] for x in a.push(gap).json()["acks"]] == ["gap", "gap"]


EXPECTED_A = {
    "count": 5,
    "gross_paise": 140_000,
    "fee_paise": 8000,
    "commission_paise": 6100,
    "voids": 1,
    "late_syncs": 1,
    "gaps": 2,
    "forks": 1,
    "rejected": 0,
    "clock_suspect": 1,
    "days_without_heartbeat": 0,
}
EXPECTED_B = {
    "count": 0,
    "gross_paise": 0,
    "fee_paise": 0,
    "commission_paise": 0,
    "voids": 0,
    "late_syncs": 0,
    "gaps": 0,
    "forks": 0,
    "rejected": 0,
    "clock_suspect": 0,
    "days_without_heartbeat": 1,
}


def test_reconciliation_http_and_cli_agree(server: Harness) -> None:
    s = scenario(server)
    lsp1 = s["lsp1"]
    resp = server.lsp_get(lsp1.api_key, "/v1/reconciliation", params={"date": "2026-09-21"})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["lsp_id"] == lsp1.lsp_id and doc["date"] == "2026-09-21"
    rows = {k["kiosk_code"]: k for k in doc["kiosks"]}
    assert set(rows) == {s["a"].kiosk_code, s["b"].kiosk_code}  # not the other LSP's kiosk
    a_row = {k: rows[s["a"].kiosk_code][k] for k in EXPECTED_A}
    assert a_row == EXPECTED_A
    assert rows[s["a"].kiosk_code]["flagged"] is True
    assert {k: rows[s["b"].kiosk_code][k] for k in EXPECTED_B} == EXPECTED_B
    assert doc["totals"] == {k: EXPECTED_A[k] + EXPECTED_B[k] for k in EXPECTED_A}

    next_day = server.lsp_get(lsp1.api_key, "/v1/reconciliation", params={"date": "2026-09-22"}).json()
    assert {k["kiosk_code"]: k["count"] for k in next_day["kiosks"]}[s["a"].kiosk_code] == 1

    as_csv = server.lsp_get(
        lsp1.api_key, "/v1/reconciliation", params={"date": "2026-09-21"}, headers={"Accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert table[-1]["kiosk_code"] == "TOTAL" and table[-1]["commission_rs"] == "61.00"  # rupees in CSV
    assert table[-1]["gross_rs"] == "1400.00" and table[-1]["fee_rs"] == "80.00"
    fmt_csv = server.lsp_get(
        lsp1.api_key, "/v1/reconciliation", params={"date": "2026-09-21", "format": "csv"}
    )
    assert fmt_csv.text == as_csv.text

    cli = run_cli(
        server.db_url, "reconcile", "--lsp", lsp1.lsp_id, "--date", "2026-09-21", "--format", "json"
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == doc
    cli_csv = run_cli(
        server.db_url, "reconcile", "--lsp", lsp1.lsp_id, "--date", "2026-09-21", "--format", "csv"
    )
    assert cli_csv.stdout == as_csv.text
    cli_table = run_cli(server.db_url, "reconcile", "--lsp", lsp1.lsp_id, "--date", "2026-09-21")
    assert cli_table.returncode == 0 and s["a"].kiosk_code in cli_table.stdout and "61.00" in cli_table.stdout

    # the gap closes when the missing record arrives: gaps drop to 0
    a = s["a"]
    assert [x["status"] for x in a.push(a.chain[7:10]).json()["acks"]] == ["accepted"] * 3
    doc = server.lsp_get(lsp1.api_key, "/v1/reconciliation", params={"date": "2026-09-21"}).json()
    row = {k["kiosk_code"]: k for k in doc["kiosks"]}[a.kiosk_code]
    assert row["gaps"] == 0 and row["count"] == 8


def test_csv_cells_are_spreadsheet_safe_and_money_is_in_rupees(server: Harness) -> None:
    lsp = server.lsp('=HYPERLINK("http://evil")')
    names = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "Plain shop"]
    for name in names:
        server.kiosk(lsp.lsp_id, name=name)
    fake = server.enrolled(lsp.lsp_id)  # one more kiosk, with a sale of Rs 1,500.00
    sale = fake.make_record(amount_paise=150_000)
    assert fake.push([sale]).json()["acks"][0]["status"] == "accepted"
    from server_stub.reconcile import day_of

    day = day_of(sale["created_at"], "Asia/Kolkata")
    text = server.lsp_get(lsp.api_key, "/v1/reconciliation", params={"date": day, "format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) >= {"'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "Plain shop"}
    assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r.values())
    total = rows[-1]
    assert total["gross_rs"] == "1500.00" and total["fee_rs"] == "10.00" and total["commission_rs"] == "7.50"
    doc = server.lsp_get(lsp.api_key, "/v1/reconciliation", params={"date": day}).json()
    assert doc["totals"]["gross_paise"] == 150_000  # JSON keeps paise
    assert {k["name"] for k in doc["kiosks"]} >= set(names)  # and the names as they are


def test_one_helper_makes_every_cell_safe() -> None:
    from decimal import Decimal

    from server_stub.sheets import rupees, safe_cell

    assert [safe_cell(x) for x in ("=1", "+1", "-1", "@x", "\tx", "\rx", "ok", "")] == [
        "'=1",
        "'+1",
        "'-1",
        "'@x",
        "'\tx",
        "'\rx",
        "ok",
        "",
    ]
    assert safe_cell(Decimal("-12.50")) == Decimal("-12.50") and safe_cell(-3) == -3  # numbers stay numbers
    assert str(rupees(-1250)) == "-12.50" and str(rupees(5)) == "0.05"
