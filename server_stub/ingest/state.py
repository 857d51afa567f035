"""What one batch works on: the server's facts it touches (loaded once, before any record is
looked at) and what the batch has done so far (not yet written)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from server_stub.auth import Device
from server_stub.ingest.rows import Rows
from sync.wire.protocol import RejectReason, WireRecord
from sync.wire.tokens import is_provisional, token_for_serial


@dataclass(frozen=True)
class StoredRecord:
    """A record the server already holds at one of the batch's seqs."""

    hash: str
    final_token: str | None


@dataclass(frozen=True)
class Sale:
    """A sale a void may name: its token, and the final token a provisional one got."""

    token: str | None
    final_token: str | None


@dataclass
class FinalTokens:
    """Final tokens for provisional records, from the global serial space.

    On first need, one block is reserved for every provisional record of the batch still to come
    (``pending``), so a batch advances the serial counter once.
    """

    take_serials: Callable[[int], int]
    pending: int
    head_seq: int  # the device's head before the batch: only records above it count as pending
    serials: list[int] = field(default_factory=list)

    @staticmethod
    def counts(rec: WireRecord, head_seq: int) -> bool:
        return rec.token is not None and is_provisional(rec.token) and rec.seq > head_seq

    def take(self) -> str:
        if not self.serials:
            n = max(self.pending, 1)
            first = self.take_serials(n)
            self.serials = list(range(first, first + n))
        return token_for_serial(self.serials.pop(0))

    def passed(self, rec: WireRecord) -> None:
        if self.counts(rec, self.head_seq):
            self.pending -= 1


@dataclass
class BatchState:
    device: Device
    now_ms: int
    head_seq: int  # moves on as records are accepted (or passed over)
    head_hash: str
    stored: dict[int, StoredRecord]
    quarantined: set[tuple[int, str]]  # (seq, hash) already in quarantine
    passed_over: dict[tuple[int, str], RejectReason]  # business rejections the chain moved past
    used_tokens: set[str]
    lease_starts: list[int]
    lease_ends: list[int]
    voided: set[int]  # seqs voided (stored or in this batch)
    sales: dict[int, Sale]  # sales a void of the batch may name: stored, or accepted in this batch
    known_gaps: set[int]
    finals: FinalTokens
    rows: Rows = field(default_factory=Rows)
    fork_seq: int | None = None

    def in_lease(self, serial: int) -> bool:
        i = bisect.bisect_right(self.lease_starts, serial) - 1
        return i >= 0 and serial < self.lease_ends[i]

    def move_head(self, seq: int, hash_hex: str) -> None:
        self.head_seq, self.head_hash = seq, hash_hex
