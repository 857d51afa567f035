"""``POST /v1/leases`` on PostgreSQL in the event loop: one verify, one statement, no framework.

Why: a lease grant through FastAPI cost ~2.5 ms of the worker's CPU, about 4x a do-nothing
request; a py-spy profile of a lease storm put ~22% of it in the hop to the thread pool, ~17% in
FastAPI's routing and dependencies, ~13% in SQLAlchemy around psycopg, and much of the rest in
four round trips (BEGIN, two statements, COMMIT). This ASGI middleware (inside metrics, admission
and compression, which treat its answers like any other; in front of the body guard) answers the
usual request itself, from the event loop, on an autocommit ``psycopg`` ``AsyncConnection``:

1. the signing headers parsed and the rate limits taken (:meth:`DeviceAuthenticator.admit`, as
   on the full path; a limiter in Redis is asked from a thread: no network call in the loop);
2. the signature and time window checked against the device's public key, cached per device id
   (a device id's key never changes: enrollment refuses an id in use); the first request of a
   device reads its key, and a device that is unknown or revoked then is refused. A bad signature
   writes nothing;
3. the blocks' serials taken (this worker's range of the ``serial_ranges`` sequence) and signed;
4. **one statement** (:data:`server_stub.FAST_GRANT_PG`, in REPEATABLE READ): the device row's
   ``serials_leased`` bumped only if the device is not revoked, the grant leaves it at most
   ``lease_cap_min`` unused serials and no block was granted to the request's ``request_id``
   before; the nonce and the leases inserted only with that update. A replayed nonce fails the
   statement with its unique violation (401 ``replayed_nonce``, nothing written); a revoked
   device writes nothing and is refused (401 ``device_revoked``).

Everything else goes to the full path (the FastAPI route, with the body replayed), so it answers
exactly as before: a body that is not small plain JSON, one the schema refuses, a device near its
cap (the rate window is counted there), a ``request_id`` granted before (its blocks are read
there), and a statement that met a concurrent change of the device row (REPEATABLE READ fails it
with a serialization error and it wrote nothing; in READ COMMITTED the request-id check would have
read the rows as they were before a concurrent grant of the same id committed).

SQLite keeps the full path (no middleware is installed).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import anyio.to_thread
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg import errors as pg_errors
from sqlalchemy.engine import Engine
from starlette.datastructures import Headers

from server_stub.admission import LIGHT_BODY_BYTES
from server_stub.auth import (
    ADMITTED_KEY,
    NONCE_SWEEP_EVERY,
    SignedCall,
    device_revoked,
    replayed_nonce,
    unknown_device,
)
from server_stub.bodies import ASGIApp, Receive, Scope, Send
from server_stub.errors import ServerError, Unavailable
from server_stub.leases import (
    DEVICE_KEY_PG,
    FAST_GRANT_PG,
    NEXT_RANGE_PG,
    SERIAL_LIMIT,
    SERIAL_RANGE,
    SWEEP_NONCES_PG,
)
from server_stub.metrics import Metrics
from server_stub.rawpath import Answer, error_answer, post_to, read_body, replay, send_json
from server_stub.routes.deps import AppState
from server_stub.shared import MemoryLimiter
from sync.wire.canonical import load_public_key_b64
from sync.wire.protocol import Lease, LeaseRequest, LeaseResponse
from sync.wire.signing import SignedHeaders, sign_lease

log = logging.getLogger(__name__)

PATH = "/v1/leases"
_KEYS_KEPT = 100_000  # public keys cached per worker (a state's fleet), then the cache starts again


class _FullPath(Exception):
    """This request is answered by the full path (nothing was written)."""


class AsyncPool:
    """Autocommit connections of ``engine``'s database, opened on demand and kept for reuse. Each
    runs its statements in REPEATABLE READ (see the module docstring). Admission bounds how many
    requests run at once, and so how many connections are ever open."""

    def __init__(self, engine: Engine) -> None:
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        options = str(kwargs.get("options", ""))
        # libpq's options: the session's default isolation, so no BEGIN is needed per statement
        kwargs["options"] = (options + r" -c default_transaction_isolation=repeatable\ read").strip()
        self._args, self._kwargs = args, kwargs
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def get(self) -> psycopg.AsyncConnection[Any]:
        if self._idle:
            return self._idle.pop()
        return await psycopg.AsyncConnection.connect(*self._args, **self._kwargs, autocommit=True)

    def put(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if conn.closed or conn.broken:
            return
        self._idle.append(conn)

    async def close(self) -> None:
        """The idle connections closed (at shutdown, when no request runs)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await conn.close()


class _Ranges:
    """This worker's current range of the sequence, [next, end). One event loop, and no ``await``
    between a range being set and serials taken from it: no lock (two requests that both found it
    short each take from the range they fetched; the first one's rest is skipped)."""

    def __init__(self) -> None:
        self.next = self.end = 0

    async def take(self, conn: psycopg.AsyncConnection[Any], n: int) -> int:
        if self.end - self.next < n:
            row = await (await conn.execute(NEXT_RANGE_PG, prepare=True)).fetchone()
            assert row is not None
            self.next, self.end = int(row[0]), int(row[0]) + SERIAL_RANGE
        first = self.next
        self.next += n
        if first + n > SERIAL_LIMIT:
            raise Unavailable("the token serial space is exhausted")
        return first


class LeaseFastPath:
    """ASGI middleware in front of the full stack (see the module docstring)."""

    def __init__(self, app: ASGIApp, state: AppState, metrics: Metrics, pool: AsyncPool) -> None:
        self.app, self.state, self.metrics, self.pool = app, state, metrics, pool
        self.ranges = _Ranges()
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._granted = 0
        auth = state.auth
        self._limits_in_memory = isinstance(auth.limiter, MemoryLimiter) and isinstance(
            auth.global_limiter, MemoryLimiter
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _small_plain_json_post(scope):
            await self.app(scope, receive, send)
            return
        messages, body = await read_body(receive, LIGHT_BODY_BYTES)
        if body is not None:
            try:
                answer = await self._answer(scope, body)
            except _FullPath:
                pass
            else:
                await send_json(scope, send, PATH, answer)
                return
        await self.app(scope, replay(messages, receive), send)

    async def _answer(self, scope: Scope, body: bytes) -> Answer:
        """The answer (status, JSON, headers); raises _FullPath for the full path."""
        req = _lease_request(body)
        call = SignedCall(Headers(scope=scope), "POST", PATH, hashlib.sha256(body).hexdigest())
        try:
            signed = await self._admit(call)
        except ServerError as exc:
            return error_answer(exc)
        scope[ADMITTED_KEY] = signed  # should the full path answer it: its limits are taken
        try:
            granted = await self._grant(call, signed, req)
        except ServerError as exc:
            return error_answer(exc)
        answer = LeaseResponse(block_size=self.state.config.block_size, leases=granted)
        self.metrics.leases(len(granted), sum(g.end_serial - g.start_serial for g in granted))
        return 200, answer.model_dump_json().encode(), {}

    async def _admit(self, call: SignedCall) -> SignedHeaders:
        auth, now = self.state.auth, self.state.clock()
        if self._limits_in_memory:
            return auth.admit(call, now)
        return await anyio.to_thread.run_sync(auth.admit, call, now)

    async def _grant(self, call: SignedCall, signed: SignedHeaders, req: LeaseRequest) -> list[Lease]:
        try:
            conn = await self.pool.get()
        except psycopg.OperationalError as exc:
            log.warning("lease fast path: no database connection (%s)", type(exc).__name__)
            raise Unavailable("the database is unavailable; try again") from None
        try:
            key = self._keys.get(signed.device_id) or await self._read_key(conn, signed.device_id)
            self.state.auth.check_signature(key, call, self.state.clock(), signed)
            return await self._write(conn, signed, req)
        except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
            raise _FullPath from None  # a concurrent change of the device row: nothing written
        except pg_errors.UniqueViolation as exc:
            if exc.diag.table_name != "nonces":
                raise Unavailable("the database refused the request; try again") from None
            raise replayed_nonce() from None
        except psycopg.Error as exc:
            log.warning("lease fast path: database error %s", type(exc).__name__)
            if conn.broken:  # the connection is gone, and whether the statement ran is unknown
                raise Unavailable("the database is unavailable; try again") from None
            raise Unavailable("the database refused the request; try again") from None
        finally:
            self.pool.put(conn)

    async def _read_key(self, conn: psycopg.AsyncConnection[Any], device_id: str) -> Ed25519PublicKey:
        cur = await conn.execute(DEVICE_KEY_PG, {"device_id": device_id}, prepare=True)
        row = await cur.fetchone()
        if row is None:
            raise unknown_device()
        if row[1] is not None:
            raise device_revoked()
        if len(self._keys) >= _KEYS_KEPT:
            self._keys.clear()
        key = self._keys[device_id] = load_public_key_b64(row[0])
        return key

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], signed: SignedHeaders, req: LeaseRequest
    ) -> list[Lease]:
        """The grant's one statement; raises _FullPath when it granted nothing for a reason the
        full path answers (near the cap, a request id granted before)."""
        cfg, device_id = self.state.config, signed.device_id
        count = min(req.count, cfg.max_blocks_per_request)
        first = await self.ranges.take(conn, count * cfg.block_size)
        starts = [first + i * cfg.block_size for i in range(count)]
        sigs = [sign_lease(self.state.keys.sign, device_id, s, s, s + cfg.block_size) for s in starts]
        now = self.state.clock()
        params = {
            "of_device": device_id,
            "n": count * cfg.block_size,
            "cap_min": cfg.lease_cap_min,
            "request_id": req.request_id,
            "nonce": signed.nonce,
            "expires_at": self.state.auth.nonce_expires(now),
            "starts": starts,
            "sigs": sigs,
            "block_size": cfg.block_size,
            "issued_at": int(now * 1000),
        }
        row = await (await conn.execute(FAST_GRANT_PG, params, prepare=True)).fetchone()
        if row is None:
            raise unknown_device()
        granted, revoked_at = row
        if revoked_at is not None:
            raise device_revoked()
        if not granted:
            raise _FullPath
        self._granted += 1
        if self._granted % NONCE_SWEEP_EVERY == 0:
            await _sweep_nonces(conn, int(now))
        return [
            Lease(lease_id=s, start_serial=s, end_serial=s + cfg.block_size, sig=g)
            for s, g in zip(starts, sigs, strict=True)
        ]


async def _sweep_nonces(conn: psycopg.AsyncConnection[Any], now: int) -> None:
    """The expired nonces deleted (as DeviceAuthenticator does every so many of its own). After a
    grant has been written: a failure here is logged, never the grant's answer."""
    try:
        await conn.execute(SWEEP_NONCES_PG, {"now": now}, prepare=True)
    except psycopg.Error as exc:
        log.warning("lease fast path: nonce sweep failed (%s)", type(exc).__name__)


def _small_plain_json_post(scope: Scope) -> bool:
    """``POST /v1/leases`` with no query, declaring a small uncompressed JSON body."""
    if not post_to(scope, PATH):
        return False
    length = ctype = b""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            length = value
        elif name == b"content-type":
            ctype = value
        elif name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            return False
    if ctype.split(b";")[0].strip().lower() != b"application/json":
        return False
    return length.isdigit() and 0 < int(length) <= LIGHT_BODY_BYTES


def _lease_request(body: bytes) -> LeaseRequest:
    """The body as FastAPI reads it (JSON, then the model); _FullPath when either refuses it, so
    the full path answers with its 422."""
    try:
        return LeaseRequest.model_validate(json.loads(body))
    except ValueError:  # JSONDecodeError and pydantic's ValidationError are ValueErrors
        raise _FullPath from None
