"""Token follow-up without a leak: any kiosk learns what a citizen's follow-up needs, only the
issuing LSP's kiosks learn amounts and fields; malformed tokens are refused before any lookup;
lookups are limited per device in the database (shared by every worker) and audited."""

from __future__ import annotations

import math
import time
from typing import Any

import sqlalchemy as sa

from server_stub.app import create_app
from server_stub.db import token_lookups
from sync.wire.verhoeff import token_for_serial
from tests.server_stub.conftest import Harness, ThreadServer
from tests.server_stub.kiosk_fake import FakeKiosk


def _audit(server: Harness) -> list[tuple[str, str, str]]:
    with server.engine.connect() as conn:
        rows = conn.execute(sa.select(token_lookups).order_by(token_lookups.c.id)).all()
    return [(r.device_id, r.token, r.revealed) for r in rows]


def _sold(server: Harness, lsp_id: str) -> tuple[FakeKiosk, dict[str, Any]]:
    fake = server.enrolled(lsp_id)
    sale = fake.make_record(fields={"k_number": "210412345678"}, amount_paise=123_400)
    assert fake.push([sale]).json()["acks"][0]["status"] == "accepted"
    return fake, sale


def test_another_lsps_kiosk_gets_no_amount_and_no_fields(server: Harness) -> None:
    lsp_a, lsp_b = server.lsp("A"), server.lsp("B")
    issuer, sale = _sold(server, lsp_a.lsp_id)
    stranger = server.enrolled(lsp_b.lsp_id)
    seen = stranger.call("GET", f"/v1/tokens/{sale['token']}").json()
    assert seen == {
        "token": sale["token"],
        "status": "synced",
        "detail": "summary",
        "kiosk_code": issuer.kiosk_code,
        "service": "ELEC_BILL",
        "kind": "sale",
        "date": seen["date"],
    }
    assert len(seen["date"]) == 10  # YYYY-MM-DD, IST; no time of day either
    colleague = server.enrolled(lsp_a.lsp_id)
    full = colleague.call("GET", f"/v1/tokens/{sale['token']}").json()
    assert full["detail"] == "full" and full["amount_paise"] == 123_400
    assert full["fields"] == {"k_number": "210412345678"} and full["created_at"] == sale["created_at"]
    assert "mobile" not in full and "aadhaar_last4" not in full
    assert _audit(server) == [
        (stranger.device_id, sale["token"], "summary"),
        (colleague.device_id, sale["token"], "full"),
    ]


def test_a_malformed_token_is_refused_before_any_lookup(server: Harness) -> None:
    fake = server.enrolled()
    good = token_for_serial(4242)
    for bad in (good[:-1] + str((int(good[-1]) + 1) % 10), "123", "PK1-x", "P-1", "ABCDEFGHIJK"):
        resp = fake.call("GET", f"/v1/tokens/{bad}")
        assert resp.status_code == 422 and resp.json()["error"] == "bad_token", bad
    assert _audit(server) == []
    assert fake.call("GET", f"/v1/tokens/{good}").json()["status"] == "unknown"
    assert _audit(server) == [(fake.device_id, good, "none")]


def test_lookups_are_limited_per_device_across_workers(start_server: Any) -> None:
    """Two app instances on one database (as two uvicorn workers): the limit is on the sum."""
    server: Harness = start_server(rate_per_s=0, token_lookups_per_min=5)
    fake, other = server.enrolled(), server.enrolled()
    now = time.time()
    server.clock.offset = math.ceil(now / 60) * 60 + 1 - now  # just into a minute: the test fits in it
    twin = create_app(server.config, clock=server.clock)  # its own engine and memory
    with ThreadServer(twin) as second:
        answers = []
        for i in range(6):
            fake.base_url = server.url if i % 2 == 0 else second.url
            answers.append(fake.call("GET", f"/v1/tokens/{token_for_serial(1000 + i)}"))
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1 and answers[-1].json()["error"] == "rate_limited"
    assert other.call("GET", f"/v1/tokens/{token_for_serial(77)}").status_code == 200  # per device
    assert len(_audit(server)) == 6
    twin.state.kiosk.engine.dispose()
