"""Who may call what: signed device requests, LSP API keys, enrollment codes, rate limits."""

from __future__ import annotations

from collections.abc import Callable

import requests
import sqlalchemy as sa

from server_stub import admin
from server_stub.db import leases
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk


def test_replayed_request_is_refused(server: Harness) -> None:
    fake = server.enrolled()
    body = fake.batch(fake.make_records(2))
    nonce = "ab" * 16
    first = fake.call("POST", "/v1/batches", body, nonce=nonce)
    assert first.status_code == 200
    again = fake.call("POST", "/v1/batches", body, nonce=nonce)
    assert again.status_code == 401
    assert again.json()["error"] == "replayed_nonce"


def test_a_replayed_nonce_on_a_batch_of_new_records_stores_nothing(server: Harness) -> None:
    """The nonce is written in the batch's write transaction (with the relock, one statement on
    PostgreSQL): a nonce seen before fails it, and the records it carried are not kept."""
    fake = server.enrolled()
    recs = fake.make_records(4)
    nonce = "cd" * 16
    assert fake.push(recs[:2], nonce=nonce).status_code == 200
    again = fake.push(recs[2:], nonce=nonce)
    assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"
    mine = {"d": fake.device_id}
    with server.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT seq FROM records WHERE device_id = :d ORDER BY seq"), mine)
        head = conn.execute(sa.text("SELECT head_seq FROM devices WHERE device_id = :d"), mine).scalar()
        assert list(stored.scalars()) == [1, 2] and head == 2
    assert fake.push(recs[2:]).status_code == 200  # a fresh nonce: taken in


def test_stale_and_future_timestamps_are_refused(server: Harness) -> None:
    fake = server.enrolled()
    for skew in (-301, 301):
        fake.now = server.clock() + skew
        resp = fake.call("POST", "/v1/heartbeat", {"head_seq": 0})
        assert resp.status_code == 401 and resp.json()["error"] == "stale_timestamp"
    fake.now = server.clock() - 250  # inside the window
    assert fake.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code == 200


def test_bad_signature_unknown_and_unsigned(server: Harness) -> None:
    fake = server.enrolled()
    body = b'{"head_seq":0}'
    headers = fake.signed_headers("POST", "/v1/heartbeat", body)
    headers["Content-Type"] = "application/json"
    tampered = server.session.post(server.url + "/v1/heartbeat", data=b'{"head_seq":1}', headers=headers)
    assert tampered.status_code == 401 and tampered.json()["error"] == "bad_signature"
    other_path = fake.signed_headers("GET", "/v1/catalog?since=0")
    resp = server.session.get(server.url + "/v1/catalog?since=1", headers=other_path)
    assert resp.status_code == 401 and resp.json()["error"] == "bad_signature"
    stranger = FakeKiosk(server.url, server.session)  # never enrolled
    resp = stranger.call("POST", "/v1/heartbeat", {"head_seq": 0})
    assert resp.status_code == 401 and resp.json()["error"] == "unknown_device"
    resp = server.session.post(server.url + "/v1/heartbeat", json={"head_seq": 0})
    assert resp.status_code == 401 and resp.json()["error"] == "missing_signature"


def test_revoked_device_is_refused(server: Harness) -> None:
    fake = server.enrolled()
    assert fake.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code == 200
    with server.engine.begin() as conn:
        assert admin.revoke_device(conn, fake.kiosk_code, server.now_ms()) == [fake.device_id]
    resp = fake.push(fake.make_records(1))
    assert resp.status_code == 401 and resp.json()["error"] == "device_revoked"


def test_enrollment_code_is_one_time_and_expires(server: Harness) -> None:
    lsp = server.lsp().lsp_id
    new = server.kiosk(lsp, ttl_hours=1)
    a = FakeKiosk(server.url, server.session)
    first = a.enroll(new.enrollment_code.lower())  # codes are case- and dash-insensitive
    again = a.enroll(new.enrollment_code)  # the same device retrying gets the same answer
    assert {**again, "server_time_ms": 0} == {**first, "server_time_ms": 0}
    b = FakeKiosk(server.url, server.session)
    resp = server.session.post(
        server.url + "/v1/enroll",
        json={
            "enrollment_code": new.enrollment_code,
            "device_id": b.device_id,
            "device_public_key": first["server_sign_public_key"],
        },
    )
    assert resp.status_code == 401 and resp.json()["error"] == "enrollment_code_used"
    expiring = server.kiosk(lsp, ttl_hours=1)
    server.clock.offset = 3601
    c = FakeKiosk(server.url, server.session)
    resp = server.session.post(
        server.url + "/v1/enroll",
        json={
            "enrollment_code": expiring.enrollment_code,
            "device_id": c.device_id,
            "device_public_key": first["server_sign_public_key"],
        },
    )
    assert resp.status_code == 401 and resp.json()["error"] == "enrollment_code_expired"
    resp = server.session.post(
        server.url + "/v1/enroll",
        json={
            "enrollment_code": "NOPE-NOPE-NOPE",
            "device_id": c.device_id,
            "device_public_key": first["server_sign_public_key"],
        },
    )
    assert resp.status_code == 401 and resp.json()["error"] == "enrollment_code_invalid"


def test_lsp_sees_only_its_own_kiosks(server: Harness) -> None:
    mine, theirs = server.lsp("Mine"), server.lsp("Theirs")
    k_mine = server.enrolled(mine.lsp_id).kiosk_code
    k_theirs = server.enrolled(theirs.lsp_id).kiosk_code
    ok = server.lsp_get(mine.api_key, "/v1/reconciliation", params={"date": "2026-09-21"})
    assert ok.status_code == 200
    assert [k["kiosk_code"] for k in ok.json()["kiosks"]] == [k_mine]
    resp = server.lsp_get(
        mine.api_key, "/v1/reconciliation", params={"date": "2026-09-21", "kiosk_code": k_theirs}
    )
    assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    resp = server.lsp_get(
        mine.api_key, "/v1/reconciliation", params={"date": "2026-09-21", "lsp_id": theirs.lsp_id}
    )
    assert resp.status_code == 403
    resp = server.lsp_get("lsk_wrong", "/v1/reconciliation", params={"date": "2026-09-21"})
    assert resp.status_code == 401 and resp.json()["error"] == "bad_api_key"
    resp = server.session.get(server.url + "/v1/reconciliation", params={"date": "2026-09-21"})
    assert resp.status_code == 401


def test_rate_limit_gives_429_with_retry_after(start_server: Callable[..., Harness]) -> None:
    h = start_server(rate_per_s=0.5, rate_burst=3)
    fake = h.enrolled()
    codes = [fake.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    resp = fake.call("POST", "/v1/heartbeat", {"head_seq": 0})
    assert resp.status_code == 429 and resp.json()["error"] == "rate_limited"
    assert int(resp.headers["Retry-After"]) >= 1
    h.clock.offset += 10  # time passes: the bucket refills
    fake.now = h.clock()
    assert fake.call("POST", "/v1/heartbeat", {"head_seq": 0}).status_code == 200


def test_server_sends_date_header(server: Harness) -> None:
    resp = requests.get(server.url + "/healthz", timeout=10)
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
    assert "GMT" in resp.headers["Date"]


def test_a_lease_request_is_refused_like_any_signed_call_and_keeps_no_nonce_when_refused(
    server: Harness,
) -> None:
    """POST /v1/leases writes its nonce with the locked device read (one statement on PostgreSQL):
    a replay, a bad signature, a stale timestamp, an unknown or revoked device are still 401 with
    their own code, no lease is granted for them, and a refused request's nonce is not kept."""
    fake = server.enrolled()
    nonce = "cd" * 16
    body = b'{"count":1}'
    tampered = fake.signed_headers("POST", "/v1/leases", b'{"count":2}', nonce=nonce)
    tampered["Content-Type"] = "application/json"
    resp = server.session.post(server.url + "/v1/leases", data=body, headers=tampered)
    assert resp.status_code == 401 and resp.json()["error"] == "bad_signature"
    fake.now = server.clock() + 301
    resp = fake.call("POST", "/v1/leases", {"count": 1}, nonce=nonce)
    assert resp.status_code == 401 and resp.json()["error"] == "stale_timestamp"
    fake.now = None
    first = fake.call("POST", "/v1/leases", {"count": 1}, nonce=nonce)  # the nonce was not kept
    assert first.status_code == 200 and len(first.json()["leases"]) == 1
    again = fake.call("POST", "/v1/leases", {"count": 1}, nonce=nonce)
    assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"
    stranger = FakeKiosk(server.url, server.session)
    resp = stranger.call("POST", "/v1/leases", {"count": 1})
    assert resp.status_code == 401 and resp.json()["error"] == "unknown_device"
    with server.engine.begin() as conn:
        admin.revoke_device(conn, fake.kiosk_code, server.now_ms())
    resp = fake.call("POST", "/v1/leases", {"count": 1})
    assert resp.status_code == 401 and resp.json()["error"] == "device_revoked"
    with server.engine.connect() as conn:
        held = conn.execute(
            sa.select(sa.func.count()).select_from(leases).where(leases.c.device_id == fake.device_id)
        )
        assert held.scalar_one() == 2 + 1  # enrollment's two and the one granted
