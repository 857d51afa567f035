"""The ledger: one writer connection over the encrypted SQLite file.

Every write is one short ``BEGIN IMMEDIATE`` transaction with no network or
device I/O inside. Records are never updated; sync and print state live in
their own tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, NotRequired, TypedDict, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import ids
from agent.clock import KioskClock
from agent.errors import InvalidInput, NotFound, NotInitialised
from agent.ledger import db, idempotency, identity, migrations, print_jobs, readmodel, tokens
from agent.ledger.db import Connection, connect
from agent.ledger.operators import Operators
from agent.ledger.print_jobs import PrintJobs
from agent.ledger.readmodel import LedgerStatus, OutboxCounts, TxnRow
from sync.wire import canonical
from sync.wire import tokens as wire_tokens

log = logging.getLogger(__name__)

#: Every key the meta table holds (a typo is a type error, not a silent None).
MetaKey = Literal[
    "device_id",
    "device_key",
    "created_at",
    "kiosk_code",
    "lsp_id",
    "server_url",
    "server_sign_pub",
    "server_seal_pub",
    "enrolled_at",
    "catalog_version",
    "catalog_json",
    "last_sync_at",
    "operator_current",
    "clock_offset_ms",
]


class Draft(TypedDict):
    """A validated transaction before the ledger seals it (seq, txn_id, token, hashes are added)."""

    kind: Literal["sale", "void"]
    operator: str
    service: str
    amount_paise: int
    fee_paise: int
    fields: dict[str, str]
    catalog_version: int
    mobile: NotRequired[str]
    aadhaar_last4: NotRequired[str]
    aadhaar_sealed: NotRequired[str]
    voids_seq: NotRequired[int]
    reason: NotRequired[str]


class Record(Draft):
    """A committed record: the signed fields plus its hash and signature."""

    seq: int
    txn_id: str
    created_at: int
    prev_hash: str
    hash: str
    sig: str
    token: NotRequired[str]


# Columns of `records` that form the signed record, in table order.
RECORD_COLUMNS = (
    "seq",
    "txn_id",
    "kind",
    "created_at",
    "operator",
    "service",
    "amount_paise",
    "fee_paise",
    "token",
    "fields",
    "mobile",
    "aadhaar_last4",
    "aadhaar_sealed",
    "voids_seq",
    "reason",
    "catalog_version",
    "prev_hash",
)
_INSERT = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}, hash, sig) "
    f"VALUES ({', '.join('?' for _ in RECORD_COLUMNS)}, ?, ?)"
)


def record_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The canonical record (what was hashed) rebuilt from a stored row."""
    rec: dict[str, Any] = {}
    for col in RECORD_COLUMNS:
        value = row[col]
        if value is None:
            continue
        rec[col] = json.loads(value) if col == "fields" else value
    return rec


class Ledger:
    """Open with :meth:`open` (existing) or :func:`agent.ledger.init_ledger`."""

    def __init__(self, conn: Connection, path: Path, now: Callable[[], int] = ids.now_ms) -> None:
        self.conn = conn
        self.path = path
        #: the wall clock corrected by the server's offset (agent.clock): every stamp comes from here
        self.clock = KioskClock(now, int(self._meta_raw("clock_offset_ms") or 0))
        self.now = self.clock.now_ms
        self.device_id = self.meta("device_id") or ""
        stored = self.meta("device_key")
        if not self.device_id or not stored:
            raise NotInitialised(f"{path}: ledger has no device identity; run kiosk-agent init")
        self._key = identity.load_private_key(stored)
        self.public_key = self._key.public_key()

    @classmethod
    def open(cls, path: Path, hex_key: str, now: Callable[[], int] = ids.now_ms) -> Ledger:
        conn = connect(path, hex_key)
        try:
            if migrations.schema_version(conn) < len(migrations.MIGRATIONS):
                migrations.migrate(conn)
            return cls(conn, path, now)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------
    def meta(self, key: MetaKey) -> str | None:
        return self._meta_raw(key)

    def _meta_raw(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, values: Mapping[MetaKey, str]) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

    def set_clock_offset(self, offset_s: float) -> bool:
        """Take the offset the sync client learned from the server; stored when it moved."""
        if not self.clock.learn(offset_s):
            return False
        self.set_meta({"clock_offset_ms": str(self.clock.offset_ms)})
        log.info("clock offset to the server is now %.0f s", self.clock.offset_s)
        return True

    @property
    def kiosk_code(self) -> str | None:
        return self.meta("kiosk_code")

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The device key, for the sync client's request signatures (never printed or logged)."""
        return self._key

    def sign(self, data: bytes) -> bytes:
        """Sign bytes with the device key (requests, receipt QR codes)."""
        return self._key.sign(data)

    # -- transactions -----------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One short write transaction; BEGIN IMMEDIATE takes the write lock first."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def head(self, conn: Connection | None = None) -> tuple[int, str]:
        row = (
            (conn or self.conn).execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        )
        if row is None:
            return 0, canonical.genesis_hash(self.device_id)
        return int(row[0]), str(row[1])

    def append(
        self, draft: Draft, *, queue_print: bool = False, idem_key: tuple[str, str] | None = None
    ) -> Record:
        """Seal a validated draft into the next record and commit it.

        ``draft`` holds kind, operator, service, amounts, fields and the
        citizen references; seq, txn_id, created_at, token, prev_hash, hash
        and sig are assigned here, under the write lock. ``idem_key`` (key, request MAC) is
        stored in the same commit (agent.ledger.idempotency). ``created_at`` is never before the
        previous record's (a clock stepped back keeps today's sales on today).
        """
        with self.write() as conn:
            seq, prev_hash, last_at = self._tail(conn)
            now = max(self.now(), last_at)
            seq += 1
            rec: dict[str, Any] = {k: v for k, v in draft.items() if v is not None}
            rec.update(seq=seq, txn_id=ids.uuid7(now), created_at=now, prev_hash=prev_hash)
            if rec["kind"] == "sale":
                rec["token"] = tokens.take_token(conn) or wire_tokens.provisional_token(
                    self.kiosk_code, self.device_id, seq
                )
            h = canonical.record_hash(rec)
            sig = canonical.sign_hash(self._key, h)
            values = [rec.get(c) for c in RECORD_COLUMNS]
            values[RECORD_COLUMNS.index("fields")] = canonical.canonical_json(rec.get("fields", {})).decode()
            conn.execute(_INSERT, (*values, h, sig))
            conn.execute("INSERT INTO outbox (seq, state, updated_at) VALUES (?, 'pending', ?)", (seq, now))
            if queue_print:
                print_jobs.queue(conn, seq, now)
            if idem_key is not None:
                idempotency.store(conn, idem_key[0], seq, idem_key[1], now)
        log.info(
            "committed seq=%d kind=%s service=%s token=%s",
            seq,
            rec["kind"],
            rec["service"],
            rec.get("token", "-"),
        )
        return cast(Record, dict(rec, hash=h, sig=sig))

    def _tail(self, conn: Connection) -> tuple[int, str, int]:
        """The head (seq, hash) and its created_at, in one read."""
        row = conn.execute("SELECT seq, hash, created_at FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row is None:
            return 0, canonical.genesis_hash(self.device_id), 0
        return int(row[0]), str(row[1]), int(row[2])

    def idempotency_key(self, key: str) -> idempotency.Stored | None:
        """The sale an Idempotency-Key made, if it was seen before."""
        return idempotency.lookup(self.conn, key)

    # -- repositories -------------------------------------------------------
    @cached_property
    def print_jobs(self) -> PrintJobs:
        return PrintJobs(self)

    @cached_property
    def operators(self) -> Operators:
        return Operators(self)

    # -- reading ----------------------------------------------------------
    def rows(self, *, pending_only: bool = False, limit: int | None = None) -> list[TxnRow]:
        rows = readmodel.all_rows(self.conn, pending_only=pending_only)
        return rows[-limit:] if limit else rows

    def find(self, ref: str) -> TxnRow:
        """A row by token (leased, provisional or final), txn_id or seq."""
        ref = ref.strip()
        rows = readmodel.by_ref(self.conn, ref)
        if not rows:
            raise NotFound("no transaction with that token or id in this kiosk's ledger")
        return rows[0]

    def by_seq(self, seq: int) -> TxnRow:
        rows = readmodel.by_seq(self.conn, seq)
        if not rows:
            raise NotFound(f"no record with seq {seq}")
        return rows[0]

    def recent(
        self, limit: int, *, pending: bool = False, rejected: bool = False, search: str | None = None
    ) -> list[TxnRow]:
        """The newest rows first (at most ``limit``), filtered; ``search`` is a checked reference."""
        return readmodel.recent(
            self.conn, self.head()[0], limit, pending=pending, rejected=rejected, search=search
        )

    def record_hash(self, seq: int) -> str | None:
        row = self.conn.execute("SELECT hash FROM records WHERE seq = ?", (seq,)).fetchone()
        return None if row is None else str(row[0])

    def count(self) -> int:
        """Seqs run 1..n without gaps (verify checks it), so the head is the count."""
        return self.head()[0]

    def outbox_counts(self) -> OutboxCounts:
        return readmodel.outbox_counts(self.conn, self.head()[0])

    def issue_rate_per_day(self) -> float:
        return readmodel.issue_rate_per_day(self.conn, self.now())

    def status(self) -> LedgerStatus:
        seq, h = self.head()
        return LedgerStatus(
            device_id=self.device_id,
            kiosk_code=self.kiosk_code,
            lsp_id=self.meta("lsp_id"),
            head_seq=seq,
            head_hash=h,
            outbox=readmodel.outbox_counts(self.conn, seq),
            tokens_remaining=self.tokens_remaining(),
            issue_rate_per_day=self.issue_rate_per_day(),
            last_sync_at=self.meta("last_sync_at"),
        )

    # -- leases -------------------------------------------------------------
    def tokens_remaining(self) -> int:
        return tokens.remaining(self.conn)

    def add_lease(self, lease_id: str, start: int, end: int, sig: str, source: str = "server") -> bool:
        if not 0 < start < end:
            raise InvalidInput("a lease needs 0 < start < end")
        with self.write() as conn:
            return tokens.add_lease(conn, lease_id, start, end, sig, source, self.now())

    def retire_dev_leases(self) -> None:
        """Development blocks are never valid at a real server: spent at enrollment."""
        with self.write() as conn:
            tokens.retire_dev_leases(conn)

    # -- maintenance --------------------------------------------------------
    def checkpoint(self) -> None:
        """Fold the WAL into the file (the scheduler's job; readers are not blocked)."""
        db.checkpoint(self.conn, "PASSIVE")

    def backup_into(self, dest: Path, hex_key: str) -> None:
        """An encrypted copy of the whole ledger in ``dest`` (see agent.backup for the checks)."""
        db.copy_to(self.conn, dest, hex_key)
