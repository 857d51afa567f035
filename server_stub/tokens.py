"""Token follow-up from any kiosk (``GET /v1/tokens/{token}``), without a leak.

A citizen may follow a token up at any e-Mitra, so every enrolled device learns what follow-up
needs: status, service, kind, the IST date and the issuing K-code (and the provisional/final token
it resolves to). The time, amount and fields go only to devices of the issuing kiosk's own LSP.
Never a mobile or Aadhaar reference.

Tokens are serials, so they could be walked: a malformed one (wrong shape, bad check digit) is
refused with 422 before any lookup, lookups are limited per device in shared storage
(``token_lookups_per_min``, :mod:`server_stub.limits`), and every answered lookup is recorded in
``token_lookups`` (asking device and K-code, token, when, what the answer revealed).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.row import Row

from server_stub import limits
from server_stub.auth import Device
from server_stub.config import ServerConfig
from server_stub.db import kiosks, records, token_lookups, tokens, write
from server_stub.errors import Unprocessable
from server_stub.reconcile import day_of
from sync.wire.protocol import TokenStatus
from sync.wire.tokens import is_provisional, is_well_formed

LOOKUP_WINDOW_S = 60


def lookup(
    engine: Engine,
    counter: limits.WindowCounter,
    device: Device,
    token: str,
    config: ServerConfig,
    now: float,
) -> TokenStatus:
    """Check the shape, count the lookup, answer and record it."""
    if not is_well_formed(token):
        raise Unprocessable(
            "that is not a token number (11 digits with a correct check digit, or P<K-code>-<number>)",
            code="bad_token",
        )
    limits.check(
        counter,
        limits.lookups_key(device.device_id),
        config.token_lookups_per_min,
        LOOKUP_WINDOW_S,
        now,
        "too many token lookups from this kiosk; try again in a minute",
    )
    with write(engine) as conn:
        status = token_status(conn, token, device.lsp_id, config.timezone)
        conn.execute(
            token_lookups.insert().values(
                device_id=device.device_id,
                kiosk_code=device.kiosk_code,
                token=token,
                asked_at=int(now * 1000),
                revealed=status.detail,
            )
        )
    return status


def _record_of(conn: Connection, token: str) -> Row[Any] | None:
    where = conn.execute(sa.select(tokens.c.device_id, tokens.c.seq).where(tokens.c.token == token)).first()
    if where is None:
        return None
    return conn.execute(
        sa.select(records, kiosks.c.lsp_id)
        .join(kiosks, kiosks.c.kiosk_code == records.c.kiosk_code)
        .where(records.c.device_id == where.device_id, records.c.seq == where.seq)
    ).first()


def token_status(conn: Connection, token: str, asker_lsp: str, tz: str) -> TokenStatus:
    """What a device of ``asker_lsp`` may learn of ``token``."""
    rec = _record_of(conn, token)
    if rec is None:
        return TokenStatus(token=token, status="unknown")
    voided = conn.execute(
        sa.select(records.c.id).where(
            records.c.device_id == rec.device_id, records.c.kind == "void", records.c.voids_seq == rec.seq
        )
    ).first()
    provisional = rec.token if rec.token and is_provisional(rec.token) else None
    summary = TokenStatus(
        token=token,
        status="voided" if voided else "synced",
        detail="summary",
        kiosk_code=rec.kiosk_code,
        service=rec.service,
        kind=rec.kind,
        date=day_of(rec.created_at, tz),
        final_token=rec.final_token if provisional else None,
        provisional_token=provisional if token != provisional else None,
    )
    if rec.lsp_id != asker_lsp:
        return summary
    fields = json.loads(rec.body).get("fields")
    return summary.model_copy(
        update={
            "detail": "full",
            "created_at": rec.created_at,
            "amount_paise": rec.amount_paise,
            "fields": fields or None,
        }
    )
