"""Token follow-up from any kiosk: what the server knows of a token, with no personal data."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub.db import records, tokens
from sync.wire.protocol import TokenStatus
from sync.wire.tokens import is_provisional


def token_status(conn: Connection, token: str) -> TokenStatus:
    if len(token) > 80:
        return TokenStatus(token=token[:80], status="unknown")
    where = conn.execute(sa.select(tokens.c.device_id, tokens.c.seq).where(tokens.c.token == token)).first()
    if where is None:
        return TokenStatus(token=token, status="unknown")
    rec = conn.execute(
        sa.select(records).where(records.c.device_id == where.device_id, records.c.seq == where.seq)
    ).first()
    if rec is None:
        return TokenStatus(token=token, status="unknown")
    voided = conn.execute(
        sa.select(records.c.id).where(
            records.c.device_id == rec.device_id, records.c.kind == "void", records.c.voids_seq == rec.seq
        )
    ).first()
    provisional = rec.token if rec.token and is_provisional(rec.token) else None
    return TokenStatus(
        token=token,
        status="voided" if voided else "synced",
        kiosk_code=rec.kiosk_code,
        service=rec.service,
        kind=rec.kind,
        created_at=rec.created_at,
        amount_paise=rec.amount_paise,
        final_token=rec.final_token if provisional else None,
        provisional_token=provisional if token != provisional else None,
    )
