"""How errors become answers: a JSON ``{"error", "detail"}`` body, never a traceback, and never
the caller's input echoed back (it may carry a mobile or Aadhaar number)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from server_stub.errors import ServerError, Unavailable, retry_headers
from sync.wire.redact import redact

log = logging.getLogger(__name__)


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": code, "detail": redact(detail)}, headers=headers
    )


def validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:3]:
        loc = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _server_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServerError)
    headers = retry_headers(exc) or None
    if console_html(request):  # a person in the console: a page, not JSON
        from server_stub.console.render import error_page

        return error_page(exc.status, exc.code, redact(exc.message), headers)
    return error_response(exc.status, exc.code, exc.message, headers)


def console_html(request: Request) -> bool:
    return request.url.path.startswith("/console/") and "text/html" in request.headers.get("accept", "")


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "invalid_request", validation_detail(exc))


async def _http(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


def db_unavailable(exc: Exception) -> Unavailable | None:
    """A busy or failing database, or a pool with no connection free in time, as the transient
    503 it is answered with (logged here; never the statement or its parameters); None for any
    other exception."""
    if isinstance(exc, PoolTimeout):
        log.warning("no database connection free in time")
        return Unavailable("the server is busy; try again")
    if isinstance(exc, OperationalError):
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return Unavailable("the database is busy; try again")
    if isinstance(exc, DBAPIError):
        log.error("database error: %s", type(exc.orig).__name__)
        return Unavailable("the database refused the request; try again")
    return None


async def _db_failure(request: Request, exc: Exception) -> Response:
    unavailable = db_unavailable(exc)
    assert unavailable is not None
    return await _server_error(request, unavailable)


def install(app: FastAPI) -> None:
    """Register the handlers: our errors, bad requests, HTTP errors, a busy or failing database, a
    connection pool with none free in time."""
    app.add_exception_handler(ServerError, _server_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    for db_failure in (OperationalError, DBAPIError, PoolTimeout):
        app.add_exception_handler(db_failure, _db_failure)
