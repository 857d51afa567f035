"""The ledger: one writer connection over the encrypted SQLite file.

Every write is one short ``BEGIN IMMEDIATE`` transaction with no network or
device I/O inside. Records are never updated; sync and print state live in
their own tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent import ids
from agent.errors import InvalidInput, NotFound, NotInitialised
from agent.ledger import identity, migrations, tokens
from agent.ledger.db import Connection, connect
from sync.wire import canonical
from sync.wire import tokens as wire_tokens

log = logging.getLogger(__name__)
DAY_MS = 86_400_000

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
        self.now = now
        self._meta_cache: dict[str, str] = {}
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
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, values: dict[str, str]) -> None:
        with self.write() as conn:
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )

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

    def append(self, draft: dict[str, Any], *, queue_print: bool = False) -> dict[str, Any]:
        """Seal a validated draft into the next record and commit it.

        ``draft`` holds kind, operator, service, amounts, fields and the
        citizen references; seq, txn_id, created_at, token, prev_hash, hash
        and sig are assigned here, under the write lock.
        """
        with self.write() as conn:
            seq, prev_hash = self.head(conn)
            seq += 1
            now = self.now()
            rec = {k: v for k, v in draft.items() if v is not None}
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
                conn.execute(
                    "INSERT INTO print_jobs (seq, state, created_at, updated_at) VALUES (?, 'pending', ?, ?)",
                    (seq, now, now),
                )
        log.info(
            "committed seq=%d kind=%s service=%s token=%s",
            seq,
            rec["kind"],
            rec["service"],
            rec.get("token", "-"),
        )
        return dict(rec, hash=h, sig=sig)

    # -- reading ----------------------------------------------------------
    def _rows(self, where: str = "", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT r.*, o.state AS sync_state, o.last_error AS sync_error, o.final_token AS final_token, "
            "(SELECT p.state FROM print_jobs p WHERE p.seq = r.seq ORDER BY p.id DESC LIMIT 1) "
            "AS print_state, "
            "(SELECT p.last_error FROM print_jobs p WHERE p.seq = r.seq ORDER BY p.id DESC LIMIT 1) "
            "AS print_error, "
            "(SELECT v.seq FROM records v WHERE v.kind = 'void' AND v.voids_seq = r.seq) AS voided_by, "
            "(SELECT t.token FROM records t WHERE t.seq = r.voids_seq) AS voids_token "
            f"FROM records r LEFT JOIN outbox o ON o.seq = r.seq {where} ORDER BY r.seq",
            params,
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def rows(self, *, pending_only: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
        where = "WHERE o.state IN ('pending', 'sent')" if pending_only else ""
        rows = self._rows(where)
        return rows[-limit:] if limit else rows

    def find(self, ref: str) -> dict[str, Any]:
        """A row by token (leased, provisional or final), txn_id or seq."""
        ref = ref.strip()
        # One indexed lookup per kind of reference (records_token, outbox_final_token,
        # the txn_id unique index): an OR across the join would scan every record.
        rows = self._rows(
            "WHERE r.seq IN (SELECT seq FROM records WHERE kind = 'sale' AND token = ? "
            "UNION ALL SELECT seq FROM outbox WHERE final_token = ? "
            "UNION ALL SELECT seq FROM records WHERE txn_id = ?)",
            (ref, ref, ref),
        )
        if not rows and ref.isdigit() and len(ref) < 10:
            rows = self._rows("WHERE r.seq = ?", (int(ref),))
        if not rows:
            raise NotFound(f"no transaction with token or id '{ref[:40]}' in this kiosk's ledger")
        return rows[0]

    def by_seq(self, seq: int) -> dict[str, Any]:
        rows = self._rows("WHERE r.seq = ?", (seq,))
        if not rows:
            raise NotFound(f"no record with seq {seq}")
        return rows[0]

    def count(self) -> int:
        """Seqs run 1..n without gaps (verify checks it), so the head is the count."""
        return self.head()[0]

    def outbox_counts(self) -> dict[str, int]:
        """From the small partial indexes only, so `status` stays fast on a long ledger:
        every record has one outbox row, and 'acked' is all the rest."""
        counts = {"pending": 0, "sent": 0, "acked": 0, "rejected": 0}
        for state, n in self.conn.execute(
            "SELECT state, count(*) FROM outbox WHERE state IN ('pending', 'sent') GROUP BY state"
        ):
            counts[state] = n
        counts["rejected"] = self.conn.execute(
            "SELECT count(*) FROM outbox WHERE state = 'rejected'"
        ).fetchone()[0]
        counts["acked"] = self.head()[0] - counts["pending"] - counts["sent"] - counts["rejected"]
        return counts

    def issue_rate_per_day(self) -> float:
        now = self.now()
        since = now - 7 * DAY_MS
        # Bounded: only the newest 20,000 records are looked at (no kiosk sells that many in a week),
        # so `status` stays fast however long the ledger grows.
        row = self.conn.execute(
            "SELECT count(*), MIN(created_at) FROM (SELECT kind, created_at FROM records "
            "ORDER BY seq DESC LIMIT 20000) WHERE kind = 'sale' AND created_at >= ?",
            (since,),
        ).fetchone()
        n, first = int(row[0]), row[1]
        if not n:
            return 0.0
        days = max((now - int(first)) / DAY_MS, 1.0)
        return n / days

    def tokens_remaining(self) -> int:
        return tokens.remaining(self.conn)

    def add_lease(self, lease_id: str, start: int, end: int, sig: str, source: str = "server") -> bool:
        if not 0 < start < end:
            raise InvalidInput("a lease needs 0 < start < end")
        with self.write() as conn:
            return tokens.add_lease(conn, lease_id, start, end, sig, source, self.now())

    def void(self, ref: str, reason: str, operator: str) -> dict[str, Any]:
        reason = reason.strip()
        if not reason or len(reason) > 200:
            raise InvalidInput("give a reason for the void (1-200 characters)")
        target = self.find(ref)
        if target["kind"] != "sale":
            raise InvalidInput("only a sale can be voided")
        if target["voided_by"] is not None:
            raise InvalidInput(f"token {target['token']} is already voided (seq {target['voided_by']})")
        draft = {
            "kind": "void",
            "operator": operator,
            "service": target["service"],
            "amount_paise": target["amount_paise"],
            "fee_paise": target["fee_paise"],
            "fields": {},
            "voids_seq": target["seq"],
            "reason": reason,
            "catalog_version": target["catalog_version"],
        }
        try:
            return self.append(draft)
        except Exception as exc:  # the unique index on voids_seq: a void raced us
            if "UNIQUE" in str(exc):
                raise InvalidInput(f"token {target['token']} is already voided") from None
            raise
