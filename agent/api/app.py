"""The local API (FastAPI) for the kiosk's browser front end and the operator page.

Handlers are thin: parse, one call into ``agent.transactions`` / the ledger
under the ledger lock, format. Errors are ``{"error": code, "detail": text}``
and never echo what was typed (a mistyped field may hold an Aadhaar number).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from agent import errors, ids, operators, transactions
from agent.api import page, queries
from agent.api.access import LedgerAccess
from agent.api.guard import Guard
from agent.config import Config
from agent.ledger import Ledger
from hardware.errors import HardwareError

log = logging.getLogger(__name__)

LedgerProvider = Callable[[], AbstractContextManager[Ledger]]

_STATUS: dict[type[errors.AgentError], tuple[int, str]] = {
    errors.InvalidInput: (422, "invalid_input"),
    errors.NeedsConnection: (409, "needs_connection"),
    errors.NotFound: (404, "not_found"),
    errors.ServerUnreachable: (503, "server_unreachable"),
    errors.LedgerCorrupt: (500, "ledger_corrupt"),
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewTransaction(_Body):
    service: str = Field(min_length=1, max_length=40)
    amount: str = Field(min_length=1, max_length=20, description="Rupees as a string: 150 or 150.50")
    mobile: str | None = Field(default=None, max_length=20)
    aadhaar: str | None = Field(default=None, max_length=20)
    fields: dict[str, str] = Field(default_factory=dict)
    operator: str | None = Field(default=None, min_length=1, max_length=40)


class VoidRequest(_Body):
    reason: str = Field(min_length=1, max_length=200)
    operator: str | None = Field(default=None, min_length=1, max_length=40)


def _error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status)


def agent_error_response(exc: errors.AgentError) -> JSONResponse:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            status, code = _STATUS[cls]
            return _error(status, code, exc.message)
    return _error(503, "not_ready", exc.message)


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return _error(422, "invalid_input", f"{where}: {first.get('msg', 'invalid')}")  # never the input


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
    on_commit: Callable[[dict[str, Any]], None] | None = None,
) -> FastAPI:
    """The ASGI app. ``ledger_provider`` is a :class:`LedgerAccess` (shared with
    the scheduler) or a bare Ledger (a private lock is made). The callables are
    called outside the ledger lock: they may do network or device I/O."""
    access: LedgerProvider = (
        LedgerAccess(ledger_provider) if isinstance(ledger_provider, Ledger) else ledger_provider
    )
    printing = cfg.settings.printer.url != "none"
    app = FastAPI(
        title="kiosk-agent local API",
        version="1",
        docs_url=None,  # Swagger UI loads from a CDN; kiosks are offline. Spec at /openapi.json.
        redoc_url=None,
    )
    app.add_middleware(Guard, token=token)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    # The receipt's bundled Noto fonts (OFL) also draw the page's Hindi on a kiosk PC without them.
    fonts = Path(str(resources.files("hardware.fonts")))
    app.mount("/fonts", StaticFiles(directory=fonts), name="fonts")

    @app.exception_handler(errors.AgentError)
    async def _agent_error(request: Request, exc: errors.AgentError) -> JSONResponse:
        return agent_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.get("/healthz", tags=["meta"])
    def healthz() -> dict[str, Any]:
        return {"ok": True, "time": ids.iso_utc(now())}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def operator_page(request: Request, lang: str | None = None) -> HTMLResponse:
        if not page.is_loopback(request.client.host if request.client else ""):
            return HTMLResponse("forbidden", status_code=403)
        with access() as led:
            cat = transactions.current_catalog(led)
        return page.render(cat, lang=lang or cfg.settings.printer.lang, token=token)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/status", tags=["kiosk"])
    def status() -> dict[str, Any]:
        with access() as led:
            doc = queries.status(led, cfg)
        doc["online"] = online()
        if status_extra is not None:
            doc.update(status_extra())
        return doc

    @app.get("/api/catalog", tags=["kiosk"])
    def catalog() -> dict[str, Any]:
        with access() as led:
            cat = transactions.current_catalog(led)
        return {"version": cat.version, "services": [s.public() for s in cat.services]}

    @app.post("/api/transactions", status_code=201, tags=["transactions"])
    def new_transaction(body: NewTransaction) -> dict[str, Any]:
        with access() as led:
            req = transactions.NewTxn(
                service=body.service,
                amount=body.amount,
                operator=body.operator or operators.current(cfg, led),  # the one logged in by finger
                mobile=body.mobile or None,
                aadhaar=body.aadhaar or None,
                fields=body.fields,
            )
            view = transactions.create(led, req, online=online, queue_print=printing)
        if on_commit is not None:
            try:
                on_commit(view)
            except Exception:  # committed already: a failed hook must not look like a failed sale
                log.exception("on_commit hook failed for seq %s", view["seq"])
        return view

    @app.get("/api/transactions", tags=["transactions"])
    def list_transactions(
        limit: int = Query(50, ge=1, le=500),
        pending: bool = False,
        rejected: bool = False,
        q: str | None = Query(None, max_length=64),
    ) -> dict[str, Any]:
        """Newest first. ``q``: a token, txn id or service code (prefix)."""
        with access() as led:
            items = queries.recent(led, limit, pending=pending, rejected=rejected, q=q)
        return {"items": items}

    @app.get("/api/transactions/{token}", tags=["transactions"])
    def show_transaction(token: str) -> dict[str, Any]:
        ref = queries.check_ref(token)
        try:
            with access() as led:
                return dict(transactions.view(led.find(ref)), source="local")
        except errors.NotFound:
            if remote_lookup is None:
                raise
        found = remote_lookup(ref)
        if found is None:
            raise errors.NotFound(f"no transaction with token '{ref}' here or at the server")
        return dict(found, source="server")

    @app.post("/api/transactions/{token}/void", tags=["transactions"])
    def void_transaction(token: str, body: VoidRequest) -> dict[str, Any]:
        ref = queries.check_ref(token)
        with access() as led:
            rec = led.void(ref, body.reason, body.operator or operators.current(cfg, led))
            return transactions.view(led.find(rec["txn_id"]))

    @app.post("/api/transactions/{token}/reprint", status_code=202, tags=["transactions"])
    def reprint_transaction(token: str) -> Any:
        ref = queries.check_ref(token)
        if reprint is None:
            return _error(501, "printing_not_configured", "no printer is configured on this kiosk")
        with access() as led:
            view = transactions.view(led.find(ref))
        try:
            result = reprint(str(view["token"]))
        except errors.AgentError:
            raise
        except HardwareError as exc:  # its messages are written for the operator and carry no PII
            status = 503 if exc.transient else 422
            return _error(status, "print_failed", str(exc)[:300])
        except Exception as exc:  # anything else: say what kind, never the data
            log.exception("reprint failed")
            return _error(503, "print_failed", f"printing failed ({exc.__class__.__name__}); try again")
        return {"token": view["token"], "seq": view["seq"], "result": result}

    return app


__all__ = ["LedgerProvider", "NewTransaction", "VoidRequest", "create_app"]
