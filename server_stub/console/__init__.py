"""The console: server-rendered pages (Jinja2, no script) for people, beside the API for machines.

- :mod:`.users` (roles, argon2id passwords, login limit), :mod:`.sessions` (cookies, CSRF),
  :mod:`.tables` (users, sessions, audit log), :mod:`.audit`;
- :mod:`.network` (each kiosk's state by its heartbeat; the network at a glance),
  :mod:`.reports` (a day's and a month's reconciliation as JSON, CSV and XLSX);
- the pages: :mod:`.login`, :mod:`.lsp_pages` (an LSP's own kiosks), :mod:`.admin_pages` (DOIT&C).

``ROUTERS`` (the pages) is imported on first use, so the CLI's ``user`` commands need no web stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROUTERS"]


def __getattr__(name: str) -> Any:
    if name == "ROUTERS":
        from server_stub.console import admin_pages, login, lsp_pages

        return (login.router, lsp_pages.router, admin_pages.router)
    raise AttributeError(f"module 'server_stub.console' has no attribute {name!r}")
