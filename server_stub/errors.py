"""Errors of the central server. Each carries an HTTP status and a machine-readable code.

Transient (the client should retry later): :class:`RateLimited`, :class:`Unavailable`.
Everything else is permanent for the request as sent.
"""

from __future__ import annotations


class ServerError(Exception):
    status = 400
    code = "bad_request"
    transient = False

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class BadRequest(ServerError):
    status = 400
    code = "bad_request"


class Unprocessable(ServerError):
    """Well-formed and schema-valid, but not meaningful (non-consecutive seqs, 2026-13-45)."""

    status = 422
    code = "unprocessable"


class Unauthorized(ServerError):
    status = 401
    code = "unauthorized"


class Forbidden(ServerError):
    status = 403
    code = "forbidden"


class NotFound(ServerError):
    status = 404
    code = "not_found"


class Conflict(ServerError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServerError):
    status = 413
    code = "body_too_large"


class UnsupportedMediaType(ServerError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ServerError):
    status = 429
    code = "rate_limited"
    transient = True

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(ServerError):
    status = 503
    code = "unavailable"
    transient = True


def retry_headers(exc: ServerError) -> dict[str, str]:
    """The headers an answer of ``exc`` carries: ``Retry-After`` when it is transient (a rate
    limit's own wait; 5 s for a busy or unavailable server)."""
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(exc.retry_after_s)}
    if isinstance(exc, Unavailable):
        return {"Retry-After": "5"}
    return {}


class ConfigError(ValueError):
    """Bad configuration or command-line input; the CLI prints it and exits 2."""
