"""The console's tables (SQLAlchemy Core, on the server's one ``metadata``; migration 0004).

- ``console_users``: a person who signs in: user name (lower case), argon2id hash, role, LSP.
- ``console_sessions``: a signed-in browser: the SHA-256 of its cookie (never the cookie
  itself), the CSRF token its forms carry, and when it ends.
- ``audit_log``: every admin action done in the console or the CLI's console commands: who, what,
  on what, why, when.
"""

from __future__ import annotations

import sqlalchemy as sa

from server_stub.db import metadata

console_users = sa.Table(
    "console_users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # doitc-admin | lsp-admin | lsp-viewer
    sa.Column("lsp_id", sa.String(32), sa.ForeignKey("lsps.lsp_id"), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("disabled_at", sa.BigInteger, nullable=True),
)

console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("console_users.id"), nullable=False, index=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.BigInteger, nullable=False, index=True),
    sa.Column("actor", sa.String(80), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column("reason", sa.String(200), nullable=True),
    sa.Column("lsp_id", sa.String(32), nullable=True),  # the LSP the target belongs to, if any
)
