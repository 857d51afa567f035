"""The local API (FastAPI) for the kiosk's browser front end and the operator page.

``create_app`` puts the kiosk's state on ``app.state.kiosk`` (:class:`ApiState`) and
mounts the routers of ``agent.api.routes``; handlers are thin: parse, one call into
``agent.sales`` / the ledger under the ledger lock, format. Errors are
``{"error": code, "detail": text}`` and never echo what was typed.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from agent import ids
from agent.api import responses
from agent.api.guard import Guard
from agent.api.routes import ROUTERS
from agent.api.routes.transactions import NewTransaction, VoidRequest
from agent.api.state import ApiState
from agent.config import Config
from agent.ledger import Ledger, LedgerProvider, as_provider
from agent.transactions import TxnView

if TYPE_CHECKING:
    from hardware import Printer


def create_app(
    ledger_provider: LedgerProvider | Ledger,
    cfg: Config,
    *,
    token: str,
    now: Callable[[], int] = ids.now_ms,
    online: Callable[[], bool] = lambda: False,
    status_extra: Callable[[], dict[str, Any]] | None = None,
    remote_lookup: Callable[[str], dict[str, Any] | None] | None = None,
    reprint: Callable[[str], Any] | None = None,
    on_commit: Callable[[TxnView], None] | None = None,
    printer: Printer | None = None,
    enqueue_print: Callable[[int], Any] | None = None,
) -> FastAPI:
    """The ASGI app. ``ledger_provider`` is a :class:`LedgerAccess` (shared with the scheduler)
    or a bare Ledger (a private lock is made). See :class:`ApiState` for the hooks."""
    app = FastAPI(
        title="kiosk-agent local API",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; kiosks are offline. Spec at /openapi.json.
        redoc_url=None,
    )
    app.state.kiosk = ApiState(
        as_provider(ledger_provider),
        cfg,
        token,
        now,
        online,
        status_extra,
        remote_lookup,
        reprint,
        on_commit,
        printer,
        enqueue_print,
    )
    app.add_middleware(Guard, token=token)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # The receipt's bundled Noto fonts (OFL) also draw the page's Hindi on a kiosk PC without them.
    fonts = Path(str(resources.files("hardware.fonts")))
    app.mount("/fonts", StaticFiles(directory=fonts), name="fonts")
    responses.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


__all__ = ["LedgerProvider", "NewTransaction", "VoidRequest", "create_app"]
