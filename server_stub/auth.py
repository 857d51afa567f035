"""Who is calling: devices (Ed25519-signed requests), LSPs (API key), and the per-device rate limit."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from server_stub.admin import sha256_hex
from server_stub.db import devices, kiosks, lsps, nonces
from server_stub.errors import Forbidden, RateLimited, Unauthorized
from sync.wire.canonical import load_public_key_b64
from sync.wire.signing import SignatureError, parse_signed_headers, verify_request

_NONCE_SWEEP_EVERY = 256


@dataclass(frozen=True)
class Device:
    device_id: str
    kiosk_code: str
    lsp_id: str
    flagged: bool


class RateLimiter:
    """A token bucket per key, in this worker's memory (N workers allow N times the rate)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                retry = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise RateLimited(f"too many requests from this device; retry in {retry} s", retry)
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:  # forget idle devices
                self._buckets.clear()


class DeviceAuthenticator:
    def __init__(self, engine: Engine, max_skew_s: int, limiter: RateLimiter) -> None:
        self.engine = engine
        self.max_skew_s = max_skew_s
        self.limiter = limiter
        self._count = 0

    def authenticate(
        self, headers: Mapping[str, str], method: str, path: str, digest_hex: str, now: float
    ) -> Device:
        """Verify a signed request; record its nonce. Raises Unauthorized or RateLimited."""
        try:
            signed = parse_signed_headers(headers)
        except SignatureError as exc:
            raise Unauthorized(exc.message, code=exc.code) from None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    devices.c.device_id,
                    devices.c.kiosk_code,
                    devices.c.public_key,
                    devices.c.revoked_at,
                    devices.c.flagged_at,
                    kiosks.c.lsp_id,
                )
                .join(kiosks, kiosks.c.kiosk_code == devices.c.kiosk_code)
                .where(devices.c.device_id == signed.device_id)
            ).first()
        if row is None:
            raise Unauthorized("this device is not enrolled", code="unknown_device")
        if row.revoked_at is not None:
            raise Unauthorized("this device has been revoked; contact your LSP", code="device_revoked")
        try:
            verify_request(
                load_public_key_b64(row.public_key), signed, method, path, digest_hex, now, self.max_skew_s
            )
        except SignatureError as exc:
            raise Unauthorized(exc.message, code=exc.code) from None
        self.limiter.take(signed.device_id, now)
        self._remember_nonce(signed.device_id, signed.nonce, now)
        return Device(row.device_id, row.kiosk_code, row.lsp_id, row.flagged_at is not None)

    def _remember_nonce(self, device_id: str, nonce: str, now: float) -> None:
        expires = int(now) + 2 * self.max_skew_s + 1
        try:
            with self.engine.begin() as conn:
                conn.execute(nonces.insert().values(device_id=device_id, nonce=nonce, expires_at=expires))
        except IntegrityError:
            raise Unauthorized(
                "this request was already received (replayed nonce)", code="replayed_nonce"
            ) from None
        self._count += 1
        if self._count % _NONCE_SWEEP_EVERY == 0:
            with self.engine.begin() as conn:
                conn.execute(nonces.delete().where(nonces.c.expires_at < int(now)))


def authenticate_lsp(conn: Connection, authorization: str | None) -> str:
    """The LSP id for ``Authorization: Bearer <api key>``."""
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 200:
        raise Unauthorized("send the LSP API key as `Authorization: Bearer <key>`", code="missing_api_key")
    key = authorization[len("Bearer ") :].strip()
    lsp_id = conn.execute(sa.select(lsps.c.lsp_id).where(lsps.c.api_key_hash == sha256_hex(key))).scalar()
    if lsp_id is None:
        raise Unauthorized("the API key is not valid", code="bad_api_key")
    return str(lsp_id)


def check_kiosk_of_lsp(conn: Connection, lsp_id: str, kiosk_code: str) -> None:
    owner = conn.execute(sa.select(kiosks.c.lsp_id).where(kiosks.c.kiosk_code == kiosk_code)).scalar()
    if owner != lsp_id:
        # Same answer for "not yours" and "does not exist": an LSP learns nothing about others.
        raise Forbidden("this kiosk does not belong to your LSP", code="forbidden")
