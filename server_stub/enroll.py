"""Enrollment: a one-time, expiring code binds a device key to a kiosk and hands out first leases.

- A code enrolls one device. The same device (same id and key) asking again with the same code
  gets the same answer (a lost answer is retried), but only while the code is valid and the device
  not revoked: a used code never enrolls anything after it expires, or for a revoked device.
- Failed attempts (an unknown, used, expired or revoked code) are counted for all callers together
  (:mod:`server_stub.limits`); beyond ``enroll_failures_per_min`` in a minute every enrollment
  answers 429 until the minute is over, so codes can't be guessed at speed.
- The answer carries the server's public keys; the kiosk checks them against the fingerprint the
  LSP gave it with the code (:mod:`sync.wire.fingerprint`).
"""

from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.row import Row

from server_stub import catalog, limits
from server_stub.admin import normalise_enrollment_code, sha256_hex
from server_stub.auth import device_revoked
from server_stub.config import ServerConfig
from server_stub.db import devices, kiosks, write
from server_stub.errors import Conflict, Unauthorized, Unprocessable
from server_stub.keys import ServerKeys
from server_stub.leases import allocate, device_leases
from sync.wire.canonical import genesis_hash, load_public_key_b64
from sync.wire.protocol import EnrollRequest, EnrollResponse, Lease

FAILURE_WINDOW_S = 60


def attempt(
    engine: Engine,
    counter: limits.WindowCounter,
    req: EnrollRequest,
    keys: ServerKeys,
    config: ServerConfig,
    now: float,
) -> EnrollResponse:
    """One enrollment request: refused while failures are over the limit; a failure is counted
    after its transaction has rolled back (never a second connection inside it)."""
    limit = config.enroll_failures_per_min
    limits.refuse_if_over(
        counter,
        limits.ENROLL_FAILURES,
        limit,
        FAILURE_WINDOW_S,
        now,
        "too many failed enrollments; try later",
    )
    try:
        with write(engine) as conn:
            return enroll(conn, req, keys, config, int(now * 1000))
    except Unauthorized:
        counter.add(limits.ENROLL_FAILURES, FAILURE_WINDOW_S, now)
        raise


def _expired(kiosk: Row[Any], now_ms: int) -> bool:
    return now_ms > (kiosk.enrollment_expires_at or 0)


def _retry(conn: Connection, kiosk: Row[Any], req: EnrollRequest, now_ms: int) -> list[Lease]:
    """The same device asking again with its code: the same answer, while the code is good."""
    dev = conn.execute(
        sa.select(devices).where(
            devices.c.device_id == req.device_id, devices.c.kiosk_code == kiosk.kiosk_code
        )
    ).first()
    if dev is None or dev.public_key != req.device_public_key:
        raise Unauthorized("the enrollment code has already been used", code="enrollment_code_used")
    if _expired(kiosk, now_ms):
        raise Unauthorized(
            "the enrollment code has expired; ask for a new one", code="enrollment_code_expired"
        )
    if dev.revoked_at is not None:
        raise device_revoked()
    return device_leases(conn, req.device_id)


def _first(
    conn: Connection, kiosk: Row[Any], req: EnrollRequest, keys: ServerKeys, config: ServerConfig, now_ms: int
) -> list[Lease]:
    if _expired(kiosk, now_ms):
        raise Unauthorized(
            "the enrollment code has expired; ask for a new one", code="enrollment_code_expired"
        )
    if conn.execute(sa.select(devices.c.device_id).where(devices.c.device_id == req.device_id)).first():
        raise Conflict("this device id is already enrolled", code="device_exists")
    conn.execute(kiosks.update().where(kiosks.c.id == kiosk.id).values(enrolled_at=now_ms))
    conn.execute(
        devices.insert().values(
            device_id=req.device_id,
            kiosk_code=kiosk.kiosk_code,
            public_key=req.device_public_key,
            enrolled_at=now_ms,
            head_seq=0,
            head_hash=genesis_hash(req.device_id),
        )
    )
    return allocate(conn, keys, req.device_id, config.initial_blocks, config.block_size, now_ms)


def _check_public_key(text: str) -> None:
    try:
        if len(base64.b64decode(text, validate=True)) != 32:
            raise ValueError
        load_public_key_b64(text)
    except ValueError:
        raise Unprocessable(
            "device_public_key must be a raw Ed25519 key (32 bytes, base64)", code="bad_public_key"
        ) from None


def enroll(
    conn: Connection, req: EnrollRequest, keys: ServerKeys, config: ServerConfig, now_ms: int
) -> EnrollResponse:
    """Enroll (or answer again) in ``conn``'s write transaction."""
    _check_public_key(req.device_public_key)
    code_hash = sha256_hex(normalise_enrollment_code(req.enrollment_code))
    kiosk = conn.execute(
        sa.select(kiosks).where(kiosks.c.enrollment_code_hash == code_hash).with_for_update()
    ).first()
    if kiosk is None:
        raise Unauthorized("the enrollment code is not valid", code="enrollment_code_invalid")
    if kiosk.enrolled_at is not None:
        granted = _retry(conn, kiosk, req, now_ms)
    else:
        granted = _first(conn, kiosk, req, keys, config, now_ms)
    return EnrollResponse(
        device_id=req.device_id,
        kiosk_code=kiosk.kiosk_code,
        lsp_id=kiosk.lsp_id,
        server_sign_public_key=keys.sign_public_b64,
        server_seal_public_key=keys.seal_public_b64,
        leases=granted,
        catalog_version=catalog.latest_version(conn),
        server_time_ms=now_ms,
    )
