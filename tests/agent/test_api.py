"""Contract tests of the local API: a real uvicorn on a free loopback port, real HTTP."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from agent.api import ApiServer, create_app, load_or_create_token
from agent.ledger import Ledger, hwm, readmodel, verify
from tests.conftest import ELEC, Kiosk

TOKEN = "t" * 43
AADHAAR = "234567890124"


@dataclass
class Hooks:
    printed: list[str] = field(default_factory=list)
    committed: list[int] = field(default_factory=list)
    remote: dict[str, dict[str, Any]] = field(default_factory=dict)
    online: bool = False


@dataclass
class Api:
    url: str
    port: int
    ledger: Ledger
    hooks: Hooks
    s: requests.Session

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.s.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.s.post(self.url + path, timeout=10, **kw)


def _start(kiosk: Kiosk, ledger: Ledger, hooks: Hooks, *, with_printer: bool) -> ApiServer:
    app = create_app(
        ledger,
        kiosk.cfg,
        token=TOKEN,
        online=lambda: hooks.online,
        status_extra=lambda: {"sync": {"state": "idle"}},
        remote_lookup=hooks.remote.get,
        reprint=(lambda t: hooks.printed.append(t) or "queued") if with_printer else None,
        on_commit=lambda v: hooks.committed.append(v["seq"]),
    )
    return ApiServer(app).start()


@contextmanager
def serving(kiosk: Kiosk, ledger: Ledger, *, with_printer: bool) -> Iterator[Api]:
    """The local API on a free loopback port over ``ledger``, and a session that carries its token."""
    hooks = Hooks()
    server = _start(kiosk, ledger, hooks, with_printer=with_printer)
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {TOKEN}"
    try:
        yield Api(server.url, server.port, ledger, hooks, s)
    finally:
        s.close()
        server.stop()


@pytest.fixture
def api(kiosk: Kiosk, ledger: Ledger) -> Iterator[Api]:
    with serving(kiosk, ledger, with_printer=True) as a:
        yield a


def _new(
    api: Api, amount: str = "100", headers: dict[str, str] | None = None, **extra: Any
) -> requests.Response:
    return api.post("/api/transactions", json={**ELEC, "amount": amount, **extra}, headers=headers)


def test_healthz_open_api_needs_token(api: Api) -> None:
    assert requests.get(api.url + "/healthz", timeout=5).json()["ok"] is True
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        r = requests.get(api.url + "/api/status", headers=headers, timeout=5)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = requests.post(api.url + "/api/transactions", json=ELEC, timeout=5)
    assert r.status_code == 401 and api.ledger.count() == 0


def test_foreign_host_is_refused(api: Api) -> None:
    for host in (f"evil.example:{api.port}", f"127.0.0.1:{api.port + 1}", "127.0.0.1", ""):
        r = api.get("/api/status", headers={"Host": host})
        assert r.status_code == 421 and r.json()["error"] == "bad_host", host
        assert api.get("/", headers={"Host": host}).status_code == 421
    assert api.get("/api/status", headers={"Host": f"localhost:{api.port}"}).status_code == 200


def test_cross_origin_writes_are_refused_and_write_nothing(api: Api) -> None:
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{api.port + 1}"},
        {"Referer": "http://evil.example/page"},
    ):
        r = api.post("/api/transactions", json=ELEC, headers=headers)
        assert r.status_code == 403 and r.json()["error"] == "cross_origin", headers
    assert api.ledger.count() == 0
    same = _new(api, headers={"Origin": api.url, "Referer": api.url + "/"})
    assert same.status_code == 201 and api.ledger.count() == 1


def test_new_transaction_commits_and_masks(api: Api) -> None:
    r = _new(api, "1250.50", mobile="9876543210")
    assert r.status_code == 201
    v = r.json()
    assert v["seq"] == 1 and len(v["token"]) == 11 and v["amount_paise"] == 125050
    assert v["mobile"] == "XXXXXX3210" and "9876543210" not in r.text
    assert api.hooks.committed == [1]
    assert api.ledger.find(v["token"])["amount_paise"] == 125050


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**ELEC, "amount": "12.345"}, 422, "invalid_input"),
        ({**ELEC, "amount": 100}, 422, "invalid_input"),  # rupees must be a string
        ({**ELEC, "service": "NOPE"}, 422, "invalid_input"),
        ({**ELEC, "fields": {"discom": "JVVNL"}}, 422, "invalid_input"),
        ({**ELEC, "mobile": "98765"}, 422, "invalid_input"),
        ({**ELEC, "extra": 1}, 422, "invalid_input"),
        ({**ELEC, "aadhaar": int(AADHAAR)}, 422, "invalid_input"),
        ({**ELEC, "aadhaar": AADHAAR}, 422, "invalid_input"),  # no Aadhaar before enrollment / service
    ],
)
def test_bad_input_is_422_json_and_writes_nothing(
    api: Api, body: dict[str, Any], status: int, code: str
) -> None:
    r = api.post("/api/transactions", json=body)
    assert r.status_code == status and r.json()["error"] == code
    assert set(r.json()) == {"error", "detail"}
    assert AADHAAR not in r.text and "9876" not in r.text
    assert api.ledger.count() == 0


def test_malformed_json_and_online_only_service(api: Api) -> None:
    r = api.post("/api/transactions", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input"
    online_only = next(s for s in api.get("/api/catalog").json()["services"] if s["online_only"])
    body: dict[str, Any] = {"service": online_only["code"], "amount": "10", "fields": {}}
    if online_only["mobile"] != "none":
        body["mobile"] = "9876543210"
    for f in online_only["fields"]:
        body["fields"][f["name"]] = f["example"]
    r = api.post("/api/transactions", json=body)
    assert r.status_code == 409 and r.json()["error"] == "needs_connection"
    assert api.ledger.count() == 0
    api.hooks.online = True
    assert api.post("/api/transactions", json=body).status_code == 201


def test_status_reports_queue_and_extra(api: Api) -> None:
    for i in range(3):
        _new(api, str(10 + i))
    readmodel.materialise(api.ledger.conn, 3)  # as sync does when it first takes them
    api.ledger.conn.execute(
        "UPDATE outbox SET state = 'rejected', last_error = 'token outside lease' WHERE seq = 2"
    )
    s = api.get("/api/status").json()
    assert s["queue_depth"] == 2 and s["rejected"] == 1
    assert s["ledger"]["head_seq"] == 3 and s["ledger"]["head_hash"] == api.ledger.head()[1]
    assert s["device_id"] == api.ledger.device_id and s["online"] is False
    assert s["tokens_remaining"] == api.ledger.tokens_remaining()
    assert s["printer"]["kind"] == "none" and s["fingerprint"]["kind"] == "none"
    assert s["sync"] == {"state": "idle"}
    rejected = api.get("/api/transactions", params={"rejected": "true"}).json()["items"]
    assert [v["seq"] for v in rejected] == [2] and rejected[0]["sync_error"] == "token outside lease"


def test_list_search_show(api: Api) -> None:
    views = [_new(api, str(i)).json() for i in range(1, 6)]
    items = api.get("/api/transactions", params={"limit": 3}).json()["items"]
    assert [v["seq"] for v in items] == [5, 4, 3]
    readmodel.materialise(api.ledger.conn, 4)  # seq 5 stays past the frontier: still pending
    api.ledger.conn.execute("UPDATE outbox SET state = 'acked' WHERE seq <= 4")
    assert [v["seq"] for v in api.get("/api/transactions?pending=true").json()["items"]] == [5]
    by_token = api.get("/api/transactions", params={"q": views[1]["token"]}).json()["items"]
    assert [v["seq"] for v in by_token] == [2]
    assert len(api.get("/api/transactions", params={"q": "elec"}).json()["items"]) == 5
    assert api.get("/api/transactions", params={"q": "WATER"}).json()["items"] == []
    assert api.get("/api/transactions", params={"limit": 0}).status_code == 422
    shown = api.get(f"/api/transactions/{views[2]['token']}").json()
    assert shown["seq"] == 3 and shown["source"] == "local"


def test_show_falls_back_to_remote_lookup(api: Api) -> None:
    api.hooks.remote["98765432102"] = {"token": "98765432102", "status": "accepted", "kiosk_code": "K1"}
    r = api.get("/api/transactions/98765432102")
    assert r.status_code == 200 and r.json() == {
        "token": "98765432102",
        "status": "accepted",
        "kiosk_code": "K1",
        "source": "server",
    }
    r = api.get("/api/transactions/12345678902")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert api.get("/api/transactions/bad%20ref").status_code == 422
    for typo in ("12345678901", "98765432120", "1234567890", "PK1-x"):  # a wrong check digit is no token
        r = api.get(f"/api/transactions/{typo}")
        assert r.status_code == 422 and r.json()["error"] == "invalid_input", typo


def test_void_and_reprint(api: Api) -> None:
    v = _new(api).json()
    r = api.post(f"/api/transactions/{v['token']}/void", json={"reason": "wrong amount"})
    assert r.status_code == 200 and r.json()["kind"] == "void" and r.json()["voids_seq"] == 1
    again = api.post(f"/api/transactions/{v['token']}/void", json={"reason": "again"})
    assert again.status_code == 422 and "already voided" in again.json()["detail"]
    assert api.post(f"/api/transactions/{v['token']}/void", json={}).status_code == 422
    assert api.ledger.count() == 2

    r = api.post(f"/api/transactions/{v['token']}/reprint")
    assert r.status_code == 202 and r.json()["result"] == "queued"
    assert api.hooks.printed == [v["token"]]
    assert api.post("/api/transactions/12345678902/reprint").status_code == 404
    assert api.hooks.printed == [v["token"]]


def test_reprint_without_printer_is_501(kiosk: Kiosk, ledger: Ledger) -> None:
    server = _start(kiosk, ledger, Hooks(), with_printer=False)
    try:
        h = {"Authorization": f"Bearer {TOKEN}"}
        tok = requests.post(server.url + "/api/transactions", json=ELEC, headers=h, timeout=5).json()["token"]
        r = requests.post(f"{server.url}/api/transactions/{tok}/reprint", headers=h, timeout=5)
        assert r.status_code == 501 and r.json()["error"] == "printing_not_configured"
    finally:
        server.stop()


def test_operator_page(api: Api) -> None:
    r = requests.get(api.url + "/", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for element_id in ("service", "amount", "mobile", "submit", "queue-depth", "online-badge", "last-sync"):
        assert f'id="{element_id}"' in r.text, element_id
    assert 'id="recent"' in r.text and 'id="result"' in r.text
    assert f'content="{TOKEN}"' in r.text
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert 'placeholder="210412345678"' in r.text  # field examples as placeholders
    hi = requests.get(api.url + "/?lang=hi", timeout=5).text
    en = requests.get(api.url + "/?lang=en", timeout=5).text
    assert "बिजली" in hi and "Electricity" in en and "सेवा" in hi
    js = requests.get(api.url + "/static/app.js", timeout=5)
    assert js.status_code == 200 and "/api/status" in js.text


def test_openapi_lists_every_endpoint(api: Api) -> None:
    paths = requests.get(api.url + "/openapi.json", timeout=5).json()["paths"]
    assert {
        "/healthz",
        "/api/status",
        "/api/catalog",
        "/api/transactions",
        "/api/transactions/{token}",
        "/api/transactions/{token}/void",
        "/api/transactions/{token}/reprint",
        "/api/lookup/{token}",
        "/api/receipts/verify",
        "/api/day",
        "/api/day/print",
    } <= set(paths)


def test_parallel_posts_are_serialised(api: Api) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _new(api, str(100 + i)), range(24)))
    assert all(r.status_code == 201 for r in results)
    assert sorted(r.json()["seq"] for r in results) == list(range(1, 25))
    assert len({r.json()["token"] for r in results}) == 24
    assert verify(api.ledger).ok


def test_stop_closes_the_port(kiosk: Kiosk, ledger: Ledger) -> None:
    server = _start(kiosk, ledger, Hooks(), with_printer=False)
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    server.stop()
    assert not server.thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()


def test_public_surface() -> None:
    import agent.api

    assert sorted(agent.api.__all__) == [
        "ApiServer",
        "LedgerAccess",
        "bind",
        "create_app",
        "load_or_create_token",
        "serve",
    ]
    assert all(getattr(agent.api, name) for name in agent.api.__all__)


def test_oversized_body_and_unreachable_server(kiosk: Kiosk, ledger: Ledger) -> None:
    from agent.errors import ServerUnreachable

    def offline(token: str) -> None:
        raise ServerUnreachable("the central server can't be reached now")

    app = create_app(ledger, kiosk.cfg, token=TOKEN, remote_lookup=offline)
    with ApiServer(app) as server:
        h = {"Authorization": f"Bearer {TOKEN}"}
        big = {**ELEC, "fields": {"discom": "x" * 70_000}}
        r = requests.post(server.url + "/api/transactions", json=big, headers=h, timeout=5)
        assert r.status_code == 413 and r.json()["error"] == "too_large"
        r = requests.get(server.url + "/api/transactions/12345678902", headers=h, timeout=5)
        assert r.status_code == 503 and r.json()["error"] == "server_unreachable"
    assert ledger.count() == 0


def test_api_token_file_is_private_and_stable(kiosk: Kiosk, ledger: Ledger) -> None:
    first = load_or_create_token(kiosk.cfg)
    path = kiosk.cfg.data_dir / "api.token"
    assert len(first) >= 40 and (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_token(kiosk.cfg) == first


def _damage_a_page_that_open_does_not_read(kiosk: Kiosk) -> None:
    """Flip 16 bytes in the first page (after page 1) that lets the ledger open but fails the
    list of transactions: found by trying each page on a copy."""
    from agent.errors import LedgerDamaged
    from agent.ledger import open_ledger
    from agent.ledger.db import DatabaseError

    path = kiosk.cfg.ledger_path
    pristine = path.read_bytes()
    for page in range(1, len(pristine) // 4096):
        data = bytearray(pristine)
        for i in range(page * 4096 + 100, page * 4096 + 116):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        hwm.reset(path)  # a failed try must not leave its damage mark behind
        try:
            led = open_ledger(kiosk.cfg)
        except LedgerDamaged:
            continue  # open reads this page
        try:
            led.rows()
        except DatabaseError:
            led.close()
            hwm.reset(path)
            return
        led.close()
    raise AssertionError("no page found that open does not read")


def test_a_damaged_ledger_answers_json_503_never_500(kiosk: Kiosk) -> None:
    """A page that fails its HMAC, found by a read through the API: named, and sales stop."""
    from agent.ledger import init_ledger, open_ledger
    from agent.transactions import NewTxn, create

    init_ledger(kiosk.cfg, dev_leases=True)
    with open_ledger(kiosk.cfg) as led:
        for i in range(40):  # a few pages of records
            create(
                led, NewTxn(service="ELEC_BILL", amount=str(100 + i), operator="op", fields=ELEC["fields"])
            )
    _damage_a_page_that_open_does_not_read(kiosk)
    hooks = Hooks()
    with open_ledger(kiosk.cfg) as led:
        server = _start(kiosk, led, hooks, with_printer=False)
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            answers = [s.get(server.url + "/api/transactions?limit=500", timeout=10)]
            answers.append(s.post(server.url + "/api/transactions", json={**ELEC, "amount": "5"}, timeout=10))
            for resp in answers:
                assert resp.status_code == 503, resp.text[:300]
                assert resp.json()["error"] == "ledger_damaged" and "restore" in resp.json()["detail"]
            status = s.get(server.url + "/api/status", timeout=10)  # reads the damaged page too
            assert status.status_code == 503 and status.json()["error"] == "ledger_damaged"
        finally:
            s.close()
            server.stop()


def test_status_shows_the_clock_offset_and_alerts_a_wrong_clock(api: Api) -> None:
    st = api.get("/api/status").json()
    not_enrolled = {"code": "not_enrolled", "severity": "error", "detail": {}}  # this kiosk never enrolled
    assert st["clock_offset_s"] == 0 and st["alerts"] == [not_enrolled] and st["outbox"]["waiting"] == 0
    api.ledger.set_clock_offset(-2 * 86_400)  # sync learned the PC is two days ahead
    made = _new(api).json()
    st = api.get("/api/status").json()
    assert st["clock_offset_s"] == -172_800 and st["outbox"]["waiting"] == 1
    clock = {"code": "clock_wrong", "severity": "warning", "detail": {"offset_s": -172800}}
    assert sorted(st["alerts"], key=lambda a: a["code"]) == [clock, not_enrolled]
    stamped = dt.datetime.fromisoformat(made["created_at"].replace("Z", "+00:00"))
    assert abs(stamped - (dt.datetime.now(dt.UTC) - dt.timedelta(days=2))) < dt.timedelta(minutes=1)


def test_a_replayed_key_commits_and_nudges_once(api: Api) -> None:
    key = {"Idempotency-Key": "k-" + "x" * 62}
    first, again = _new(api, headers=key), _new(api, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.headers["Idempotent-Replay"] == "true"
    assert again.json()["txn_id"] == first.json()["txn_id"] and api.ledger.count() == 1
    assert api.hooks.committed == [first.json()["seq"]]
    too_long = _new(api, headers={"Idempotency-Key": "k" * 65})
    assert too_long.status_code == 422 and api.ledger.count() == 1
