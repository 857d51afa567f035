"""Console fixtures: a real uvicorn (the server fixtures), people of each role, and a browser-like
client (a requests session that keeps cookies and sends the CSRF token its pages carry)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from server_stub.console import users
from tests.server_stub.conftest import Harness
from tests.server_stub.kiosk_fake import FakeKiosk

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """A signed-in (or not) person: cookies kept, redirects not followed unless asked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.csrf = ""

    def get(self, path: str, **kw: Any) -> requests.Response:
        resp = self.session.get(self.url + path, timeout=30, allow_redirects=False, **kw)
        found = _CSRF.search(resp.text) if "text/html" in resp.headers.get("content-type", "") else None
        if found:
            self.csrf = found.group(1)
        return resp

    def post(self, path: str, data: dict[str, str], csrf: bool = True) -> requests.Response:
        body = {**data, "csrf": self.csrf} if csrf else data
        return self.session.post(self.url + path, data=body, timeout=30, allow_redirects=False)

    def login(self, username: str, password: str = PASSWORD) -> requests.Response:
        assert self.get("/console/login").status_code == 200
        resp = self.post("/console/login", {"username": username, "password": password})
        if resp.status_code == 303:
            self.get("/console/")  # a page with the session's CSRF token
            self.get(resp.headers["Location"])
            self.get("/console/lsp" if "lsp" in username else "/console/admin")
        return resp


@dataclass
class Console:
    h: Harness
    lsp1: str
    lsp2: str

    def browser(self) -> Browser:
        return Browser(self.h.url)

    def signed_in(self, username: str) -> Browser:
        b = self.browser()
        assert b.login(username).status_code == 303
        return b


def add_user(h: Harness, username: str, role: str, lsp_id: str | None) -> None:
    with h.engine.begin() as conn:
        users.add_user(conn, username, PASSWORD, role, lsp_id, h.now_ms())


@pytest.fixture
def console(start_server: Callable[..., Harness]) -> Console:
    """Two LSPs, an admin (``doitc``), an LSP admin and a viewer of each (``lsp1-admin`` ...)."""
    h = start_server(rate_per_s=0)
    lsp1, lsp2 = h.lsp("First LSP").lsp_id, h.lsp("Second LSP").lsp_id
    add_user(h, "doitc", users.DOITC_ADMIN, None)
    for n, lsp_id in ((1, lsp1), (2, lsp2)):
        add_user(h, f"lsp{n}-admin", users.LSP_ADMIN, lsp_id)
        add_user(h, f"lsp{n}-viewer", users.LSP_VIEWER, lsp_id)
    return Console(h, lsp1, lsp2)


IST = ZoneInfo("Asia/Kolkata")
MONTH = "2026-09"


def ist_ms(day: int, hh: int, mm: int = 0) -> int:
    return int(datetime(2026, 9, day, hh, mm, tzinfo=IST).timestamp() * 1000)


def set_clock(h: Harness, ms: int, *fakes: FakeKiosk) -> None:
    h.clock.offset = ms / 1000 - time.time()
    for f in fakes:
        f.now = h.clock()


@dataclass
class Fleet:
    """LSP 1: ``online`` (heartbeat now), ``stale`` (an hour ago), ``offline`` (36 h ago), one not
    enrolled; LSP 2: ``other``. Sales on the 21st and 22nd; now is the 23rd, 12:00 IST."""

    online: FakeKiosk
    stale: FakeKiosk
    offline: FakeKiosk
    other: FakeKiosk
    not_enrolled: str
    api_key1: str


def _sales(f: FakeKiosk, *days: int) -> None:
    recs = [f.make_record(amount_paise=10_000 * d, fee_paise=1000, created_at=ist_ms(d, 10)) for d in days]
    assert {a["status"] for a in f.push(recs).json()["acks"]} == {"accepted"}


def make_fleet(c: Console) -> Fleet:
    h = c.h
    set_clock(h, ist_ms(20, 9))
    codes = [h.kiosk(c.lsp1, name).enrollment_code for name in ("Online shop", "Stale shop", "Offline shop")]
    kiosks = []
    for code in codes:
        f = FakeKiosk(h.url, h.session)
        f.enroll(code)
        kiosks.append(f)
    online, stale, offline = kiosks
    other = h.enrolled(c.lsp2)
    not_enrolled = h.kiosk(c.lsp1, '=HYPERLINK("x")').kiosk_code  # a name that looks like a formula
    set_clock(h, ist_ms(22, 0), offline, other, online)
    _sales(online, 21)
    _sales(other, 21)
    assert offline.call("POST", "/v1/heartbeat", {"head_seq": 0, "hardware": {"printer": "offline"}}).ok
    set_clock(h, ist_ms(23, 11), stale, online)
    _sales(online, 22)
    assert stale.call("POST", "/v1/heartbeat", {"head_seq": 0, "queue_depth": 4}).ok
    set_clock(h, ist_ms(23, 12), online)
    hb = {"head_seq": 2, "queue_depth": 0, "hardware": {"printer": "paper_out"}}
    assert online.call("POST", "/v1/heartbeat", hb).ok
    key = _rotate_key(h, c.lsp1)
    return Fleet(online, stale, offline, other, not_enrolled, key)


def _rotate_key(h: Harness, lsp_id: str) -> str:
    from server_stub import admin

    with h.engine.begin() as conn:
        return admin.rotate_lsp_key(conn, lsp_id, h.now_ms()).api_key


@pytest.fixture
def fleet(console: Console) -> Fleet:
    return make_fleet(console)


def issue_statements(c: Console) -> None:
    """The month is over (1 October, 06:00 IST): each LSP's September statement is issued."""
    from server_stub import statements
    from server_stub.keys import KeySource, load_keys

    h = c.h
    set_clock(h, int(datetime(2026, 10, 1, 6, tzinfo=IST).timestamp() * 1000))
    keys = load_keys(KeySource.at(h.config.keys_path()))
    for lsp_id in (c.lsp1, c.lsp2):
        assert statements.issue(h.engine, lsp_id, MONTH, h.config, keys, h.now_ms()).created
