"""Monthly reconciliation per LSP and kiosk over a simulated month: the daily columns summed, heartbeat
days, the same document as JSON and CSV, and an LSP sees only its own kiosks."""

from __future__ import annotations

import csv
import io
import json

import pytest

from server_stub.errors import Unprocessable
from server_stub.monthly import month_report, parse_month
from tests.server_stub.conftest import Harness, run_cli
from tests.server_stub.month_sim import COMMISSION_PER_SALE, DAYS, MONTH, SALE_PAISE, SILENT_AFTER, simulate


def test_a_month_per_kiosk_over_http(server: Harness) -> None:
    m = simulate(server)
    resp = server.lsp_get(m.lsp.api_key, "/v1/reconciliation/monthly", params={"month": MONTH})
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["month"], doc["days_in_month"], doc["days_over"], doc["complete"]) == (MONTH, 30, 30, True)
    rows = {k["kiosk_code"]: k for k in doc["kiosks"]}
    code = {name: fake.kiosk_code for name, fake in m.kiosks.items()}
    assert set(rows) == {code[n] for n in ("good", "late", "silent", "forked")}  # not the other LSP's
    for name in ("good", "late", "silent", "forked"):
        row = rows[code[name]]
        assert row["count"] == DAYS and row["gross_paise"] == DAYS * SALE_PAISE
        assert row["commission_paise"] == DAYS * COMMISSION_PER_SALE and row["fee_paise"] == DAYS * 1000
        assert row["enrolled_days"] == DAYS
    good = rows[code["good"]]
    assert (good["late_syncs"], good["forks"], good["heartbeat_days"], good["flagged"]) == (0, 0, DAYS, False)
    assert rows[code["late"]]["late_syncs"] == 2
    silent = rows[code["silent"]]
    assert (silent["heartbeat_days"], silent["days_without_heartbeat"]) == (SILENT_AFTER, DAYS - SILENT_AFTER)
    forked = rows[code["forked"]]
    assert (forked["forks"], forked["flagged"]) == (1, True)
    assert doc["totals"]["count"] == 4 * DAYS and doc["totals"]["late_syncs"] == 2

    as_csv = server.lsp_get(
        m.lsp.api_key, "/v1/reconciliation/monthly", params={"month": MONTH, "format": "csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert [r["kiosk_code"] for r in table] == [*rows, "TOTAL"]
    assert table[-1]["commission_rs"] == f"{4 * DAYS * COMMISSION_PER_SALE / 100:.2f}"
    assert {r["kiosk_code"]: int(r["heartbeat_days"]) for r in table[:-1]}[code["silent"]] == SILENT_AFTER

    # the CLI gives the same month (its clock is the real one, also past November 2026)
    cli = run_cli(
        server.db_url, "reconcile-month", "--lsp", m.lsp.lsp_id, "--month", MONTH, "--format", "json"
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == doc
    cli_csv = run_cli(
        server.db_url, "reconcile-month", "--lsp", m.lsp.lsp_id, "--month", MONTH, "--format", "csv"
    )
    assert cli_csv.stdout == as_csv.text
    table_out = run_cli(server.db_url, "reconcile-month", "--lsp", m.lsp.lsp_id, "--month", MONTH)
    assert (
        table_out.returncode == 0
        and f"{SILENT_AFTER}/{DAYS}" in table_out.stdout
        and "(flagged)" in table_out.stdout
    )
    bad = run_cli(server.db_url, "reconcile-month", "--lsp", "LSPX", "--month", MONTH)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_an_lsp_reads_only_its_own_month(server: Harness) -> None:
    m = simulate(server)
    own = server.lsp_get(m.lsp.api_key, "/v1/reconciliation/monthly", params={"month": MONTH})
    theirs = m.kiosks["other"].kiosk_code
    resp = server.lsp_get(
        m.lsp.api_key, "/v1/reconciliation/monthly", params={"month": MONTH, "kiosk_code": theirs}
    )
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    one = server.lsp_get(
        m.lsp.api_key,
        "/v1/reconciliation/monthly",
        params={"month": MONTH, "kiosk_code": m.kiosks["late"].kiosk_code},
    ).json()
    assert [k["kiosk_code"] for k in one["kiosks"]] == [m.kiosks["late"].kiosk_code]
    assert one["kiosks"][0] == {k["kiosk_code"]: k for k in own.json()["kiosks"]}[m.kiosks["late"].kiosk_code]
    no_key = server.session.get(
        server.url + "/v1/reconciliation/monthly", params={"month": MONTH}, timeout=30
    )
    assert no_key.status_code == 401


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-11", "2026-1", "1999-12"])
def test_a_bad_month_is_refused(server: Harness, month: str) -> None:
    lsp = server.lsp()
    resp = server.lsp_get(lsp.api_key, "/v1/reconciliation/monthly", params={"month": month})
    assert resp.status_code == 422 and set(resp.json()) == {"error", "detail"}
    with pytest.raises(Unprocessable):
        parse_month(month)


def test_the_current_month_counts_the_days_so_far(server: Harness) -> None:
    lsp = server.lsp()
    fake = server.enrolled(lsp.lsp_id)
    with server.engine.connect() as conn:
        now = server.now_ms()
        from server_stub.reconcile import day_of

        month = day_of(now, "Asia/Kolkata")[:7]
        report = month_report(conn, lsp.lsp_id, month, tz="Asia/Kolkata", sla_hours=24, now_ms=now)
    assert not report.complete and report.days_over < report.days_in_month
    row = report.kiosks[0]
    assert row.kiosk_code == fake.kiosk_code and row.enrolled_days == 0  # enrolled today: no day over yet
