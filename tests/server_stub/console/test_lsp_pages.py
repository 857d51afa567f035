"""The LSP's pages: kiosk states by heartbeat, a kiosk's days, and the day's and month's
reconciliation downloaded as CSV and XLSX, equal to the JSON (and the day's to the API's)."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

from openpyxl import load_workbook

from tests.server_stub.console.conftest import MONTH, Console, Fleet, issue_statements

MONEY = ("gross", "fee", "commission")


def _state(html: str, kiosk_code: str) -> str:
    row = re.search(rf'<tr id="kiosk-{kiosk_code}".*?</tr>', html, re.S)
    assert row, kiosk_code
    found = re.search(r'data-state="([a-z_]+)"', row.group(0))
    assert found
    return found.group(1)


def test_kiosks_are_flagged_by_their_last_heartbeat(console: Console, fleet: Fleet) -> None:
    page = console.signed_in("lsp1-viewer").get("/console/lsp").text
    assert _state(page, fleet.online.kiosk_code) == "online"
    assert _state(page, fleet.stale.kiosk_code) == "stale"
    assert _state(page, fleet.offline.kiosk_code) == "offline"
    assert _state(page, fleet.not_enrolled) == "not_enrolled"
    online_row = re.search(rf'<tr id="kiosk-{fleet.online.kiosk_code}".*?</tr>', page, re.S)
    assert online_row and "paper_out" in online_row.group(0) and "2026-09-23 12:00" in online_row.group(0)
    stale_row = re.search(rf'<tr id="kiosk-{fleet.stale.kiosk_code}".*?</tr>', page, re.S)
    assert stale_row and '<td class="num">4</td>' in stale_row.group(0)  # queue depth reported
    assert fleet.other.kiosk_code not in page
    assert "=HYPERLINK(&#34;x&#34;)" in page or "=HYPERLINK(&quot;x&quot;)" in page  # escaped, shown as text


def _rows_from_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _rows_from_xlsx(data: bytes) -> list[dict[str, Any]]:
    sheet = load_workbook(io.BytesIO(data), read_only=True).active
    values = [list(r) for r in sheet.iter_rows(values_only=True)]
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def _as_json_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [dict(k) for k in doc["kiosks"]]
    rows.append({**doc["totals"], "kiosk_code": "TOTAL", "name": "", "flagged": None})
    return rows


def _same(json_doc: dict[str, Any], csv_rows: list[dict[str, str]], xlsx_rows: list[dict[str, Any]]) -> None:
    expected = _as_json_rows(json_doc)
    assert len(expected) == len(csv_rows) == len(xlsx_rows)
    for want, c, x in zip(expected, csv_rows, xlsx_rows, strict=True):
        assert c["kiosk_code"] == x["kiosk_code"] == want["kiosk_code"]
        period = "month" if "month" in json_doc else "date"
        assert c[period] == x[period] == json_doc[period]
        for field in ("count", "voids", "late_syncs", "gaps", "forks", "rejected", "clock_suspect"):
            assert int(c[field]) == int(x[field]) == want[field], field
        for field in ("enrolled_days", "heartbeat_days"):  # a month's, per kiosk
            if field in want:
                assert int(c[field]) == int(x[field]) == want[field], field
        for m in MONEY:
            paise = want[f"{m}_paise"]
            assert Decimal(c[f"{m}_rs"]) * 100 == paise, m
            assert round(float(x[f"{m}_rs"]) * 100) == paise, m


def test_a_month_downloads_as_csv_and_xlsx_equal_to_its_json(console: Console, fleet: Fleet) -> None:
    b = console.signed_in("lsp1-admin")
    page = b.get(f"/console/lsp/month?month={MONTH}")
    assert page.status_code == 200 and 'id="download-xlsx"' in page.text
    assert "22 of 30 days over" in page.text
    doc = b.get(f"/console/lsp/month.json?month={MONTH}").json()
    api = console.h.lsp_get(fleet.api_key1, f"/v1/reconciliation/monthly?month={MONTH}")
    assert api.status_code == 200 and doc == api.json()
    online = next(k for k in doc["kiosks"] if k["kiosk_code"] == fleet.online.kiosk_code)
    assert (online["count"], online["gross_paise"], online["late_syncs"]) == (2, 430_000, 1)
    # enrolled on the 20th; the 20th to 22nd are over, its one heartbeat is on the 23rd
    assert (online["enrolled_days"], online["days_without_heartbeat"]) == (3, 3)
    csv_resp = b.get(f"/console/lsp/month.csv?month={MONTH}")
    api_csv = console.h.lsp_get(fleet.api_key1, f"/v1/reconciliation/monthly?month={MONTH}&format=csv")
    assert csv_resp.text == api_csv.text
    assert csv_resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_resp.headers["content-disposition"]
    xlsx = b.get(f"/console/lsp/month.xlsx?month={MONTH}")
    assert xlsx.headers["content-type"].startswith("application/vnd.openxmlformats")
    _same(doc, _rows_from_csv(csv_resp.text), _rows_from_xlsx(xlsx.content))
    names = {r["kiosk_code"]: r["name"] for r in _rows_from_xlsx(xlsx.content)}
    assert names[fleet.not_enrolled].startswith("'=")  # never a formula in a spreadsheet
    assert next(r for r in _rows_from_csv(csv_resp.text) if r["kiosk_code"] == fleet.not_enrolled)[
        "name"
    ].startswith("'=")


def test_a_day_downloads_equal_to_the_api(console: Console, fleet: Fleet) -> None:
    b = console.signed_in("lsp1-viewer")
    day = "2026-09-22"
    doc = b.get(f"/console/lsp/day.json?date={day}").json()
    api = console.h.lsp_get(fleet.api_key1, f"/v1/reconciliation?date={day}")
    assert api.status_code == 200 and doc == api.json()
    api_csv = console.h.lsp_get(fleet.api_key1, f"/v1/reconciliation?date={day}&format=csv").text
    assert b.get(f"/console/lsp/day.csv?date={day}").text == api_csv
    _same(doc, _rows_from_csv(api_csv), _rows_from_xlsx(b.get(f"/console/lsp/day.xlsx?date={day}").content))
    page = b.get(f"/console/lsp/day?date={day}").text
    assert "2,200.00" in page  # the online kiosk's sale of the 22nd, in rupees


def test_a_kiosk_page_shows_its_days(console: Console, fleet: Fleet) -> None:
    b = console.signed_in("lsp1-viewer")
    page = b.get(f"/console/lsp/kiosks/{fleet.online.kiosk_code}?month={MONTH}")
    assert page.status_code == 200
    assert page.text.count('<tr><td><a href="/console/lsp/day?date=2026-09-') == 30
    row21 = re.search(r"date=2026-09-21.*?</tr>", page.text, re.S)
    assert row21 and "2,100.00" in row21.group(0)
    assert 'id="kiosk-state">online' in page.text


def test_bad_month_and_day_are_one_clear_line(console: Console) -> None:
    b = console.signed_in("lsp1-viewer")
    bad = b.get("/console/lsp/month.csv?month=2026-13")
    assert bad.status_code == 422 and bad.json()["error"] == "bad_month"
    bad_day = b.get("/console/lsp/day.json?date=2026-02-30")
    assert bad_day.status_code == 422 and bad_day.json()["error"] == "bad_date"
    assert b.get("/console/lsp/month.pdf?month=2026-09").status_code == 422


def test_statements_are_shown_with_why_commission_is_held_and_download_as_signed(
    console: Console, fleet: Fleet
) -> None:
    from server_stub import statements
    from server_stub.keys import KeySource, load_keys

    issue_statements(console)
    b = console.signed_in("lsp1-viewer")
    page = b.get("/console/lsp/statements").text
    section = re.search(rf'<section class="statement" id="statement-{MONTH}">.*?</section>', page, re.S)
    assert section
    online = re.search(rf"<tr><td>{fleet.online.kiosk_code}</td>.*?</tr>", section.group(0), re.S)
    assert online and "21.50" in online.group(0) and "<strong>heartbeat</strong>" in online.group(0)
    signed = b.get(f"/console/lsp/statements/{MONTH}.json")
    assert signed.status_code == 200 and "attachment" in signed.headers["content-disposition"]
    assert signed.content == console.h.lsp_get(fleet.api_key1, f"/v1/statements/{MONTH}").content
    key = load_keys(KeySource.at(console.h.config.keys_path())).sign.public_key()
    doc = statements.verify(signed.content, key)
    assert doc["lsp_id"] == console.lsp1 and doc["totals"]["held_paise"] > 0
    missing = b.get("/console/lsp/statements/2026-08.json")
    assert missing.status_code == 404 and missing.json()["error"] == "no_statement"
