"""Monthly commission statements per LSP: earned, held (per kiosk, the SLA rule it broke and the
evidence) and payable, signed by the server's Ed25519 key, stored once issued.

The file an LSP downloads is ``{"statement": {...}, "signature": {...}}``. The signature is
Ed25519 over the canonical JSON of ``statement`` (:func:`sync.wire.canonical.canonical_json`:
sorted keys, no whitespace, integers and strings only); ``statement.kind`` names the format, so
these bytes can never be mistaken for a signed lease. A kiosk that broke an SLA rule has its
month's commission held (all of it; a month that earned nothing or less holds nothing);
payable = earned - held.

Issued statements are immutable: :func:`issue` writes one per LSP and month, once, after the
month is over; asking again returns the stored bytes. :func:`verify` checks a file against a
public key the verifier trusts (never the key the file names), so an LSP can show what it was
told and DOIT&C cannot quietly change it later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection, Engine

from server_stub.config import ServerConfig
from server_stub.db import lsps, read, statements, write
from server_stub.errors import NotFound, Unprocessable
from server_stub.keys import ServerKeys
from server_stub.monthly import KioskMonth, Month, month_report, parse_month
from server_stub.sla import Breach, SlaTerms, evaluate
from sync.wire.canonical import CanonicalError, canonical_json
from sync.wire.fingerprint import key_fingerprint

KIND = "kiosk-commission-statement-v1"
ALG = "Ed25519"


class BadStatement(Unprocessable):
    """Not a statement file, or one whose signature does not hold."""

    code = "bad_statement"


@dataclass(frozen=True)
class Issued:
    lsp_id: str
    month: str
    issued_at: int
    document: bytes  # the signed file, as stored and downloaded
    created: bool  # False: it had been issued before


def _kiosk_doc(row: KioskMonth, breaches: list[Breach]) -> dict[str, Any]:
    earned = row.commission_paise
    held = max(earned, 0) if breaches else 0
    return {
        "kiosk_code": row.kiosk_code,
        "name": row.name,
        "count": row.count,
        "gross_paise": row.gross_paise,
        "fee_paise": row.fee_paise,
        "voids": row.voids,
        "late_syncs": row.late_syncs,
        "forks": row.forks,
        "heartbeat_days": row.heartbeat_days,
        "enrolled_days": row.enrolled_days,
        "earned_paise": earned,
        "held_paise": held,
        "payable_paise": earned - held,
        "breaches": [b.as_doc() for b in breaches],
    }


def build_statement(
    conn: Connection, lsp_id: str, month: str | Month, config: ServerConfig, now_ms: int
) -> dict[str, Any]:
    """The statement (unsigned) of a month that is over (``month_not_over`` otherwise)."""
    m = parse_month(month) if isinstance(month, str) else month
    name = conn.execute(sa.select(lsps.c.name).where(lsps.c.lsp_id == lsp_id)).scalar()
    if name is None:
        raise NotFound("no such LSP", code="unknown_lsp")
    tz = config.timezone
    report = month_report(conn, lsp_id, m, tz=tz, sla_hours=config.sla_hours, now_ms=now_ms)
    if not report.complete:
        raise Unprocessable(
            f"{m.text} is not over yet; a statement is issued after the month ends", code="month_not_over"
        )
    terms = SlaTerms.of(config)
    breaches = evaluate(conn, report.kiosks, m, terms, tz, now_ms)
    kiosks = [_kiosk_doc(row, breaches[row.kiosk_code]) for row in report.kiosks]
    totals = {f: sum(k[f] for k in kiosks) for f in ("earned_paise", "held_paise", "payable_paise")}
    return {
        "kind": KIND,
        "lsp_id": lsp_id,
        "lsp_name": name,
        "month": m.text,
        "timezone": tz,
        "issued_at": now_ms,
        "sla": terms.as_doc(),
        "kiosks": kiosks,
        "totals": totals,
    }


def sign_statement(statement: dict[str, Any], keys: ServerKeys) -> bytes:
    """The signed file: canonical JSON of {statement, signature}, one line."""
    sig = keys.sign.sign(canonical_json(statement))
    raw_public = base64.b64decode(keys.sign_public_b64)
    signature = {
        "alg": ALG,
        "public_key": keys.sign_public_b64,
        "key_fingerprint": key_fingerprint(raw_public),
        "sig": base64.b64encode(sig).decode("ascii"),
    }
    return canonical_json({"statement": statement, "signature": signature}) + b"\n"


def _stored(conn: Connection, lsp_id: str, month: str) -> Issued | None:
    row = conn.execute(
        sa.select(statements.c.issued_at, statements.c.document).where(
            statements.c.lsp_id == lsp_id, statements.c.month == month
        )
    ).first()
    return None if row is None else Issued(lsp_id, month, row.issued_at, bytes(row.document), False)


def issue(
    engine: Engine, lsp_id: str, month: str, config: ServerConfig, keys: ServerKeys, now_ms: int
) -> Issued:
    """Issue the LSP's statement for ``month`` once; later calls return the stored one unchanged."""
    m = parse_month(month)
    with read(engine) as conn:
        found = _stored(conn, lsp_id, m.text)
        if found is not None:
            return found
        document = sign_statement(build_statement(conn, lsp_id, m, config, now_ms), keys)
    with write(engine) as conn:  # signed outside the write transaction; re-checked inside it
        found = _stored(conn, lsp_id, m.text)
        if found is not None:
            return found
        conn.execute(
            statements.insert().values(
                lsp_id=lsp_id,
                month=m.text,
                issued_at=now_ms,
                sha256=hashlib.sha256(document).hexdigest(),
                document=document,
            )
        )
    return Issued(lsp_id, m.text, now_ms, document, True)


def stored(conn: Connection, lsp_id: str, month: str) -> Issued:
    """The issued statement (NotFound ``no_statement`` if none was issued)."""
    found = _stored(conn, lsp_id, parse_month(month).text)
    if found is None:
        raise NotFound(f"no statement issued for {month}", code="no_statement")
    return found


def issued_months(conn: Connection, lsp_id: str) -> list[tuple[str, int]]:
    """(month, issued_at) of the LSP's statements, newest month first."""
    q = sa.select(statements.c.month, statements.c.issued_at).where(statements.c.lsp_id == lsp_id)
    return [(r.month, r.issued_at) for r in conn.execute(q.order_by(statements.c.month.desc()))]


def load_public_key(text: str) -> Ed25519PublicKey:
    """The server's signing public key: PEM (``-----BEGIN PUBLIC KEY-----``) or raw base64."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not Ed25519")
            return key
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise BadStatement(
            "the public key is not an Ed25519 key (PEM or base64)", code="bad_public_key"
        ) from None


def _parts(data: bytes) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """(statement, its signature bytes, the signature block)."""
    try:
        doc = json.loads(data)
        statement, block = doc["statement"], doc["signature"]
        sig = base64.b64decode(block["sig"], validate=True)
        if set(doc) != {"statement", "signature"} or not isinstance(block, dict):
            raise ValueError("other keys")
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadStatement("not a statement file (JSON with statement and signature)") from None
    if not isinstance(statement, dict) or statement.get("kind") != KIND:
        raise BadStatement("not a commission statement of this server's format")
    return statement, sig, block


def verify(data: bytes, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The statement of a signed file whose signature holds under ``public_key`` (BadStatement
    ``forged`` when it does not: changed after signing, or signed by another key). The unsigned
    fields of the signature block must name that key too, so no byte of meaning can change."""
    statement, sig, block = _parts(data)
    ours = _b64_public(public_key)
    try:
        public_key.verify(sig, canonical_json(statement))
    except (InvalidSignature, CanonicalError):
        raise BadStatement(_forged_detail(ours, block), code="forged") from None
    expected = {"alg": ALG, "public_key": ours, "key_fingerprint": key_fingerprint(base64.b64decode(ours))}
    if {k: block.get(k) for k in expected} != expected or set(block) != {*expected, "sig"}:
        raise BadStatement(
            "the signature block was changed: it does not name this server's key", code="forged"
        )
    return statement


def _b64_public(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def _forged_detail(ours: str, block: dict[str, Any]) -> str:
    named = block.get("public_key")
    if isinstance(named, str) and named and named != ours:
        return "the signature is not by this server's key: the file names another key"
    return "the signature does not match: the statement was changed after it was signed"
