"""What one batch works on: the server's facts it touches (loaded once, before any record is
looked at) and what the batch has done so far (not yet written)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field

from server_stub.auth import Device
from server_stub.config import ServerConfig
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
    """A sale a void may name: its token, the final token a provisional one got, and what the void
    must repeat (service, amount, fee)."""

    token: str | None
    final_token: str | None
    service: str
    amount_paise: int
    fee_paise: int

    def matches(self, void: WireRecord) -> bool:
        """A void repeats its sale's service, amount and fee (the kiosk's ledger copies them)."""
        return (self.service, self.amount_paise, self.fee_paise) == (
            void.service,
            void.amount_paise,
            void.fee_paise,
        )


@dataclass(frozen=True)
class Offer:
    """A service as one catalog version sells it."""

    fee_paise: int
    max_amount_paise: int


@dataclass(frozen=True)
class CatalogFacts:
    """Every catalog version the server holds: when it was loaded, and its services."""

    loaded_at: dict[int, int] = field(default_factory=dict)  # version -> ms
    offers: dict[int, dict[str, Offer]] = field(default_factory=dict)  # version -> code -> offer

    def version_for(self, rec: WireRecord) -> int | None:
        """The version a record names, else the one in force when it was made (else the first)."""
        if rec.catalog_version is not None:
            return rec.catalog_version
        if not self.loaded_at:
            return None
        before = [v for v, at in self.loaded_at.items() if at <= rec.created_at]
        return max(before) if before else min(self.loaded_at)

    # version -> when the next one was loaded: asked for every sale (a rule), worked out once
    _replaced: dict[int, int | None] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for version in self.loaded_at:
            later = [at for v, at in self.loaded_at.items() if v > version]
            self._replaced[version] = min(later) if later else None

    def replaced_at(self, version: int) -> int | None:
        """When the next version was loaded (None while ``version`` is the newest)."""
        if version in self._replaced:
            return self._replaced[version]
        later = [at for v, at in self.loaded_at.items() if v > version]
        return min(later) if later else None


@dataclass(frozen=True)
class Trust:
    """The server's tolerances for what kiosks send (ServerConfig, in ms)."""

    grace_ms: int = 72 * 3_600_000
    margin_ms: int = 3_600_000
    tolerance_ms: int = 300_000

    @classmethod
    def of(cls, config: ServerConfig) -> Trust:
        return cls(
            config.catalog_grace_hours * 3_600_000,
            config.future_margin_s * 1000,
            config.clock_tolerance_s * 1000,
        )


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
    catalog: CatalogFacts = field(default_factory=CatalogFacts)
    trust: Trust = field(default_factory=Trust)
    last_created_at: int | None = None  # of the newest accepted record (stored or in this batch)
    rows: Rows = field(default_factory=Rows)
    fork_seq: int | None = None

    def in_lease(self, serial: int) -> bool:
        i = bisect.bisect_right(self.lease_starts, serial) - 1
        return i >= 0 and serial < self.lease_ends[i]

    def clock_suspect(self, rec: WireRecord) -> bool:
        """Plausible but odd: made before the record before it (a clock stepped back), or ahead of
        the receive time by more than the tolerance (but within the margin, or it was refused)."""
        tol = self.trust.tolerance_ms
        stepped_back = self.last_created_at is not None and rec.created_at < self.last_created_at - tol
        return stepped_back or rec.created_at > self.now_ms + tol

    def move_head(self, seq: int, hash_hex: str) -> None:
        self.head_seq, self.head_hash = seq, hash_hex
