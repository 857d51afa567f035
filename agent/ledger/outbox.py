"""The ledger's side of sync (implements sync.outbox.Outbox).

Outbox rows move pending -> sent -> acked | rejected; an append writes none (a record past the
outbox's frontier is pending: agent.ledger.readmodel), the batch that first takes it gives it its
row. A crash between send and
ack leaves them 'sent', and 'sent' rows are sent again (the server answers
'duplicate'). A request that never left (no connection) puts its rows back to
'pending' (:meth:`LedgerOutbox.not_sent`), so 'sent' means a request carried them.
Every ack set is stored in one write transaction.
"""

from __future__ import annotations

import json
from typing import Any

from agent.ledger import readmodel
from agent.ledger.ledger import RECORD_COLUMNS, Ledger, record_from_row
from sync.outbox import AckCounts, Batch
from sync.wire import canonical, protocol, signing

_COLS = ", ".join(f"r.{c}" for c in RECORD_COLUMNS)


class LedgerOutbox:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.device_id = ledger.device_id

    def head(self) -> tuple[int, str]:
        return self.ledger.head()

    def counts(self) -> dict[str, int]:
        c = self.ledger.outbox_counts()
        return {"pending": c["pending"], "sent": c["sent"], "acked": c["acked"], "rejected": c["rejected"]}

    def tokens_remaining(self) -> int:
        return self.ledger.tokens_remaining()

    def next_batch(self, max_records: int, max_bytes: int) -> Batch | None:
        with self.ledger.write() as conn:
            readmodel.materialise(conn, max_records)
            cur = conn.execute(
                f"SELECT {_COLS}, r.sig, o.state FROM outbox o JOIN records r ON r.seq = o.seq "
                "WHERE o.state IN ('pending', 'sent') ORDER BY o.seq LIMIT ?",
                (max_records,),
            )
            names = [*RECORD_COLUMNS, "sig", "state"]
            records: list[dict[str, Any]] = []
            fresh: set[int] = set()
            size = 0
            first_prev = ""
            for raw in cur.fetchall():
                row = dict(zip(names, raw, strict=True))
                rec = record_from_row(row)
                prev = rec.pop("prev_hash")
                rec["sig"] = row["sig"]
                if records and rec["seq"] != records[-1]["seq"] + 1:
                    break  # a batch is one unbroken run of the chain
                n = len(canonical.canonical_json(rec))
                if records and size + n > max_bytes:
                    break
                if not records:
                    first_prev = prev
                records.append(rec)
                size += n
                if row["state"] == "pending":
                    fresh.add(rec["seq"])
            if not records:
                return None
            now = self.ledger.now()
            conn.execute(
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, updated_at = ? "
                "WHERE seq BETWEEN ? AND ? AND state IN ('pending', 'sent')",
                (now, records[0]["seq"], records[-1]["seq"]),
            )
        return Batch(first_prev, records, frozenset(fresh))

    def not_sent(self, batch: Batch) -> None:
        fresh = sorted(batch.was_pending)
        if not fresh:
            return
        with self.ledger.write() as conn:
            conn.executemany(
                "UPDATE outbox SET state = 'pending', attempts = attempts - 1 "
                "WHERE seq = ? AND state = 'sent'",
                [(seq,) for seq in fresh],
            )

    def apply_acks(self, batch: Batch, resp: protocol.BatchResponse) -> AckCounts:
        counts = AckCounts()
        now = self.ledger.now()
        sent = set(batch.seqs)
        with self.ledger.write() as conn:
            for ack in resp.acks:
                if ack.seq not in sent:
                    continue
                if ack.status in ("accepted", "duplicate"):
                    setattr(counts, ack.status, getattr(counts, ack.status) + 1)
                    conn.execute(
                        "UPDATE outbox SET state = 'acked', last_error = NULL, updated_at = ?, "
                        "final_token = COALESCE(?, final_token) WHERE seq = ?",
                        (now, ack.final_token, ack.seq),
                    )
                    continue
                reason = ack.reason or "rejected"
                counts.reasons[reason] = counts.reasons.get(reason, 0) + 1
                if reason in protocol.TRANSIENT_REASONS:
                    counts.retry += 1
                    conn.execute(
                        "UPDATE outbox SET state = 'pending', last_error = ?, updated_at = ? WHERE seq = ?",
                        (reason, now, ack.seq),
                    )
                else:  # permanent: kept for the operator, never dropped
                    counts.rejected += 1
                    conn.execute(
                        "UPDATE outbox SET state = 'rejected', last_error = ?, updated_at = ? WHERE seq = ?",
                        (reason, now, ack.seq),
                    )
            # The server's head is the truth about what it holds: anything we think is acked
            # beyond it (a server restored from backup) goes back to pending. So do records it
            # refused for a business rule: the server keeps those on the chain too, and the chain
            # can't continue without them. A fork is never resent: it is not on the server's chain.
            conn.execute(
                "UPDATE outbox SET state = 'pending', updated_at = ? WHERE seq > ? AND "
                "(state = 'acked' OR (state = 'rejected' AND last_error IS NOT 'fork'))",
                (now, resp.head.seq),
            )
        self.ledger.note_server_head(resp.head.seq)  # ahead of our head: records lost here
        return counts

    def issue_rate_per_day(self) -> float:
        return self.ledger.issue_rate_per_day()

    def add_leases(self, leases: list[protocol.Lease]) -> int:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        key_b64 = self.ledger.meta("server_sign_pub")
        if not key_b64:
            return 0
        server_key: Ed25519PublicKey = canonical.load_public_key_b64(key_b64)
        new = 0
        for lease in leases:
            if not signing.verify_lease(
                server_key, self.device_id, lease.lease_id, lease.start_serial, lease.end_serial, lease.sig
            ):
                raise ValueError(f"lease {lease.lease_id} is not signed by the server")
            new += self.ledger.add_lease(str(lease.lease_id), lease.start_serial, lease.end_serial, lease.sig)
        return new

    def catalog_version(self) -> int:
        return int(self.ledger.meta("catalog_version") or 0)

    def store_catalog(self, version: int, doc: dict[str, Any]) -> None:
        self.ledger.set_meta(
            {"catalog_version": str(version), "catalog_json": json.dumps(doc, ensure_ascii=False)}
        )

    def note_clock(self, offset_s: float) -> None:
        self.ledger.set_clock_offset(offset_s)

    def mark_synced(self, server_time_ms: int) -> None:
        from agent.ids import iso_utc

        self.ledger.set_meta({"last_sync_at": iso_utc(self.ledger.now())})
