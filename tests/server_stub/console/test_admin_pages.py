"""The DOIT&C pages: network at a glance by LSP and district, revoke and reinstate with a reason
(the device really stops / starts being accepted), enrollment codes, catalog versions, and every
action in the audit log."""

from __future__ import annotations

import json
import re
from datetime import datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from server_stub import admin, catalog
from server_stub.db import kiosks
from tests.server_stub.console.conftest import Console, Fleet, set_clock
from tests.server_stub.kiosk_fake import FakeKiosk


def _cell_counts(html: str, table: str) -> dict[str, list[int]]:
    body = re.search(rf'<table id="{table}">.*?</table>', html, re.S)
    assert body
    out = {}
    for row in re.findall(r"<tr><td>(.*?)</tr>", body.group(0), re.S):
        name = re.sub(r"<.*?>", "", row.split("</td>")[0])
        out[name] = [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)]
    return out


def test_the_network_at_a_glance_by_lsp_and_district(console: Console, fleet: Fleet) -> None:
    with console.h.engine.begin() as conn:
        conn.execute(
            kiosks.update().where(kiosks.c.kiosk_code == fleet.offline.kiosk_code).values(district="Jaipur")
        )
    page = console.signed_in("doitc").get("/console/admin").text
    # columns: online, stale, offline, not enrolled, revoked
    by_lsp = _cell_counts(page, "glance-lsp")
    assert by_lsp[console.lsp1] == [1, 1, 1, 1, 0]
    assert by_lsp[console.lsp2] == [0, 0, 1, 0, 0]  # its last heartbeat: never
    by_district = _cell_counts(page, "glance-district")
    assert by_district["Jaipur"] == [0, 0, 1, 0, 0] and by_district["-"] == [1, 1, 1, 1, 0]


def test_revoke_and_reinstate_with_a_reason_are_audited(console: Console, fleet: Fleet) -> None:
    b = console.signed_in("doitc")
    dev = fleet.online.device_id
    assert dev in b.get("/console/admin/kiosks").text
    no_reason = b.post(f"/console/admin/devices/{dev}/revoke", {"reason": " "})
    assert no_reason.status_code == 400 and no_reason.json()["error"] == "reason_required"
    assert b.post(f"/console/admin/devices/{dev}/revoke", {"reason": "PC stolen"}).status_code == 303
    fleet.online.now = console.h.clock()
    assert fleet.online.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code == 401
    reinstated = b.post(f"/console/admin/devices/{dev}/reinstate", {"reason": "PC found"})
    assert reinstated.status_code == 303 and reinstated.headers["Location"] == "/console/admin/kiosks"
    back = fleet.online.call("POST", "/v1/heartbeat", {"head_seq": 0})
    assert back.status_code == 200, back.text
    audit = b.get("/console/admin/audit").text
    rows = re.findall(r'<tr class="action-(device_\w+)">(.*?)</tr>', audit, re.S)
    assert [a for a, _ in rows] == ["device_reinstate", "device_revoke"]  # newest first
    assert "PC found" in rows[0][1] and "PC stolen" in rows[1][1]
    assert all("console:doitc" in r and dev in r and console.lsp1 in r for _, r in rows)


def test_enrollment_codes_are_issued_shown_once_and_expired(console: Console) -> None:
    h, b = console.h, console.signed_in("doitc")
    kiosk = h.kiosk(console.lsp1, "New shop")
    page = b.get(f"/console/admin/kiosks?lsp={console.lsp1}").text
    assert re.search(rf'<tr id="kiosk-{kiosk.kiosk_code}".*?expires ', page, re.S)
    assert b.post(f"/console/admin/kiosks/{kiosk.kiosk_code}/expire-code", {}).status_code == 303
    expired = b.get(f"/console/admin/kiosks?lsp={console.lsp1}").text
    assert re.search(rf'<tr id="kiosk-{kiosk.kiosk_code}".*?expired ', expired, re.S)
    fake = FakeKiosk(h.url, h.session)
    refused = h.session.post(
        f"{h.url}/v1/enroll",
        json={
            "enrollment_code": kiosk.enrollment_code,
            "device_public_key": "x" * 44,
            "device_id": fake.device_id,
        },
    )
    assert refused.status_code in (401, 422)
    issued = b.post(f"/console/admin/kiosks/{kiosk.kiosk_code}/enrollment-code", {})
    code = re.search(r'id="enrollment-code">([A-Z0-9-]+)<', issued.text)
    assert issued.status_code == 200 and code
    assert fake.enroll(code.group(1))["kiosk_code"] == kiosk.kiosk_code  # the new code works once
    actions = re.findall(r'<tr class="action-(\w+)">', b.get("/console/admin/audit").text)
    assert actions == ["enrollment_code", "enrollment_expire"]


def test_catalog_versions_show_their_diff_and_a_bad_one_is_refused(console: Console) -> None:
    b = console.signed_in("doitc")
    doc = json.loads(catalog.bundled_catalog_text())
    first_code = doc["services"][0]["code"]
    doc["version"] = 2
    doc["services"][0]["fee_paise"] += 500
    loaded = b.post("/console/admin/catalog", {"catalog": json.dumps(doc)})
    assert loaded.status_code == 303 and loaded.headers["Location"].endswith("version=2")
    page = b.get("/console/admin/catalog?version=2").text
    assert "(in force)" in page and re.search(rf"Fee changed: {first_code} [\d,.]+ → [\d,.]+", page)
    doc["version"] = 3
    doc["services"] = doc["services"][1:]
    dropped = b.post("/console/admin/catalog", {"catalog": json.dumps(doc)})
    assert dropped.status_code == 409 and dropped.json()["error"] == "catalog_drops_services"
    with console.h.engine.connect() as conn:
        assert catalog.latest_version(conn) == 2
    actions = re.findall(r'<tr class="action-(\w+)">(.*?)</tr>', b.get("/console/admin/audit").text, re.S)
    assert [(a, "version 2" in r) for a, r in actions] == [("catalog_load", True)]


def test_kiosk_districts_come_from_kiosk_add(console: Console) -> None:
    with console.h.engine.begin() as conn:
        new = admin.create_kiosk(conn, console.lsp2, "Shop", console.h.now_ms(), 72, district="Bikaner")
        district = conn.execute(
            sa.select(kiosks.c.district).where(kiosks.c.kiosk_code == new.kiosk_code)
        ).scalar()
    assert district == "Bikaner"
    assert "Bikaner" in console.signed_in("doitc").get("/console/admin").text


def test_doitc_issues_a_statement_once_after_the_month_and_it_is_audited(
    console: Console, fleet: Fleet
) -> None:
    b = console.signed_in("doitc")
    early = b.post("/console/admin/statements", {"lsp": console.lsp1, "month": "2026-09"})
    assert early.status_code == 422 and early.json()["error"] == "month_not_over"
    set_clock(console.h, int(datetime(2026, 10, 2, 9, tzinfo=ZoneInfo("Asia/Kolkata")).timestamp() * 1000))
    b = console.signed_in("doitc")
    first = b.post("/console/admin/statements", {"lsp": console.lsp1, "month": "2026-09"})
    assert first.status_code == 303 and first.headers["Location"].endswith("#statement-2026-09")
    signed = b.get(f"/console/lsp/statements/2026-09.json?lsp={console.lsp1}").content
    assert b.post("/console/admin/statements", {"lsp": console.lsp1, "month": "2026-09"}).status_code == 303
    assert b.get(f"/console/lsp/statements/2026-09.json?lsp={console.lsp1}").content == signed  # unchanged
    assert "2026-09</a>" in b.get("/console/admin/statements").text
    actions = re.findall(r'<tr class="action-(\w+)">(.*?)</tr>', b.get("/console/admin/audit").text, re.S)
    assert [a for a, _ in actions] == ["statement_issue"] and console.lsp1 in actions[0][1]
    unknown = b.post("/console/admin/statements", {"lsp": "LSP9999", "month": "2026-09"})
    assert unknown.status_code == 400 and unknown.json()["error"] == "unknown_lsp"
