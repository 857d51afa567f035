"""The console in Debian's headless Chromium (playwright with executable_path; it never downloads
a browser), against a real uvicorn with the server's clock set to 2026-09-23 12:00 IST:

- an LSP signs in, sees its offline kiosk flagged, opens the month and downloads CSV and XLSX,
  both read back and equal to the JSON;
- a DOIT&C admin revokes and reinstates a device and sees both in the audit log;
- a wrong password is refused and repeated ones are slowed; a form without its CSRF token is
  refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ARTIFACTS, launch, needs_chromium
from tests.server_stub.console.conftest import MONTH, PASSWORD, Console, Fleet
from tests.server_stub.console.test_lsp_pages import _rows_from_csv, _rows_from_xlsx, _same

pytestmark = needs_chromium


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: the pages are the same on PostgreSQL (the request-level tests run on both)."""
    return f"sqlite:///{tmp_path / 'server.db'}"


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = launch(pw)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(page: Any, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(url + "/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#sign-in")


def test_lsp_sees_offline_kiosk_and_downloads_the_month(
    console: Console, fleet: Fleet, browser: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(accept_downloads=True, viewport={"width": 1360, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    _sign_in(page, console.h.url, "lsp1-admin")
    row = page.locator(f"#kiosk-{fleet.offline.kiosk_code}")
    expect(row.locator(".badge.offline")).to_have_text("offline")
    expect(page.locator(f"#kiosk-{fleet.online.kiosk_code} .badge.online")).to_have_text("online")
    expect(page.locator(f"#kiosk-{fleet.stale.kiosk_code} .badge.stale")).to_have_text("stale")
    page.screenshot(path=str(ARTIFACTS / "console-lsp-kiosks.png"), full_page=True)
    page.click("#open-month")
    expect(page.locator("h1")).to_contain_text(f"month {MONTH}")
    page.screenshot(path=str(ARTIFACTS / "console-lsp-month.png"), full_page=True)
    files = {}
    for fmt in ("csv", "xlsx"):
        with page.expect_download() as info:
            page.click(f"#download-{fmt}")
        files[fmt] = tmp_path / info.value.suggested_filename
        info.value.save_as(files[fmt])
    assert files["csv"].name == f"reconciliation-{console.lsp1}-{MONTH}.csv"
    doc = page.request.get(console.h.url + f"/console/lsp/month.json?month={MONTH}").json()
    _same(doc, _rows_from_csv(files["csv"].read_text("utf-8")), _rows_from_xlsx(files["xlsx"].read_bytes()))
    assert not errors, errors  # the CSP holds: no blocked resource, no script error


def test_doitc_revokes_and_reinstates_and_sees_both_in_the_audit(
    console: Console, fleet: Fleet, browser: Any
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1360, "height": 800})
    _sign_in(page, console.h.url, "doitc")
    expect(page.locator("#glance-total")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "console-doitc-network.png"), full_page=True)
    page.goto(console.h.url + "/console/admin/kiosks")
    row = page.locator(f"#device-{fleet.stale.device_id}")
    row.locator("input[name=reason]").fill("PC reported stolen")
    row.locator("button.revoke").click()
    expect(row.locator("td.revoked")).not_to_have_text("-")
    row.locator("input[name=reason]").fill("PC recovered by police")
    row.locator("button.reinstate").click()
    expect(row.locator("td.revoked")).to_have_text("-")
    page.goto(console.h.url + "/console/admin/audit")
    audit = page.locator("#audit tbody tr")
    expect(audit).to_have_count(2)
    expect(audit.nth(0)).to_contain_text("device reinstate")
    expect(audit.nth(0)).to_contain_text("PC recovered by police")
    expect(audit.nth(1)).to_contain_text("device revoke")
    expect(audit.nth(1)).to_contain_text("PC reported stolen")
    expect(audit.nth(1)).to_contain_text(fleet.stale.device_id)
    page.screenshot(path=str(ARTIFACTS / "console-doitc-audit.png"), full_page=True)


def test_wrong_passwords_are_refused_then_slowed_and_csrf_is_required(console: Console, browser: Any) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    for _ in range(console.h.config.login_failures_per_user - 1):
        _sign_in(page, console.h.url, "lsp2-viewer", "wrong password!")
        expect(page.locator("#login-error")).to_have_text("wrong user name or password")
    _sign_in(page, console.h.url, "lsp2-viewer", "wrong password!")
    expect(page.locator("#login-error")).to_contain_text("too many wrong passwords")
    _sign_in(page, console.h.url, "lsp2-viewer")  # the right one waits too
    expect(page.locator("#login-error")).to_contain_text("too many wrong passwords")
    page.goto(console.h.url + "/console/login")  # a form whose CSRF token was removed
    page.locator("input[name=csrf]").evaluate("e => e.remove()")
    page.fill("#username", "lsp1-viewer")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#error")).to_have_attribute("data-code", "csrf")
    expect(page.locator("#error")).to_contain_text("security token")
    _sign_in(page, console.h.url, "lsp1-viewer")  # with its token, it signs in
    expect(page.locator("#whoami")).to_contain_text("lsp1-viewer")
    page.locator("header input[name=csrf]").evaluate("e => e.value = 'forged'")
    page.click("#logout")
    expect(page.locator("#error")).to_have_attribute("data-code", "csrf")
    page.goto(console.h.url + "/console/lsp")  # still signed in: the forged post did nothing
    expect(page.locator("#whoami")).to_contain_text("lsp1-viewer")
    page.goto(console.h.url + "/console/lsp?lsp=LSP0002")  # another LSP: a page that says no
    expect(page.locator("h1")).to_have_text("Not allowed")
