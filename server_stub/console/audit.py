"""The audit log: every admin action (who, what, on what, why, when: revoke, reinstate,
enrollment codes, catalog loads, statements issued, users added), and the token follow-ups
kiosks asked (``token_lookups``, written by the lookup route), for the DOIT&C and LSP views."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.admin import Actor
from server_stub.console.tables import audit_log
from server_stub.db import kiosks, token_lookups

REVOKE = "device_revoke"
REINSTATE = "device_reinstate"
ENROLL_CODE = "enrollment_code"
ENROLL_EXPIRE = "enrollment_expire"
CATALOG = "catalog_load"
USER_ADD = "user_add"
STATEMENT = "statement_issue"


@dataclass(frozen=True)
class Entry:
    at: int
    actor: str
    action: str
    target: str
    reason: str | None
    lsp_id: str | None


@dataclass(frozen=True)
class Lookup:
    asked_at: int
    kiosk_code: str
    lsp_id: str
    token: str
    revealed: str


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    now_ms: int,
    reason: str | None = None,
    lsp_id: str | None = None,
) -> None:
    """One line in the log, in the transaction of the action it records."""
    conn.execute(
        audit_log.insert().values(
            at=now_ms, actor=actor.name[:80], action=action, target=target[:80], reason=reason, lsp_id=lsp_id
        )
    )


def entries(conn: Connection, limit: int = 200) -> list[Entry]:
    rows = conn.execute(
        sa.select(audit_log).order_by(audit_log.c.at.desc(), audit_log.c.id.desc()).limit(limit)
    )
    return [Entry(r.at, r.actor, r.action, r.target, r.reason, r.lsp_id) for r in rows]


def lookups(conn: Connection, lsp_id: str | None = None, limit: int = 200) -> list[Lookup]:
    """Token follow-ups, newest first (of one LSP's kiosks when ``lsp_id`` is given)."""
    query = (
        sa.select(
            token_lookups.c.asked_at,
            token_lookups.c.kiosk_code,
            kiosks.c.lsp_id,
            token_lookups.c.token,
            token_lookups.c.revealed,
        )
        .join(kiosks, kiosks.c.kiosk_code == token_lookups.c.kiosk_code)
        .order_by(token_lookups.c.asked_at.desc(), token_lookups.c.id.desc())
        .limit(limit)
    )
    if lsp_id is not None:
        query = query.where(kiosks.c.lsp_id == lsp_id)
    return [Lookup(*r) for r in conn.execute(query)]
