"""An outbox in memory: :class:`sync.outbox.Outbox` without a ledger, in the manner of
APScheduler's ``MemoryJobStore`` or httpx's ``MockTransport``. The engine can be driven
(and unit-tested) against it with nothing on disk.

It keeps the ledger outbox's rules (agent/ledger/outbox.py): records are chained and signed
as the ledger chains them; rows move pending -> sent -> acked | rejected; ``sent`` rows are
sent again; a batch is one unbroken run of the chain bounded by count and canonical bytes;
transient reasons (gap, blocked) go back to pending; anything the server's head does not cover
goes back to pending, except a fork. Not durable: nothing survives the process.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.outbox import AckCounts, Batch, Outbox
from sync.wire import canonical, protocol, signing


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryOutbox:
    """Implements :class:`sync.outbox.Outbox`. ``acks_applied`` lists, per applied response,
    the seqs it acknowledged (so a test can see that every ack set was stored once)."""

    def __init__(
        self,
        device_id: str | None = None,
        *,
        private_key: Ed25519PrivateKey | None = None,
        server_sign_key: Ed25519PublicKey | None = None,
        tokens: int = 0,
        issue_rate_per_day: float = 0.0,
        now_ms: Callable[[], int] = _now_ms,
    ) -> None:
        self.device_id = device_id or str(uuid.uuid4())
        self.private_key = private_key or Ed25519PrivateKey.generate()
        self.server_sign_key = server_sign_key  # when set, leases must verify, as in the ledger
        self.now_ms = now_ms
        self.rate_per_day = issue_rate_per_day
        self.spare_tokens = tokens
        self.records: list[dict[str, Any]] = []  # wire records (no prev_hash, with sig), seq order
        self.hashes: list[str] = []  # record i's hash
        self.state: dict[int, str] = {}
        self.last_error: dict[int, str | None] = {}
        self.final_tokens: dict[int, str] = {}
        self.attempts: dict[int, int] = {}
        self.leases: dict[int, protocol.Lease] = {}
        self.catalog: tuple[int, dict[str, Any]] | None = None
        self.synced_at_ms: int | None = None
        self.acks_applied: list[list[int]] = []
        self.clock_offset_s = 0.0

    # -- what the kiosk does ---------------------------------------------------
    def add(self, service: str = "WATER_BILL", amount_paise: int = 100, **extra: Any) -> dict[str, Any]:
        """Append one sale to the chain (queued as pending); its wire record."""
        seq, prev = self.head()
        rec: dict[str, Any] = {
            "seq": seq + 1,
            "txn_id": str(uuid.uuid4()),
            "kind": "sale",
            "created_at": self.now_ms(),
            "operator": "op1",
            "service": service,
            "amount_paise": amount_paise,
            "fee_paise": 0,
            "fields": {},
            "catalog_version": 1,
            **extra,
            "prev_hash": prev,
        }
        h = canonical.record_hash(rec)
        del rec["prev_hash"]
        rec["sig"] = canonical.sign_hash(self.private_key, h)
        self.records.append(rec)
        self.hashes.append(h)
        self.state[rec["seq"]] = "pending"
        self.attempts[rec["seq"]] = 0
        return rec

    # -- the Outbox protocol ---------------------------------------------------
    def head(self) -> tuple[int, str]:
        if not self.records:
            return 0, canonical.genesis_hash(self.device_id)
        return int(self.records[-1]["seq"]), self.hashes[-1]

    def counts(self) -> dict[str, int]:
        c = {"pending": 0, "sent": 0, "acked": 0, "rejected": 0}
        for st in self.state.values():
            c[st] += 1
        return c

    def next_batch(self, max_records: int, max_bytes: int) -> Batch | None:
        records: list[dict[str, Any]] = []
        size = 0
        for rec in self.records:
            if self.state[rec["seq"]] not in ("pending", "sent"):
                continue
            if len(records) >= max_records:
                break
            if records and rec["seq"] != records[-1]["seq"] + 1:
                break  # a batch is one unbroken run of the chain
            n = len(canonical.canonical_json(rec))
            if records and size + n > max_bytes:
                break
            records.append(dict(rec))
            size += n
        if not records:
            return None
        was_pending = frozenset(r["seq"] for r in records if self.state[r["seq"]] == "pending")
        for rec in records:
            self.state[rec["seq"]] = "sent"
            self.attempts[rec["seq"]] += 1
        first = records[0]["seq"]
        prev = self.hashes[first - 2] if first > 1 else canonical.genesis_hash(self.device_id)
        return Batch(prev, records, was_pending)

    def not_sent(self, batch: Batch) -> None:
        for seq in batch.seqs:
            if seq in batch.was_pending and self.state[seq] == "sent":
                self.state[seq] = "pending"
                self.attempts[seq] -= 1

    def apply_acks(self, batch: Batch, resp: protocol.BatchResponse) -> AckCounts:
        counts = AckCounts()
        sent = set(batch.seqs)
        applied = []
        for ack in resp.acks:
            if ack.seq not in sent:
                continue
            applied.append(ack.seq)
            if ack.status in ("accepted", "duplicate"):
                setattr(counts, ack.status, getattr(counts, ack.status) + 1)
                self._set(ack.seq, "acked", None)
                if ack.final_token:
                    self.final_tokens[ack.seq] = ack.final_token
                continue
            reason = ack.reason or "rejected"
            counts.reasons[reason] = counts.reasons.get(reason, 0) + 1
            if reason in protocol.TRANSIENT_REASONS:
                counts.retry += 1
                self._set(ack.seq, "pending", reason)
            else:  # permanent: kept for the operator, never dropped
                counts.rejected += 1
                self._set(ack.seq, "rejected", reason)
        # The server's head is the truth about what it holds (see agent/ledger/outbox.py).
        for seq, st in self.state.items():
            if seq > resp.head.seq and (
                st == "acked" or (st == "rejected" and self.last_error[seq] != "fork")
            ):
                self.state[seq] = "pending"
        self.acks_applied.append(applied)
        return counts

    def _set(self, seq: int, state: str, error: str | None) -> None:
        self.state[seq] = state
        self.last_error[seq] = error

    def tokens_remaining(self) -> int:
        return self.spare_tokens + sum(le.end_serial - le.start_serial for le in self.leases.values())

    def issue_rate_per_day(self) -> float:
        return self.rate_per_day

    def add_leases(self, leases: list[protocol.Lease]) -> int:
        new = 0
        for lease in leases:
            if self.server_sign_key is not None and not signing.verify_lease(
                self.server_sign_key,
                self.device_id,
                lease.lease_id,
                lease.start_serial,
                lease.end_serial,
                lease.sig,
            ):
                raise ValueError(f"lease {lease.lease_id} is not signed by the server")
            if lease.lease_id not in self.leases:
                self.leases[lease.lease_id] = lease
                new += 1
        return new

    def catalog_version(self) -> int:
        return self.catalog[0] if self.catalog else 0

    def store_catalog(self, version: int, doc: dict[str, Any]) -> None:
        self.catalog = (version, doc)

    def note_clock(self, offset_s: float) -> None:
        self.clock_offset_s = offset_s

    def mark_synced(self, server_time_ms: int) -> None:
        self.synced_at_ms = server_time_ms


if TYPE_CHECKING:  # mypy checks that it keeps to the protocol
    _conforms: Outbox = MemoryOutbox()

__all__ = ["MemoryOutbox"]
