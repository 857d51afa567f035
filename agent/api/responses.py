"""The local API's error answers: ``{"error": code, "detail": text}``, never a plain-text 500,
and never what was typed (a mistyped field may hold an Aadhaar number)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from agent import errors
from agent.ledger.db import DatabaseError, is_storage, storage_error
from sync.wire.redact import redact

_STATUS: dict[type[errors.AgentError], tuple[int, str]] = {
    errors.IdempotencyKeyReused: (422, "idempotency_key_reused"),
    errors.InvalidInput: (422, "invalid_input"),
    errors.NeedsConnection: (409, "needs_connection"),
    errors.NotFound: (404, "not_found"),
    errors.ServerUnreachable: (503, "server_unreachable"),
    errors.LedgerCorrupt: (503, "ledger_corrupt"),
    errors.DiskFull: (507, "disk_full"),
    errors.LedgerDamaged: (503, "ledger_damaged"),
    errors.LedgerBehind: (503, "ledger_behind"),
    errors.LedgerTooNew: (503, "ledger_newer"),
    errors.LedgerIOError: (503, "database_error"),
}


def error(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": code, "detail": redact(detail)}, status_code=status)


def agent_error_response(exc: errors.AgentError) -> JSONResponse:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            status, code = _STATUS[cls]
            return error(status, code, exc.message)
    return error(503, "not_ready", exc.message)


def storage_response(exc: Exception, ledger_path: Path) -> JSONResponse:
    """SQLite's error that escaped a ledger call, named (disk full, damage, I/O, other)."""
    if is_storage(exc):
        return agent_error_response(storage_error(exc, ledger_path))
    name = getattr(exc, "sqlite_errorname", None) or exc.__class__.__name__
    return error(503, "database_error", f"the ledger answered an error ({name}); try again")


def validation_response(exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return error(422, "invalid_input", f"{where}: {first.get('msg', 'invalid')}")  # never the input


def install(app: FastAPI) -> None:
    """Register the handlers that turn our errors and bad bodies into JSON answers."""

    @app.exception_handler(errors.AgentError)
    async def _agent_error(request: Request, exc: errors.AgentError) -> JSONResponse:
        return agent_error_response(exc)

    @app.exception_handler(DatabaseError)
    async def _database(request: Request, exc: DatabaseError) -> JSONResponse:  # never a plain 500
        return storage_response(exc, request.app.state.kiosk.cfg.ledger_path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)
