"""Console fixtures: a real uvicorn (the server fixtures), people of each role, and a browser-like
client (a requests session that keeps cookies and sends the CSRF token its pages carry)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from server_stub.console import users
from tests.server_stub.conftest import Harness

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
