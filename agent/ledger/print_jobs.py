"""Print jobs: the receipts owed for committed sales (DESIGN section 7).

A job is queued in the same commit as its transaction (:func:`queue`, called
by ``Ledger.append``); printing happens after the commit, outside any
transaction, and its outcome is stored here. Jobs are never deleted: pending
-> printed, or failed (superseded by a reprint).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import InvalidInput
from agent.ledger.db import Connection
from agent.ledger.readmodel import PrintState

if TYPE_CHECKING:
    from agent.ledger.ledger import Ledger


@dataclass(frozen=True)
class PrintJob:
    id: int
    seq: int
    duplicate: bool
    state: PrintState
    attempts: int
    last_error: str | None


def queue(conn: Connection, seq: int, now_ms: int, *, duplicate: bool = False) -> int:
    """Add a pending job inside the caller's write transaction; returns its id."""
    cur = conn.execute(
        "INSERT INTO print_jobs (seq, state, duplicate, created_at, updated_at) "
        "VALUES (?, 'pending', ?, ?, ?)",
        (seq, int(duplicate), now_ms, now_ms),
    )
    return int(cur.lastrowid)


class PrintJobs:
    """The ledger's print-job table (``ledger.print_jobs``)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def get(self, job_id: int) -> PrintJob:
        row = self._ledger.conn.execute(
            "SELECT id, seq, duplicate, state, attempts, last_error FROM print_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise InvalidInput(f"no print job {job_id}")
        return PrintJob(int(row[0]), int(row[1]), bool(row[2]), row[3], int(row[4]), row[5])

    def first_print_of(self, seq: int) -> int | None:
        """The automatic job queued with the sale, if it was never tried."""
        row = self._ledger.conn.execute(
            "SELECT id FROM print_jobs WHERE seq = ? AND attempts = 0 AND state = 'pending' "
            "ORDER BY id LIMIT 1",
            (seq,),
        ).fetchone()
        return None if row is None else int(row[0])

    def ever_printed(self, seq: int) -> bool:
        """Whether any receipt of ``seq`` came out of the printer (a reprint of one that never did
        is the original, not a DUPLICATE)."""
        row = self._ledger.conn.execute(
            "SELECT 1 FROM print_jobs WHERE seq = ? AND state = 'printed' LIMIT 1", (seq,)
        ).fetchone()
        return row is not None

    def add(self, seq: int, *, duplicate: bool) -> int:
        """A new job in its own write transaction (a reprint)."""
        with self._ledger.write() as conn:
            return queue(conn, seq, self._ledger.now(), duplicate=duplicate)

    def finish(self, job_id: int, state: PrintState, error: str | None) -> None:
        """Store one attempt's outcome (a failed attempt leaves the job pending with the reason)."""
        with self._ledger.write() as conn:
            conn.execute(
                "UPDATE print_jobs SET state = ?, last_error = ?, attempts = attempts + 1, updated_at = ? "
                "WHERE id = ?",
                (state, error, self._ledger.now(), job_id),
            )

    def supersede(self, seq: int, by_job: int) -> int:
        """Close the pending jobs of ``seq`` older than ``by_job`` (it printed); returns how many."""
        with self._ledger.write() as conn:
            cur = conn.execute(
                "UPDATE print_jobs SET state = 'failed', last_error = 'superseded by a reprint', "
                "updated_at = ? WHERE seq = ? AND id < ? AND state = 'pending'",
                (self._ledger.now(), seq, by_job),
            )
            return int(cur.rowcount)


__all__ = ["PrintJob", "PrintJobs", "queue"]
