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
from agent.errors import (
    InvalidInput,
    LedgerBehind,
    LedgerDamaged,
    LedgerStorageError,
    LedgerTooNew,
    NotFound,
    NotInitialised,
)
from agent.ledger import db, hwm, idempotency, identity, migrations, print_jobs, readmodel, tokens
from agent.ledger.db import Connection, DatabaseError, connect
from agent.ledger.operators import Operators
from agent.ledger.print_jobs import PrintJobs
from agent.ledger.readmodel import LedgerStatus, OutboxCounts, TxnRow
from agent.ledger.space import Space
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
        self.space: Space | None = None  # set by open(): sales refused before the disk is full
        self.hwm: hwm.HighWaterMark | None = None  # set by open(): a backup being checked has none
        #: Why no new records may be appended (damage, lost writes, the server ahead), or None.
        self.refusal: LedgerStorageError | None = None
        self.refusal_code: str | None = None

    @classmethod
    def open(
        cls,
        path: Path,
        hex_key: str,
        now: Callable[[], int] = ids.now_ms,
        *,
        space: Space | None = None,
        checkpoint_pages: int | None = None,
    ) -> Ledger:
        """Open, migrate, and compare with the high-water mark (a ledger behind it opens for
        reading, verify and backup, but refuses new records: :attr:`refusal`)."""
        if space is not None:
            space.at_open()  # on a full disk the reserve makes room for the -shm and WAL
        conn = connect(path, hex_key)
        try:
            if checkpoint_pages is not None:
                conn.execute(f"PRAGMA wal_autocheckpoint = {int(checkpoint_pages)}")
            version = migrations.schema_version(conn)
            if version < len(migrations.MIGRATIONS):
                migrations.migrate(conn)
            led = cls(conn, path, now)
            led.space = space
            led._attach_mark(hex_key)
            if version > len(migrations.MIGRATIONS) and led.refusal is None:
                led._refuse(
                    "ledger_newer",
                    f"a newer kiosk-agent wrote it (ledger schema {version}; this version knows "
                    f"{len(migrations.MIGRATIONS)})",
                    hint="install that kiosk-agent version (or a newer one) again",
                )
            return led
        except (DatabaseError, OSError) as exc:
            conn.close()
            if isinstance(exc, DatabaseError) and not db.is_storage(exc):
                raise
            raise db.storage_error(exc, path) from None
        except BaseException:
            conn.close()
            raise

    def _attach_mark(self, hex_key: str) -> None:
        mark, found = hwm.HighWaterMark.open(self.path, hex_key, self.device_id)
        self.hwm = mark
        seq, h = self.head()
        serial = tokens.highest_issued(self.conn)
        if not found:
            mark.seed(seq, h, serial)
            return
        problem = hwm.check(mark.mark, seq, h, serial, self.record_hash)
        if problem is not None:
            self._refuse(*problem)
        elif (seq, serial) != (mark.mark.seq, mark.mark.serial):
            mark.seed(seq, h, serial)  # a crash between a commit and its mark: the ledger is ahead

    def _refuse(self, code: str, why: str, hint: str = db.RESTORE_HINT) -> None:
        cls = {"ledger_damaged": LedgerDamaged, "ledger_newer": LedgerTooNew}.get(code, LedgerBehind)
        self.refusal_code = code
        self.refusal = cls(f"{self.path}: {why}; no new sales: {hint}")
        log.error("ledger refuses new records: %s (%s)", code, why)

    def translate(self, exc: Exception) -> LedgerStorageError:
        """Our name for SQLite's error; damage is remembered (in the mark) so sales stay refused."""
        err = db.storage_error(exc, self.path)
        if isinstance(err, LedgerDamaged):
            self.mark_damaged("a page failed its check")
        return err

    def mark_damaged(self, why: str) -> None:
        """Found damaged (by verify, or a read): refuse new records now and after a restart."""
        if self.hwm is not None:
            try:
                self.hwm.mark_damaged(why)
            except OSError:
                log.exception("could not record the damage in the high-water mark")
        if self.refusal_code != "ledger_damaged":
            self._refuse("ledger_damaged", f"the ledger file is damaged ({why})")

    def note_server_head(self, server_seq: int) -> None:
        """The server's head for this device (from a sync answer): ahead of ours refuses sales."""
        if self.hwm is not None:
            self.hwm.note_server_head(server_seq)
        seq = self.head()[0]
        if server_seq > seq and self.refusal is None:
            self._refuse(
                "server_ahead", f"the server holds {server_seq} records of this kiosk, the ledger {seq}"
            )

    def close(self) -> None:
        if self.hwm is not None:
            self.hwm.close()
        self.conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close()
        if isinstance(exc, DatabaseError) and db.is_storage(exc):  # named: disk full, damage, I/O
            raise self.translate(exc) from None

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
    def write(self, *, space_checked: bool = False) -> Iterator[Connection]:
        """One short write transaction; BEGIN IMMEDIATE takes the write lock first. SQLite's
        errors come out named (DiskFull, LedgerDamaged, LedgerIOError), the transaction undone."""
        if self.space is not None and not space_checked:
            self.space.before_write()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        except DatabaseError as exc:
            if db.is_storage(exc):
                raise self.translate(exc) from None
            raise

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
        if self.refusal is not None:
            raise self.refusal
        if self.space is not None:
            self.space.check_sale()
        serial = None
        with self.write(space_checked=True) as conn:
            seq, prev_hash, last_at = self._tail(conn)
            now = max(self.now(), last_at)
            seq += 1
            rec: dict[str, Any] = {k: v for k, v in draft.items() if v is not None}
            rec.update(seq=seq, txn_id=ids.uuid7(now), created_at=now, prev_hash=prev_hash)
            if rec["kind"] == "sale":
                serial = tokens.take_serial(conn)
                rec["token"] = (
                    wire_tokens.token_for_serial(serial)
                    if serial is not None
                    else wire_tokens.provisional_token(self.kiosk_code, self.device_id, seq)
                )
            h = canonical.record_hash(rec)
            sig = canonical.sign_hash(self._key, h)
            values = [rec.get(c) for c in RECORD_COLUMNS]
            values[RECORD_COLUMNS.index("fields")] = canonical.canonical_json(rec.get("fields", {})).decode()
            conn.execute(_INSERT, (*values, h, sig))
            if queue_print:
                print_jobs.queue(conn, seq, now)
            if idem_key is not None:
                idempotency.store(conn, idem_key[0], seq, idem_key[1], now)
        self._advance_mark(seq, h, serial)
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

    def _advance_mark(self, seq: int, h: str, serial: int | None) -> None:
        """After the commit (never before: a mark ahead of the ledger would be a false alarm).
        The sale stands whatever happens here; a mark that can't be written stops the next one."""
        if self.hwm is None:
            return
        try:
            self.hwm.advance(seq, h, serial)
        except OSError as exc:
            log.error("could not write the high-water mark after seq %d (%s)", seq, exc.strerror)
            self.refusal_code = "ledger_io"
            self.refusal = db.storage_error(exc, self.path)
            return
        if self.hwm.mark.damaged and self.refusal is None:  # found by another process (verify)
            self._refuse("ledger_damaged", f"the ledger was found damaged ({self.hwm.mark.damaged})")

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
        if self.hwm is not None:
            self.hwm.sync()

    def alerts(self) -> list[dict[str, Any]]:
        """What status shows: the disk (disk_low / disk_full) and why sales are refused, if they are.
        Details hold numbers, never citizen data."""
        out: list[dict[str, Any]] = []
        disk = self.space.alert() if self.space is not None else None
        if disk is not None:
            out.append(disk)
        if self.refusal_code is not None:
            mark = self.hwm.mark if self.hwm is not None else None
            detail = {"head_seq": self.head()[0], "mark_seq": mark.seq if mark else None}
            if mark is not None and self.refusal_code == "server_ahead":
                detail["server_seq"] = mark.server_seq
            out.append({"code": self.refusal_code, "severity": "error", "detail": detail})
        return out

    def backup_into(self, dest: Path, hex_key: str) -> None:
        """An encrypted copy of the whole ledger in ``dest`` (see agent.backup for the checks)."""
        db.copy_to(self.conn, dest, hex_key)
