"""The sync engine (DESIGN section 5): push oldest-first in batches bounded by
count and bytes, store each ack set in one commit, resend anything unacked,
back off with full jitter honouring Retry-After, top up token leases, pull the
catalog, send heartbeats. Branches on transient vs permanent errors only."""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sync.client import SyncClient
from sync.errors import PermanentSyncError, SyncError, TransientSyncError
from sync.outbox import Outbox
from sync.wire import protocol

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    sent: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    pending: int = 0
    batches: int = 0
    error: str | None = None
    transient: bool = False
    retry_after_s: float | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in ("sent", "accepted", "duplicate", "rejected", "pending")} | {
            "batches": self.batches,
            "error": self.error,
            "reasons": self.reasons,
        }


class Backoff:
    """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**n)) after a failure
    the server did not time (a timeout, a refused connection, a 5xx without Retry-After).

    A Retry-After is an appointment, not a failure: the wait is that many seconds plus up to one
    (its resolution), whatever the exponent, and the exponent does not grow. The server computes
    Retry-After from its queue and its drain rate, with jitter, so it spreads a fleet better than
    the kiosk's own guess; growing the exponent on every shed made kiosks turned away three or
    four times wait up to 16-32 s past their appointment, stragglers that set a storm's end.

    After an outage the first attempts of a fleet are spread by the same jitter: every kiosk
    failed all along, so each waits uniform(0, ceiling) from its last failure, the ceiling grown
    to the cap (tests/sync/test_engine.py shows 1,000 kiosks over a 2-hour outage)."""

    def __init__(self, base_s: float = 2.0, cap_s: float = 900.0, rng: random.Random | None = None) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, retry_after_s: float | None = None) -> float:
        if retry_after_s is not None:
            # Retry-After counts whole seconds: kiosks told the same second spread over it
            # instead of arriving together at its start.
            return min(self.cap_s, max(0.0, retry_after_s) + self.rng.uniform(0, 1.0))
        ceiling = min(self.cap_s, self.base_s * math.pow(2, min(self.failures, 30)))
        self.failures += 1
        return self.rng.uniform(0, ceiling)

    def reset(self) -> None:
        self.failures = 0


class SyncEngine:
    def __init__(
        self,
        outbox: Outbox,
        client: SyncClient,
        *,
        batch_max_records: int = 500,
        batch_max_bytes: int = 262_144,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        days_target: int = 14,
        min_remaining: int = 200,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.batch_max_records = min(batch_max_records, protocol.MAX_BATCH_RECORDS)
        self.batch_max_bytes = batch_max_bytes
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.days_target = days_target
        self.min_remaining = min_remaining
        self.progress = progress
        self._lease_ask: tuple[int, str] | None = None  # (count, request id) not yet answered

    # -- push -------------------------------------------------------------
    def push(self, report: SyncReport | None = None) -> SyncReport:
        """Send every unacknowledged record once around; raises SyncError on a failed call."""
        report = report or SyncReport()
        stalled = 0
        total = self._unacked()
        while True:
            batch = self.outbox.next_batch(self.batch_max_records, self.batch_max_bytes)
            if batch is None:
                break
            try:
                resp = self.client.push(batch.prev_hash, batch.records)
            except SyncError as exc:
                if not exc.left:  # no connection was made: the rows were not sent, they stay pending
                    self.outbox.not_sent(batch)
                raise
            report.sent += len(batch.records)
            report.batches += 1
            counts = self.outbox.apply_acks(batch, resp)
            report.accepted += counts.accepted
            report.duplicate += counts.duplicate
            report.rejected += counts.rejected
            for k, v in counts.reasons.items():
                report.reasons[k] = report.reasons.get(k, 0) + v
            if self.progress:
                self.progress(total - self._unacked(), total)
            progressed = counts.accepted + counts.duplicate + counts.rejected
            stalled = 0 if progressed else stalled + 1
            if stalled >= 3:  # e.g. a gap the server keeps reporting: stop, try next round
                raise TransientSyncError(
                    "the server keeps asking for records again (gap); will retry", code="gap"
                )
        return report

    def _unacked(self) -> int:
        c = self.outbox.counts()
        return c["pending"] + c["sent"]

    # -- pull ---------------------------------------------------------------
    def top_up_leases(self) -> int:
        """Ask for blocks until ~days_target days of tokens (at the observed rate) are in hand."""
        want = max(self.min_remaining, math.ceil(self.outbox.issue_rate_per_day() * self.days_target))
        have = self.outbox.tokens_remaining()
        added = 0
        count = 1  # the block size is learned from the first answer
        for _ in range(8):  # bounded: a few round trips at most
            if have >= want:
                break
            resp = self._ask_leases(count)
            if resp is None:  # the server's cap for this kiosk: enough in hand
                break
            new = self.outbox.add_leases(resp.leases)
            if not new:
                break
            added += new
            have = self.outbox.tokens_remaining()
            count = min(16, max(1, math.ceil((want - have) / max(resp.block_size, 1))))
        return added

    def _ask_leases(self, count: int) -> protocol.LeaseResponse | None:
        """One lease request with an idempotency key: an ask whose answer was lost is repeated
        with the same key, so the server hands out the same blocks instead of new ones. None when
        the server says the kiosk already holds as many unused tokens as it may."""
        if self._lease_ask is None or self._lease_ask[0] != count:
            self._lease_ask = (count, str(uuid.uuid4()))
        try:
            resp = self.client.leases(count, request_id=self._lease_ask[1])
        except PermanentSyncError as exc:
            if exc.code != "lease_cap_reached":
                raise
            self._lease_ask = None
            return None
        self._lease_ask = None
        return resp

    def pull_catalog(self) -> bool:
        resp = self.client.catalog(self.outbox.catalog_version())
        if resp.catalog is None:
            return False
        self.outbox.store_catalog(resp.version, resp.catalog.model_dump())
        return True

    def note_clock(self) -> None:
        """Hand the offset the client learned from the server's Date to the kiosk (it stamps
        new records with it), once any answer came."""
        if self.client.offset_known:
            self.outbox.note_clock(self.client.offset_s)

    def heartbeat(self, hardware: dict[str, str] | None = None) -> protocol.HeartbeatResponse:
        seq, h = self.outbox.head()
        c = self.outbox.counts()
        try:
            return self._heartbeat(seq, h, c, hardware)
        finally:
            self.note_clock()

    def _heartbeat(
        self, seq: int, h: str, c: dict[str, int], hardware: dict[str, str] | None
    ) -> protocol.HeartbeatResponse:
        return self.client.heartbeat(
            protocol.HeartbeatRequest(
                head_seq=seq,
                head_hash=h if seq else None,
                queue_depth=c["pending"] + c["sent"],
                hardware=hardware or {},
                agent_version="0.1.0",
            )
        )

    # -- one round ------------------------------------------------------------
    def run_once(self) -> SyncReport:
        """Push, then top up leases and pull the catalog. Never raises SyncError:
        the report says what failed and whether it is worth retrying."""
        report = SyncReport()
        try:
            self.push(report)
            self.top_up_leases()
            self.pull_catalog()
            self.outbox.mark_synced(int(self.client.server_now() * 1000))
            self.backoff.reset()
        except SyncError as exc:
            report.error = exc.message
            report.transient = exc.transient
            report.retry_after_s = exc.retry_after_s
            log.warning("sync stopped: %s", exc.message)
        self.note_clock()
        c = self.outbox.counts()
        report.pending = c["pending"] + c["sent"]
        return report

    def drain(self, deadline_s: float, clock: Callable[[], float] = time.monotonic) -> SyncReport:
        """Keep syncing (with backoff between failed rounds) until nothing is
        pending, a permanent error, or the deadline."""
        total = SyncReport()
        end = clock() + deadline_s
        while True:
            r = self.run_once()
            for k in ("sent", "accepted", "duplicate", "rejected", "batches"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            for k, v in r.reasons.items():
                total.reasons[k] = total.reasons.get(k, 0) + v
            total.pending, total.error, total.transient = r.pending, r.error, r.transient
            if r.error is None and r.pending == 0:
                return total
            if r.error is not None and not r.transient:
                return total
            delay = self.backoff.next_delay(r.retry_after_s)
            if clock() + delay > end:
                return total
            self.sleep(delay)


__all__ = ["Backoff", "PermanentSyncError", "SyncEngine", "SyncReport", "TransientSyncError"]
