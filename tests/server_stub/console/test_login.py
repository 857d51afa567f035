"""Signing in: argon2 passwords, cookie flags, CSRF on every form (the sign-in form too), the
login limit shared through the database, sign-out."""

from __future__ import annotations

from collections.abc import Callable

import requests

from server_stub.console import users
from tests.server_stub.conftest import Harness
from tests.server_stub.console.conftest import PASSWORD, Browser, Console, add_user


def test_sign_in_sets_a_strict_http_only_cookie_and_lands_on_the_role_page(console: Console) -> None:
    b = console.browser()
    assert b.get("/console/lsp").status_code == 303  # not signed in: to the sign-in page
    resp = b.login("lsp1-viewer")
    assert resp.status_code == 303
    cookie = resp.headers["set-cookie"]
    assert "kiosk_console=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie  # plain HTTP on loopback
    assert b.get("/console/").headers["Location"] == "/console/lsp"
    page = b.get("/console/lsp")
    assert page.status_code == 200 and console.lsp1 in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    admin = console.signed_in("doitc")
    assert admin.get("/console/").headers["Location"] == "/console/admin"


def test_behind_a_proxy_that_ends_tls_the_cookies_are_secure_always(
    start_server: Callable[..., Harness],
) -> None:
    h = start_server(rate_per_s=0, cookie_secure="always")  # the server itself sees plain http
    add_user(h, "doitc", users.DOITC_ADMIN, None)
    b = Browser(h.url)
    first = b.get("/console/login")
    assert "Secure" in first.headers["set-cookie"]  # the sign-in form's CSRF cookie
    # A client keeps a Secure cookie off plain http (requests does, as a browser would); the
    # browser sent it over https to the proxy, which passes it on: sent here by hand.
    sent = {c.name: c.value for c in b.session.cookies}
    assert b.post("/console/login", {"username": "doitc", "password": PASSWORD}).status_code == 403
    resp = requests.post(
        h.url + "/console/login",
        data={"username": "doitc", "password": PASSWORD, "csrf": b.csrf},
        cookies=sent,
        timeout=30,
        allow_redirects=False,
    )
    assert resp.status_code == 303 and "kiosk_console=" in resp.headers["set-cookie"]
    assert "Secure" in resp.headers["set-cookie"] and "HttpOnly" in resp.headers["set-cookie"]


def test_wrong_password_is_refused_and_repeated_ones_are_slowed(console: Console) -> None:
    b = console.browser()
    for _ in range(console.h.config.login_failures_per_user - 1):
        resp = b.login("lsp1-admin", "not the password")
        assert resp.status_code == 401 and "wrong user name or password" in resp.text
        assert "kiosk_console=" not in resp.headers.get("set-cookie", "")
    last = b.login("lsp1-admin", "not the password")
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0
    # now even the right password waits for the window to end, from any browser
    again = console.browser().login("lsp1-admin", PASSWORD)
    assert again.status_code == 429 and "too many wrong passwords" in again.text
    # another user from the same address is not locked by those (the per-address limit is higher)
    assert console.browser().login("lsp2-admin").status_code == 303
    console.h.clock.offset += 16 * 60  # the 15-minute window is over
    assert console.browser().login("lsp1-admin").status_code == 303


def test_unknown_user_is_refused_like_a_wrong_password(console: Console) -> None:
    resp = console.browser().login("nobody", PASSWORD)
    assert resp.status_code == 401 and "wrong user name or password" in resp.text


def test_a_post_without_the_csrf_token_is_refused(console: Console) -> None:
    b = console.browser()
    b.get("/console/login")
    no_token = b.post("/console/login", {"username": "doitc", "password": PASSWORD}, csrf=False)
    assert no_token.status_code == 403 and no_token.json()["error"] == "csrf"
    admin = console.signed_in("doitc")
    kiosk = console.h.kiosk(console.lsp1)
    for path in (
        f"/console/admin/kiosks/{kiosk.kiosk_code}/expire-code",
        f"/console/admin/kiosks/{kiosk.kiosk_code}/enrollment-code",
        "/console/logout",
    ):
        refused = admin.post(path, {"reason": "x"}, csrf=False)
        assert refused.status_code == 403 and refused.json()["error"] == "csrf", path
        forged = admin.session.post(console.h.url + path, data={"csrf": "forged"}, allow_redirects=False)
        assert forged.status_code == 403, path
    assert admin.get("/console/admin/audit").text.count("enrollment") == 0  # nothing was done
    assert admin.get("/console/admin").status_code == 200  # still signed in


def test_sign_out_ends_the_session_on_the_server(console: Console) -> None:
    b = console.signed_in("lsp2-viewer")
    cookie = b.session.cookies.get("kiosk_console")
    assert b.post("/console/logout", {}).status_code == 303
    stale = console.browser()
    stale.session.cookies.set("kiosk_console", cookie)
    assert stale.get("/console/lsp").status_code == 303  # the old cookie no longer signs in


def test_the_limit_is_shared_by_every_worker_and_counts_per_address(
    start_server: Callable[..., Harness],
) -> None:
    """Two servers on one database (as two uvicorn workers or hosts): wrong passwords on one count
    on the other; many user names from one address hit the per-address limit."""
    one = start_server(rate_per_s=0, login_failures_per_user=4, login_failures_per_ip=3)
    two = start_server(rate_per_s=0, login_failures_per_user=4, login_failures_per_ip=3)
    add_user(one, "meena", users.DOITC_ADMIN, None)
    first, second = Browser(one.url), Browser(two.url)
    assert first.login("guess-1", "x").status_code == 401
    assert second.login("guess-2", "x").status_code == 401
    assert first.login("guess-3", "x").status_code == 429  # the third from this address
    refused = second.login("meena")  # the right password, on the other server
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 15 * 60
