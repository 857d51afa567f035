"""People who use the console: roles, argon2id password hashes, and sign-in with a login limit.

Roles: ``doitc-admin`` (the whole network, every admin action), ``lsp-admin`` and ``lsp-viewer``
(one LSP's kiosks, reconciliation and statements); an ``lsp-admin`` also adds viewers for its own
LSP (its staff) in the console.

Sign-in: a wrong password counts one failure against the user name and one against the caller's
address in ``rate_windows`` (:mod:`server_stub.limits`), so every worker shares the counts. Once
either reached its limit in the 15-minute window, sign-in answers 429 with Retry-After until the
window ends, even with the right password: guessing is slowed to a few tries per window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.engine import Connection

from server_stub.admin import Actor, lsp_exists
from server_stub.console.tables import console_users
from server_stub.errors import BadRequest, Conflict, NotFound, RateLimited, Unauthorized
from server_stub.limits import WindowCounter, refuse_if_over, retry_after

DOITC_ADMIN = "doitc-admin"
LSP_ADMIN = "lsp-admin"
LSP_VIEWER = "lsp-viewer"
ROLES = (DOITC_ADMIN, LSP_ADMIN, LSP_VIEWER)
LOGIN_WINDOW_S = 15 * 60
MIN_PASSWORD = 12
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

_hasher = PasswordHasher()  # argon2id with the library's current parameters


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check an unknown user name against: the same cost as a known one."""
    return _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    lsp_id: str | None

    @property
    def is_doitc(self) -> bool:
        return self.role == DOITC_ADMIN

    @property
    def manages_people(self) -> bool:
        return self.role in (DOITC_ADMIN, LSP_ADMIN)

    def actor(self) -> Actor:
        return Actor(f"console:{self.username}", self.role)


def clean_username(text: str) -> str:
    name = text.strip().lower()
    if not _USERNAME.match(name):
        raise BadRequest("a user name is 2 to 64 letters, digits, '.', '_' or '-'", code="bad_username")
    return name


def add_user(
    conn: Connection, username: str, password: str, role: str, lsp_id: str | None, now_ms: int
) -> User:
    """A new user; LSP roles need an existing LSP, the DOIT&C role none."""
    name = clean_username(username)
    if role not in ROLES:
        raise BadRequest(f"the role must be one of {', '.join(ROLES)}", code="bad_role")
    if (role == DOITC_ADMIN) != (lsp_id is None):
        raise BadRequest("an LSP role needs --lsp ID; doitc-admin takes none", code="bad_role")
    if lsp_id is not None and not lsp_exists(conn, lsp_id):
        raise NotFound("no such LSP; see `kiosk-server lsp list`", code="unknown_lsp")
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"the password must be at least {MIN_PASSWORD} characters", code="weak_password")
    if conn.execute(sa.select(console_users.c.id).where(console_users.c.username == name)).first():
        raise Conflict("a user with that name already exists", code="username_taken")
    row_id = conn.execute(
        console_users.insert().values(
            username=name, password_hash=_hasher.hash(password), role=role, lsp_id=lsp_id, created_at=now_ms
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return User(int(row_id), name, role, lsp_id)


def user_by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(
        sa.select(console_users).where(console_users.c.id == user_id, console_users.c.disabled_at.is_(None))
    ).first()
    return None if row is None else User(row.id, row.username, row.role, row.lsp_id)


def list_users(conn: Connection, lsp_id: str | None = None) -> list[User]:
    query = sa.select(console_users).order_by(console_users.c.id)
    if lsp_id is not None:
        query = query.where(console_users.c.lsp_id == lsp_id)
    rows = conn.execute(query)
    return [User(r.id, r.username, r.role, r.lsp_id) for r in rows]


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"console-login-user:{username.strip().lower()[:64]}", f"console-login-ip:{address}"


@dataclass(frozen=True)
class LoginLimits:
    counter: WindowCounter
    per_user: int
    per_ip: int


def check_password(conn: Connection, username: str, password: str) -> User | None:
    """The user when the password is right (an unknown name costs a hash check too)."""
    row = conn.execute(
        sa.select(console_users).where(
            console_users.c.username == username.strip().lower(), console_users.c.disabled_at.is_(None)
        )
    ).first()
    try:
        _hasher.verify(row.password_hash if row else _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    return None if row is None else User(row.id, row.username, row.role, row.lsp_id)


def refuse_if_limited(limits: LoginLimits, username: str, address: str, now: float) -> None:
    """RateLimited while the user name or the address used up its failures (call before checking)."""
    user_key, ip_key = _keys(username, address)
    message = "too many wrong passwords; wait before trying again"
    refuse_if_over(limits.counter, user_key, limits.per_user, LOGIN_WINDOW_S, now, message)
    refuse_if_over(limits.counter, ip_key, limits.per_ip, LOGIN_WINDOW_S, now, message)


def count_failure(limits: LoginLimits, username: str, address: str, now: float) -> None:
    """One more failure for the name and the address; Unauthorized, or RateLimited on the last."""
    user_key, ip_key = _keys(username, address)
    n_user = limits.counter.add(user_key, LOGIN_WINDOW_S, now)
    n_ip = limits.counter.add(ip_key, LOGIN_WINDOW_S, now)
    if n_user >= limits.per_user or n_ip >= limits.per_ip:
        raise RateLimited(
            "too many wrong passwords; wait before trying again", retry_after(LOGIN_WINDOW_S, now)
        )
    raise Unauthorized("wrong user name or password", code="wrong_password")
