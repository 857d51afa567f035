"""What the sync engine needs from the kiosk's ledger. The ledger implements
it (agent/ledger/outbox.py); the engine never imports the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.wire import protocol


@dataclass
class Batch:
    prev_hash: str
    records: list[dict[str, Any]]  # wire records: canonical keys but prev_hash, plus sig
    was_pending: frozenset[int] = frozenset()  # seqs never sent before this batch (for not_sent)

    @property
    def seqs(self) -> list[int]:
        return [int(r["seq"]) for r in self.records]


@dataclass
class AckCounts:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    retry: int = 0  # transiently rejected (gap / blocked): back to pending
    reasons: dict[str, int] = field(default_factory=dict)


class Outbox(Protocol):
    device_id: str

    def next_batch(self, max_records: int, max_bytes: int) -> Batch | None:
        """The oldest unacknowledged records (pending or sent), marked sent in one commit (before
        the request: a crash while it is on the way leaves them 'sent', and they are sent again)."""

    def not_sent(self, batch: Batch) -> None:
        """The request carrying ``batch`` never left (no connection): its rows that were pending
        before :meth:`next_batch` are pending again, so 'sent' always means "a request carried it"."""

    def apply_acks(self, batch: Batch, resp: protocol.BatchResponse) -> AckCounts:
        """Store every ack of one response in one commit; reconcile with the server's head."""

    def counts(self) -> dict[str, int]:
        """pending / sent / acked / rejected."""

    def head(self) -> tuple[int, str]:
        """The ledger's last (seq, hash)."""

    def tokens_remaining(self) -> int: ...

    def issue_rate_per_day(self) -> float:
        """Sales per day lately, for lease top-up."""

    def add_leases(self, leases: list[protocol.Lease]) -> int:
        """Store verified leases; return how many were new."""

    def catalog_version(self) -> int: ...

    def store_catalog(self, version: int, doc: dict[str, Any]) -> None: ...

    def mark_synced(self, server_time_ms: int) -> None: ...

    def note_clock(self, offset_s: float) -> None:
        """The server's clock minus ours, learned from its answers (the kiosk stamps with it)."""
