"""The operator page in Debian's headless Chromium (playwright drives it with
executable_path; it never downloads a browser): make a transaction while the
server is down, see it queued, start the server, see it synced."""

from __future__ import annotations

from tests.browser import ARTIFACTS, launch, needs_chromium
from tests.e2e.agent_proc import AgentProcess
from tests.e2e.servers import ServerProcess

pytestmark = needs_chromium


def test_offline_transaction_queues_then_syncs_when_server_returns(
    enrolled_agent: tuple[AgentProcess, ServerProcess],
) -> None:
    from playwright.sync_api import expect, sync_playwright

    agent, server = enrolled_agent
    agent.start()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(agent.url + "/?lang=en")
            page.select_option("#service", "WATER_BILL")
            page.fill("#field-WATER_BILL-consumer_number", "3345678901")
            page.fill("#amount", "245.50")
            page.fill("#mobile", "9876543210")
            page.click("#submit")
            expect(page.locator("#result")).to_contain_text("0", timeout=15_000)
            token = agent.api("GET", "/api/transactions?limit=1").json()["items"][0]["token"]
            expect(page.locator("#result")).to_contain_text(token)
            expect(page.locator("#recent")).to_contain_text(token)
            expect(page.locator("#queue-depth")).to_have_text("1", timeout=15_000)
            expect(page.locator("#online-badge")).not_to_have_class("badge online")
            page.screenshot(path=str(ARTIFACTS / "operator-page-offline.png"), full_page=True)
            with server:
                expect(page.locator("#queue-depth")).to_have_text("0", timeout=40_000)
                expect(page.locator("#last-sync")).not_to_have_text("-")
                page.screenshot(path=str(ARTIFACTS / "operator-page-synced.png"), full_page=True)
            assert "9876543210" not in page.content()
            page.goto(agent.url + "/?lang=hi")  # Hindi with the bundled font, on a PC that has none
            expect(page.locator("#submit")).to_contain_text("टोकन")
            page.evaluate("document.fonts.ready")
            loaded = page.evaluate(
                "[...document.fonts].filter(f => f.family.includes('Devanagari') "
                "&& f.status === 'loaded').length"
            )
            assert loaded >= 1
            page.screenshot(path=str(ARTIFACTS / "operator-page-hindi.png"), full_page=True)
            assert not errors, errors
            browser.close()
    finally:
        assert agent.stop()[0] == 0
