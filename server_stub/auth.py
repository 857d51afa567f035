"""Who is calling: devices (Ed25519-signed requests), LSPs (API key), and the per-device rate limit."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from server_stub.admin import sha256_hex
from server_stub.db import devices, is_postgres, kiosks, lsps, nonces
from server_stub.errors import Forbidden, Unauthorized
from server_stub.hotpath import Hot
from server_stub.shared import GLOBAL_KEY, Limiter, MemoryLimiter
from sync.wire.canonical import load_public_key_b64
from sync.wire.signing import SignatureError, SignedHeaders, parse_signed_headers, verify_request

NONCE_SWEEP_EVERY = 256  # nonces written between two sweeps of the expired ones


@dataclass(frozen=True)
class Device:
    """The device a signed request came from, as read once when it was authenticated.

    For a batch the row is read inside the batch's transaction, locked, so ``head_seq`` and
    ``head_hash`` are what ingest builds on; ``revoked_at`` is always None for a device that
    passed authentication.
    """

    device_id: str
    kiosk_code: str
    lsp_id: str
    public_key: Ed25519PublicKey
    head_seq: int
    head_hash: str
    flagged_at: int | None
    revoked_at: int | None = None
    enrolled_at: int = 0
    serials_leased: int = 0  # leased to it in all
    tokens_used: int = 0  # leased tokens on the sales the server holds

    @property
    def flagged(self) -> bool:
        return self.flagged_at is not None


@dataclass(frozen=True)
class SignedCall:
    """What the signature covers: the headers, the request line and the SHA-256 of the body as sent."""

    headers: Mapping[str, str]
    method: str
    path: str
    digest_hex: str
    # Set when the lease fast path (server_stub/fastlease.py) admitted the request before handing
    # it to the full path: its rate limits are taken once, not twice.
    admitted: SignedHeaders | None = None


ADMITTED_KEY = "kiosk.admitted"  # scope key: the SignedHeaders of a request admitted already


def unknown_device() -> Unauthorized:
    return Unauthorized("this device is not enrolled", code="unknown_device")


def device_revoked() -> Unauthorized:
    return Unauthorized("this device has been revoked; contact your LSP", code="device_revoked")


def replayed_nonce() -> Unauthorized:
    return Unauthorized("this request was already received (replayed nonce)", code="replayed_nonce")


# Built once: every signed request runs these, and building a statement costs more CPU than
# running it (SQLAlchemy caches the compiled form, not the construction).
# Public: a caller may extend it (ingest's snapshot joins the hashes a batch's seqs hold) and hand
# its row to :meth:`DeviceAuthenticator.verify_row`.
READ_DEVICE = (
    sa.select(devices, kiosks.c.lsp_id)
    .join(kiosks, kiosks.c.kiosk_code == devices.c.kiosk_code)
    .where(devices.c.device_id == sa.bindparam("device_id", type_=sa.String))
)
_READ_DEVICE_LOCKED = READ_DEVICE.with_for_update(of=devices)
_NONCE_ROW = nonces.insert().values(
    device_id=sa.bindparam("device_id", type_=sa.String),
    nonce=sa.bindparam("nonce", type_=sa.String),
    expires_at=sa.bindparam("expires_at", type_=sa.BigInteger),
)
_INSERT_NONCE = Hot(_NONCE_ROW)
_NEW_NONCE = _NONCE_ROW.cte("new_nonce")
# PostgreSQL: the nonce written and the device row read locked in one round trip (a
# data-modifying CTE; a replayed nonce fails the statement with its unique violation).
_NONCE_AND_DEVICE_LOCKED = _READ_DEVICE_LOCKED.add_cte(_NEW_NONCE)
_RELOCK = sa.select(
    devices.c.head_seq, devices.c.head_hash, devices.c.flagged_at, devices.c.revoked_at
).where(devices.c.device_id == sa.bindparam("device_id", type_=sa.String))
_RELOCK_PG = _RELOCK.with_for_update()
# PostgreSQL, a batch's write transaction: the nonce written and the row relocked in one round trip.
_NONCE_AND_RELOCK_PG = Hot(_RELOCK_PG.add_cte(_NEW_NONCE))


@functools.lru_cache(maxsize=4096)
def _public_key(text: str) -> Ed25519PublicKey:
    """The key of a ``public_key`` column (parsed once per key: the same kiosks call again and again)."""
    return load_public_key_b64(text)


def read_device(conn: Connection, device_id: str, *, lock: bool = False) -> Device | None:
    """The device row with its kiosk's LSP; ``lock`` holds the row (``FOR UPDATE`` on PostgreSQL,
    the write lock the transaction already took on SQLite) until the transaction ends."""
    query = _READ_DEVICE_LOCKED if lock and is_postgres(conn) else READ_DEVICE
    return _device(conn.execute(query, {"device_id": device_id}).first())


def _device(row: Any) -> Device | None:
    if row is None:
        return None
    return Device(
        device_id=row.device_id,
        kiosk_code=row.kiosk_code,
        lsp_id=row.lsp_id,
        public_key=_public_key(row.public_key),
        head_seq=row.head_seq,
        head_hash=row.head_hash,
        flagged_at=row.flagged_at,
        revoked_at=row.revoked_at,
        enrolled_at=row.enrolled_at,
        serials_leased=row.serials_leased,
        tokens_used=row.tokens_used,
    )


def current_device(conn: Connection, device_id: str, *, lock: bool = False) -> Device:
    """The enrolled, unrevoked device ``device_id`` (:func:`read_device`); Unauthorized otherwise."""
    return _enrolled(read_device(conn, device_id, lock=lock))


def _enrolled(device: Device | None) -> Device:
    if device is None:
        raise unknown_device()
    if device.revoked_at is not None:
        raise device_revoked()
    return device


def relock_device(conn: Connection, device: Device) -> Device:
    """``device`` with its changing fields (head, flag, revocation) read again in ``conn``'s write
    transaction and the row locked (``FOR UPDATE`` on PostgreSQL); Unauthorized when revoked since."""
    query = _RELOCK_PG if is_postgres(conn) else _RELOCK
    return _relocked(device, conn.execute(query, {"device_id": device.device_id}).one())


def _relocked(device: Device, row: Any) -> Device:
    if row.revoked_at is not None:
        raise device_revoked()
    return dataclasses.replace(
        device, head_seq=row.head_seq, head_hash=row.head_hash, flagged_at=row.flagged_at
    )


class DeviceAuthenticator:
    """Signed requests: the rate limits first (on the device id the request claims, before any
    lookup or signature check: a flood costs a bucket look-up, not a verify), then the device
    row, the signature and the time window, then the nonce."""

    def __init__(self, max_skew_s: int, limiter: Limiter, global_limiter: Limiter | None = None) -> None:
        self.max_skew_s = max_skew_s
        self.limiter = limiter
        self.global_limiter = global_limiter or MemoryLimiter(0, 1)
        self._count = 0

    def admit(self, call: SignedCall, now: float) -> SignedHeaders:
        """The signing headers parsed and the rate limits taken, before any transaction opens
        (the limits may live in Redis: no network call inside a transaction)."""
        if call.admitted is not None:
            return call.admitted
        try:
            signed = parse_signed_headers(call.headers)
        except SignatureError as exc:
            raise Unauthorized(exc.message, code=exc.code) from None
        self.global_limiter.take(GLOBAL_KEY, now)
        self.limiter.take(signed.device_id, now)
        return signed

    def authenticate(
        self, conn: Connection, call: SignedCall, now: float, signed: SignedHeaders, *, lock: bool = False
    ) -> Device:
        """Verify an admitted request (:meth:`admit`) and record its nonce, in ``conn``'s
        transaction (the caller commits). Reads the device row once (``lock``: see
        :func:`read_device`). Raises Unauthorized.

        On PostgreSQL with ``lock`` the nonce is written and the row read in one statement, before
        the signature is checked: a replayed nonce is then named before a bad signature (401
        either way, and nothing is kept: the caller's transaction rolls back on the error)."""
        if not (lock and is_postgres(conn)):
            device = self.verify(conn, call, now, signed, lock=lock)
            self.remember_nonce(conn, signed, now)
            return device
        params = {"device_id": signed.device_id, "nonce": signed.nonce, "expires_at": self.nonce_expires(now)}
        with _replay_refused():
            device = _enrolled(_device(conn.execute(_NONCE_AND_DEVICE_LOCKED, params).first()))
        self._check_signature(device, call, now, signed)
        self._sweep_now_and_then(conn, now)
        return device

    def verify(
        self, conn: Connection, call: SignedCall, now: float, signed: SignedHeaders, *, lock: bool = False
    ) -> Device:
        """The device and its request signature and time window (nothing written)."""
        device = current_device(conn, signed.device_id, lock=lock)
        self._check_signature(device, call, now, signed)
        return device

    def verify_row(self, row: Any, call: SignedCall, now: float, signed: SignedHeaders) -> Device:
        """:meth:`verify` for a device row the caller read (with :data:`READ_DEVICE`'s columns)."""
        device = _enrolled(_device(row))
        self._check_signature(device, call, now, signed)
        return device

    def _check_signature(self, device: Device, call: SignedCall, now: float, signed: SignedHeaders) -> None:
        self.check_signature(device.public_key, call, now, signed)

    def check_signature(
        self, key: Ed25519PublicKey, call: SignedCall, now: float, signed: SignedHeaders
    ) -> None:
        """The request's signature by ``key`` and its time window; Unauthorized when either fails."""
        try:
            verify_request(key, signed, call.method, call.path, call.digest_hex, now, self.max_skew_s)
        except SignatureError as exc:
            raise Unauthorized(exc.message, code=exc.code) from None

    def relock_and_remember(
        self, conn: Connection, device: Device, signed: SignedHeaders, now: float
    ) -> Device:
        """:func:`relock_device` and :meth:`remember_nonce` in ``conn``'s write transaction: on
        PostgreSQL one statement (the nonce written by a data-modifying CTE; a replayed nonce
        fails it with its unique violation, a 401 either way, and the caller rolls back)."""
        if not is_postgres(conn):
            locked = relock_device(conn, device)
            self.remember_nonce(conn, signed, now)
            return locked
        params = {"device_id": device.device_id, "nonce": signed.nonce, "expires_at": self.nonce_expires(now)}
        with _replay_refused():
            row = _NONCE_AND_RELOCK_PG.one(conn, params)
        self._sweep_now_and_then(conn, now)
        return _relocked(device, row)

    def remember_nonce(self, conn: Connection, signed: SignedHeaders, now: float) -> None:
        """Record the request's nonce in ``conn``'s (write) transaction; Unauthorized when seen."""
        self._remember_nonce(conn, signed.device_id, signed.nonce, now)

    def _remember_nonce(self, conn: Connection, device_id: str, nonce: str, now: float) -> None:
        params = {"device_id": device_id, "nonce": nonce, "expires_at": self.nonce_expires(now)}
        with _replay_refused():
            _INSERT_NONCE.run(conn, params)
        self._sweep_now_and_then(conn, now)

    def nonce_expires(self, now: float) -> int:
        """When a nonce recorded at ``now`` may be forgotten (no request signed then is fresh)."""
        return int(now) + 2 * self.max_skew_s + 1

    def _sweep_now_and_then(self, conn: Connection, now: float) -> None:
        """Every :data:`NONCE_SWEEP_EVERY` nonces, the expired ones deleted."""
        self._count += 1
        if self._count % NONCE_SWEEP_EVERY == 0:
            conn.execute(nonces.delete().where(nonces.c.expires_at < int(now)))


@contextlib.contextmanager
def _replay_refused() -> Iterator[None]:
    """A nonce insert's unique violation as the 401 it means."""
    try:
        yield
    except IntegrityError:
        raise replayed_nonce() from None


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
