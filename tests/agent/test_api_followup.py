"""The local API's follow-up routes (token lookup, receipt check, day summary), fee-only services,
catalog choices and the status alerts: a real uvicorn on a free loopback port, real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from agent import daysummary, printing
from agent.api import ApiServer, create_app
from agent.ledger import Ledger
from hardware.receipt import receipt_qr_text
from sync.wire import canonical
from sync.wire.verhoeff import token_for_serial
from tests.agent.test_api import TOKEN, Api, _new, serving
from tests.conftest import ELEC, Kiosk

JAN = {"service": "JAN_AADHAAR", "fields": {"family_head": "Sita Devi"}}


@pytest.fixture
def fapi(kiosk: Kiosk, ledger: Ledger) -> Iterator[Api]:
    with serving(kiosk, ledger, with_printer=False) as a:
        yield a


def test_a_fee_only_service_takes_no_amount(fapi: Api) -> None:
    r = fapi.post("/api/transactions", json=JAN)
    assert r.status_code == 201 and r.json()["amount_paise"] == 0 and r.json()["fee_paise"] == 2000
    r = fapi.post("/api/transactions", json={**JAN, "amount": "10"})
    assert r.status_code == 422 and "only its fee" in r.json()["detail"]
    assert fapi.post("/api/transactions", json={**JAN, "amount": "0"}).status_code == 201
    r = fapi.post("/api/transactions", json={**ELEC, "amount": ""})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    assert fapi.ledger.count() == 2
    svc = next(s for s in fapi.get("/api/catalog").json()["services"] if s["code"] == "JAN_AADHAAR")
    assert svc["fee_only"] is True


def test_choices_match_case_insensitively_and_are_stored_as_the_catalog_spells_them(fapi: Api) -> None:
    r = fapi.post("/api/transactions", json={**ELEC, "fields": {**ELEC["fields"], "discom": "jdvvnl"}})
    assert r.status_code == 201 and r.json()["fields"]["discom"] == "JDVVNL"
    r = fapi.post("/api/transactions", json={**ELEC, "fields": {**ELEC["fields"], "discom": "Jaipur"}})
    assert r.status_code == 422 and "one of: JVVNL, AVVNL, JDVVNL" in r.json()["detail"]
    assert fapi.ledger.count() == 1
    elec = next(s for s in fapi.get("/api/catalog").json()["services"] if s["code"] == "ELEC_BILL")
    assert [c["value"] for c in elec["fields"][0]["choices"]] == ["JVVNL", "AVVNL", "JDVVNL"]


def test_lookup_local_then_server_and_offline_says_so(fapi: Api) -> None:
    mine = _new(fapi).json()
    r = fapi.get(f"/api/lookup/{mine['token']}")
    assert r.json()["source"] == "local" and r.json()["txn"]["seq"] == 1
    other, unknown = token_for_serial(555), token_for_serial(556)
    fapi.hooks.remote[other] = {"token": other, "status": "synced", "kiosk_code": "K7", "date": "2026-12-01"}
    fapi.hooks.remote[unknown] = {"token": unknown, "status": "unknown"}
    r = fapi.get(f"/api/lookup/{other}")
    assert r.status_code == 503 and r.json()["error"] == "offline_lookup"  # offline: never "not found"
    fapi.hooks.online = True
    r = fapi.get(f"/api/lookup/{other}")
    assert r.status_code == 200 and r.json() == {"source": "server", "status": fapi.hooks.remote[other]}
    assert fapi.get(f"/api/lookup/{unknown}").status_code == 404
    r = fapi.get(f"/api/lookup/{token_for_serial(557)}")  # the server did not answer
    assert r.status_code == 503 and r.json()["error"] == "server_unreachable"
    typo = other[:-1] + str((int(other[-1]) + 1) % 10)
    r = fapi.get(f"/api/lookup/{typo}")
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"


def _qr(led: Ledger, token: str) -> str:
    data = printing.receipt_data(led, led.find(token), duplicate=False, lang="en")
    return receipt_qr_text(data, led.sign)


def test_receipt_verify_route(fapi: Api) -> None:
    qr = _qr(fapi.ledger, _new(fapi).json()["token"])
    r = fapi.post("/api/receipts/verify", json={"qr": qr})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["checked_with"] == "ledger"
    parts = qr.split("|")
    cases = {
        "receipt_forged": "|".join([*parts[:3], "7", *parts[4:]]),
        "receipt_unknown_kiosk": "|".join([parts[0], "K99", *parts[2:]]),
        "receipt_malformed": "not a receipt",
    }
    for code, text in cases.items():
        r = fapi.post("/api/receipts/verify", json={"qr": text})
        assert r.status_code == 422 and r.json()["error"] == code, code


def test_day_summary_counts_cash_and_fees_and_is_signed(fapi: Api) -> None:
    a = _new(fapi, "100").json()
    _new(fapi, "1,62,600.00".replace(",", ""))
    fapi.post("/api/transactions", json=JAN)
    fapi.post(f"/api/transactions/{a['token']}/void", json={"reason": "wrong bill"})
    d = fapi.get("/api/day").json()
    assert d["count"] == 2 and d["voids"] == 1
    assert d["amount_paise"] == 16_260_000 and d["fee_paise"] == 1000 + 2000
    assert d["cash_paise"] == 16_260_000 + 3000
    assert {s["service"]: s["count"] for s in d["services"]} == {"ELEC_BILL": 1, "JAN_AADHAAR": 1}
    assert (d["head_seq"], d["head_hash"]) == fapi.ledger.head()
    pub = canonical.public_key_b64(fapi.ledger.public_key)
    assert daysummary.verify(d, pub)
    assert not daysummary.verify({**d, "cash_paise": d["cash_paise"] + 1}, pub)
    assert base64.b64decode(d["sig"])
    r = fapi.post("/api/day/print")
    assert r.status_code == 501 and r.json()["error"] == "printing_not_configured"


def test_status_alerts_merge_ledger_and_link_alerts(kiosk: Kiosk, ledger: Ledger) -> None:
    extra: dict[str, Any] = {
        "sync_error_code": "device_revoked",
        "alerts": [{"code": "disk_low", "severity": "warning", "detail": {"free_mb": 90}}],
    }
    app = create_app(ledger, kiosk.cfg, token=TOKEN, status_extra=lambda: extra)
    with ApiServer(app) as server:
        s = requests.get(server.url + "/api/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    codes = [a["code"] for a in s.json()["alerts"]]
    assert codes == ["disk_low", "revoked", "not_enrolled"]
    assert all(a["severity"] in ("error", "warning") for a in s.json()["alerts"])


def test_day_summary_prints_on_the_receipt_printer(kiosk: Kiosk) -> None:
    from agent.ledger import init_ledger, open_ledger
    from hardware.sim.printer import PrinterSim

    with PrinterSim(transport="tcp", width_dots=384) as sim:
        kiosk.config_path.write_text(
            f'[agent]\ndata_dir = "data"\n[printer]\nurl = "{sim.url}"\nwidth_dots = 384\n'
        )
        init_ledger(kiosk.cfg, dev_leases=True)
        with open_ledger(kiosk.cfg) as led:
            app = create_app(led, kiosk.cfg, token=TOKEN)
            with ApiServer(app) as server:
                h = {"Authorization": f"Bearer {TOKEN}"}
                r = requests.post(
                    server.url + "/api/transactions", json={**ELEC, "amount": "1626"}, headers=h
                )
                assert r.status_code == 201
                sim.wait_for_cuts(1)
                doc = requests.post(server.url + "/api/day/print", headers=h, timeout=10).json()
                sim.wait_for_cuts(2)
                head = led.head()
                sim.fail_mode = "paper_out"
                r = requests.post(server.url + "/api/day/print", headers=h, timeout=10)
        assert r.status_code == 503 and r.json()["error"] == "print_failed"
    text = sim.paper.text
    assert doc["count"] == 1 and (doc["head_seq"], doc["head_hash"]) == head
    summary = text[text.index("DAY SUMMARY") :]
    assert "Electricity" in summary and "1,636.00" in summary and f"Head seq {head[0]}" in summary
    assert head[1][:20] in summary.replace("\n", "") and doc["sig"][:20] in summary.replace("\n", "")
