"""Enrollment: a one-time, expiring code binds a device key to a kiosk and hands out first leases."""

from __future__ import annotations

import base64

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from server_stub import catalog
from server_stub.admin import normalise_enrollment_code, sha256_hex
from server_stub.config import ServerConfig
from server_stub.db import devices, kiosks
from server_stub.errors import Conflict, Unauthorized, Unprocessable
from server_stub.keys import ServerKeys
from server_stub.leases import allocate, device_leases
from sync.wire.canonical import genesis_hash, load_public_key_b64
from sync.wire.protocol import EnrollRequest, EnrollResponse


def enroll(
    conn: Connection, req: EnrollRequest, keys: ServerKeys, config: ServerConfig, now_ms: int
) -> EnrollResponse:
    try:
        if len(base64.b64decode(req.device_public_key, validate=True)) != 32:
            raise ValueError
        load_public_key_b64(req.device_public_key)
    except ValueError:
        raise Unprocessable(
            "device_public_key must be a raw Ed25519 key (32 bytes, base64)", code="bad_public_key"
        ) from None
    code_hash = sha256_hex(normalise_enrollment_code(req.enrollment_code))
    kiosk = conn.execute(
        sa.select(kiosks).where(kiosks.c.enrollment_code_hash == code_hash).with_for_update()
    ).first()
    if kiosk is None:
        raise Unauthorized("the enrollment code is not valid", code="enrollment_code_invalid")
    device_id = req.device_id
    if kiosk.enrolled_at is not None:
        # Idempotent retry: same device, same key, same code -> the same answer.
        dev = conn.execute(
            sa.select(devices).where(
                devices.c.device_id == device_id, devices.c.kiosk_code == kiosk.kiosk_code
            )
        ).first()
        if dev is None or dev.public_key != req.device_public_key:
            raise Unauthorized("the enrollment code has already been used", code="enrollment_code_used")
        granted = device_leases(conn, device_id)
    else:
        if now_ms > (kiosk.enrollment_expires_at or 0):
            raise Unauthorized(
                "the enrollment code has expired; ask for a new one", code="enrollment_code_expired"
            )
        if conn.execute(sa.select(devices.c.device_id).where(devices.c.device_id == device_id)).first():
            raise Conflict("this device id is already enrolled", code="device_exists")
        conn.execute(kiosks.update().where(kiosks.c.id == kiosk.id).values(enrolled_at=now_ms))
        conn.execute(
            devices.insert().values(
                device_id=device_id,
                kiosk_code=kiosk.kiosk_code,
                public_key=req.device_public_key,
                enrolled_at=now_ms,
                head_seq=0,
                head_hash=genesis_hash(device_id),
            )
        )
        granted = allocate(conn, keys, device_id, config.initial_blocks, config.block_size, now_ms)
    return EnrollResponse(
        device_id=device_id,
        kiosk_code=kiosk.kiosk_code,
        lsp_id=kiosk.lsp_id,
        server_sign_public_key=keys.sign_public_b64,
        server_seal_public_key=keys.seal_public_b64,
        leases=granted,
        catalog_version=catalog.latest_version(conn),
        server_time_ms=now_ms,
    )
