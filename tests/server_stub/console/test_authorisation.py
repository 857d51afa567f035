"""Who sees what, over every console route (enumerated from the routers, so a new page is
covered): an LSP's people never see another LSP's kiosk, statement or look-up, by id in the URL,
by query parameter or by download link; DOIT&C pages and actions are refused to them; nobody signed out
gets anything."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute

from server_stub import console as console_pkg
from server_stub.console.tables import audit_log, console_users
from server_stub.db import devices
from tests.server_stub.console.conftest import MONTH, Console, Fleet, issue_statements

FORMATS = ("csv", "xlsx", "json")


def _routes(prefix: str) -> list[tuple[str, str]]:
    out = []
    for router in console_pkg.ROUTERS:
        for r in router.routes:
            if isinstance(r, APIRoute) and r.path.startswith(prefix):
                out.extend((m, r.path) for m in sorted(r.methods))
    assert out, prefix
    return out


def _urls(path: str, kiosk_code: str, device_id: str) -> list[str]:
    """Concrete URLs of a route pattern, with a month / day for the reports."""
    filled = path.replace("{kiosk_code}", kiosk_code).replace("{ident}", device_id).replace("{month}", MONTH)
    urls = [filled.replace("{fmt}", f) for f in FORMATS] if "{fmt}" in filled else [filled]
    query = "month=" + MONTH if "/month" in path or "/kiosks/" in path else "date=2026-09-21"
    return [f"{u}?{query}" for u in urls]


def _lookups(fleet: Fleet) -> tuple[str, str]:
    """Each LSP's kiosk asks about one of its tokens; returns (LSP 1's token, LSP 2's token)."""
    mine, theirs = fleet.online.chain[0]["token"], fleet.other.chain[0]["token"]
    for f, token in ((fleet.online, mine), (fleet.other, theirs)):
        f.now = None
        assert f.call("GET", f"/v1/tokens/{token}").status_code == 200
    return mine, theirs


@pytest.mark.parametrize("who", ["lsp1-admin", "lsp1-viewer"])
def test_an_lsp_never_sees_another_lsps_kiosk_or_lookup(console: Console, fleet: Fleet, who: str) -> None:
    issue_statements(console)  # both LSPs have a September statement
    console.h.clock.offset = 0  # the look-ups are signed with the real clock
    mine, theirs = _lookups(fleet)
    b = console.signed_in(who)
    theirs_code, lsp2 = fleet.other.kiosk_code, console.lsp2
    for method, path in _routes("/console/lsp"):
        if method == "POST":
            continue  # the one post (adding a viewer): test_lsp_people_are_added_only_to_their_own_lsp
        for url in _urls(path, fleet.online.kiosk_code, "-"):
            own = b.get(url)
            if path == "/console/lsp/users" and who == "lsp1-viewer":
                assert own.status_code == 403, url  # a viewer manages nobody
                continue
            assert own.status_code == 200, url
            body = own.content.decode("latin-1")
            for secret in (theirs_code, lsp2, theirs, "Second LSP"):
                assert secret not in body, (url, secret)
            asked = b.get(url + f"&lsp={lsp2}")
            assert asked.status_code == 403 and asked.json()["error"] == "forbidden", url
        if "{kiosk_code}" in path:
            for url in _urls(path, theirs_code, "-"):
                refused = b.get(url)
                assert refused.status_code == 403 and theirs_code not in refused.text, url
                assert b.get(url.replace(theirs_code, "K99999999")).text == refused.text  # same answer
    assert mine in b.get("/console/lsp/lookups").text
    own_statement = b.get(f"/console/lsp/statements/{MONTH}.json").json()["statement"]
    assert own_statement["lsp_id"] == console.lsp1


def _audit_rows(console: Console) -> int:
    with console.h.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one())


@pytest.mark.parametrize("who", ["lsp1-admin", "lsp1-viewer"])
def test_doitc_pages_and_actions_are_refused_to_lsp_people(console: Console, fleet: Fleet, who: str) -> None:
    b = console.signed_in(who)
    device_id = fleet.online.device_id  # even their own kiosk's device
    for method, path in _routes("/console/admin"):
        for url in _urls(path, fleet.online.kiosk_code, device_id):
            resp = b.get(url) if method == "GET" else b.post(url, {"reason": "mine", "catalog": "{}"})
            assert resp.status_code == 403, (method, url)
            assert resp.json()["error"] == "forbidden"
    with console.h.engine.connect() as conn:
        assert (
            conn.execute(sa.select(devices.c.revoked_at).where(devices.c.device_id == device_id)).scalar()
            is None
        )
    assert _audit_rows(console) == 0


def test_nothing_without_signing_in(console: Console, fleet: Fleet) -> None:
    b = console.browser()
    b.get("/console/login")  # a sign-in CSRF cookie is no session
    routes: list[tuple[str, str]] = [*_routes("/console/lsp"), *_routes("/console/admin")]
    for method, path in routes:
        for url in _urls(path, fleet.online.kiosk_code, fleet.online.device_id):
            resp: Any = b.get(url) if method == "GET" else b.post(url, {"reason": "x"}, csrf=False)
            assert resp.status_code == 303 and resp.headers["Location"] == "/console/login", url
    assert _audit_rows(console) == 0


def test_a_doitc_admin_sees_any_lsp_by_asking(console: Console, fleet: Fleet) -> None:
    b = console.signed_in("doitc")
    assert b.get("/console/lsp").status_code == 400  # which LSP?
    page = b.get(f"/console/lsp?lsp={console.lsp2}")
    assert page.status_code == 200 and fleet.other.kiosk_code in page.text
    month = b.get(f"/console/lsp/month.json?month={MONTH}&lsp={console.lsp1}").json()
    assert {k["kiosk_code"] for k in month["kiosks"]} >= {fleet.online.kiosk_code}


def _usernames(console: Console) -> dict[str, str | None]:
    with console.h.engine.connect() as conn:
        return {r.username: r.lsp_id for r in conn.execute(sa.select(console_users))}


def test_lsp_people_are_added_only_to_their_own_lsp(console: Console) -> None:
    viewer = console.signed_in("lsp1-viewer")
    assert viewer.post("/console/lsp/users", {"username": "v1", "password": "x" * 12}).status_code == 403
    admin = console.signed_in("lsp1-admin")
    other = admin.post(f"/console/lsp/users?lsp={console.lsp2}", {"username": "v2", "password": "x" * 12})
    assert other.status_code == 403
    assert "v1" not in _usernames(console) and "v2" not in _usernames(console)
    added = admin.post("/console/lsp/users", {"username": "v3", "password": "x" * 12, "role": "doitc-admin"})
    assert added.status_code == 303 and _usernames(console)["v3"] == console.lsp1
    people = admin.get("/console/lsp/users").text
    assert "v3" in people and "lsp2-admin" not in people
    with console.h.engine.connect() as conn:
        row = conn.execute(sa.select(console_users.c.role).where(console_users.c.username == "v3")).scalar()
        audited = conn.execute(sa.select(audit_log.c.actor, audit_log.c.target, audit_log.c.lsp_id)).all()
    assert row == "lsp-viewer"  # never another role, whatever the form says
    assert audited == [("console:lsp1-admin", "v3", console.lsp1)]
    signed_in = console.browser()
    assert signed_in.login("v3", "x" * 12).status_code == 303
