"""Signed-in browsers: a random cookie (only its SHA-256 is stored), a CSRF token per session.

- The cookie is ``HttpOnly``, ``SameSite=Strict``, ``Path=/console`` and ``Secure`` when the
  request came over TLS; a session ends after :data:`SESSION_HOURS` or at sign-out.
- Every form of a signed-in page carries the session's CSRF token (``csrf`` field); a post
  without it, or with another, is refused (403) before anything is read or written.
- The sign-in form, before any session exists, uses a double-submit token: a random cookie
  :data:`LOGIN_CSRF_COOKIE` that the form must repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.console.tables import console_sessions
from server_stub.console.users import User, user_by_id
from server_stub.errors import Forbidden

SESSION_COOKIE = "kiosk_console"
LOGIN_CSRF_COOKIE = "kiosk_console_login"
SESSION_HOURS = 12
COOKIE_PATH = "/console"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(conn: Connection, user: User, now_ms: int) -> str:
    """A new session for ``user``; returns the cookie value (never stored)."""
    token = secrets.token_urlsafe(32)
    conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= now_ms))
    conn.execute(
        console_sessions.insert().values(
            id_hash=_hash(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now_ms,
            expires_at=now_ms + SESSION_HOURS * 3600 * 1000,
        )
    )
    return token


def lookup(conn: Connection, token: str | None, now_ms: int) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, or None."""
    if not token or len(token) > 100:
        return None
    row = conn.execute(
        sa.select(console_sessions.c.user_id, console_sessions.c.csrf_token).where(
            console_sessions.c.id_hash == _hash(token), console_sessions.c.expires_at > now_ms
        )
    ).first()
    if row is None:
        return None
    user = user_by_id(conn, row.user_id)
    return None if user is None else (user, row.csrf_token)


def end(conn: Connection, token: str | None) -> None:
    if token:
        conn.execute(console_sessions.delete().where(console_sessions.c.id_hash == _hash(token)))


def check_csrf(expected: str | None, sent: str | None) -> None:
    """Forbidden unless ``sent`` is the expected token (compared in constant time)."""
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise Forbidden("the form is missing its security token; reload the page and try again", code="csrf")


def new_login_token() -> str:
    return secrets.token_urlsafe(24)
