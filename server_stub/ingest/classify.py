"""One record's answer, in the order the checks must run, and the rows that answer writes.

1. no canonical form -> ``bad_record``;
2. the server holds this seq with the same hash -> ``duplicate``;
3. a business rejection the chain already moved past, resent -> the same reason;
4. beyond the head + 1 -> ``gap`` (``blocked`` right after a rejection); a signed one is noted;
5. signature does not verify -> ``bad_signature``;
6. another record at a seq the server holds, or not chained to the head -> ``fork`` (quarantined);
7. a broken business rule (:mod:`server_stub.ingest.rules`) -> rejected, quarantined, chain moves on;
8. otherwise ``accepted``.
"""

from __future__ import annotations

from server_stub.ingest.rows import gap_row, quarantine_row, record_row
from server_stub.ingest.rules import first_broken, new_token
from server_stub.ingest.state import BatchState, Sale
from sync.wire.canonical import ChainLink
from sync.wire.protocol import RecordAck, RejectReason, WireRecord
from sync.wire.tokens import is_provisional


def _rejected(seq: int, reason: RejectReason) -> RecordAck:
    return RecordAck(seq=seq, status="rejected", reason=reason)


def classify(state: BatchState, rec: WireRecord, link: ChainLink, previous: RecordAck | None) -> RecordAck:
    """The ack for ``rec`` (``previous`` is the ack of the record before it in the batch)."""
    seq = rec.seq
    stored = state.stored.get(seq)
    if link.record is None:
        return _rejected(seq, "bad_record")
    if stored is not None and stored.hash == link.hash:
        return RecordAck(seq=seq, status="duplicate", final_token=stored.final_token)
    if (seq, link.hash) in state.passed_over and link.signed:
        return _rejected(seq, state.passed_over[(seq, link.hash)])
    if stored is None and seq > state.head_seq + 1:
        return _gap(state, rec, link, previous)
    if not link.signed:
        return _rejected(seq, "bad_signature")
    unchained = seq == state.head_seq + 1 and link.record["prev_hash"] != state.head_hash
    if stored is not None or seq <= state.head_seq or unchained:
        return _fork(state, rec, link)
    reason = first_broken(state, rec)
    if reason is not None:
        return _pass_over(state, rec, link, reason)
    return _accept(state, rec, link)


def _gap(state: BatchState, rec: WireRecord, link: ChainLink, previous: RecordAck | None) -> RecordAck:
    after_rejection = previous is not None and previous.status == "rejected" and previous.reason != "gap"
    if link.signed and rec.seq not in state.known_gaps:  # the kiosk has proved it holds this seq
        state.known_gaps.add(rec.seq)
        state.rows.gaps.append(gap_row(state.device, rec, state.now_ms))
    return _rejected(rec.seq, "blocked" if after_rejection else "gap")


def _quarantine(state: BatchState, rec: WireRecord, link: ChainLink, reason: RejectReason) -> bool:
    """Keep the record in quarantine once; False when it already is."""
    if (rec.seq, link.hash) in state.quarantined:
        return False
    state.quarantined.add((rec.seq, link.hash))
    state.rows.quarantine.append(quarantine_row(state.device, rec, link, reason, state.now_ms))
    return True


def _fork(state: BatchState, rec: WireRecord, link: ChainLink) -> RecordAck:
    _quarantine(state, rec, link, "fork")
    if state.fork_seq is None:
        state.fork_seq = rec.seq
    return _rejected(rec.seq, "fork")


def _pass_over(state: BatchState, rec: WireRecord, link: ChainLink, reason: RejectReason) -> RecordAck:
    if _quarantine(state, rec, link, reason):
        state.passed_over[(rec.seq, link.hash)] = reason
    state.move_head(rec.seq, link.hash)  # signed and chained: the chain goes on
    return _rejected(rec.seq, reason)


def _accept(state: BatchState, rec: WireRecord, link: ChainLink) -> RecordAck:
    final = _record_token(state, rec)
    if rec.kind == "sale":
        state.sales[rec.seq] = Sale(rec.token, final, rec.service, rec.amount_paise, rec.fee_paise)
    elif rec.voids_seq is not None:
        state.voided.add(rec.voids_seq)
    row = record_row(state.device, rec, link, final, state.now_ms)
    if rec.kind == "sale":
        row["catalog_version"] = state.catalog.version_for(rec)  # as checked: commission follows it
    row["clock_suspect"] = state.clock_suspect(rec)
    state.rows.records.append(row)
    state.last_created_at = rec.created_at
    state.move_head(rec.seq, link.hash)
    return RecordAck(seq=rec.seq, status="accepted", final_token=final)


def _record_token(state: BatchState, rec: WireRecord) -> str | None:
    """Note the token the record uses first; a provisional one gets its final token (returned)."""
    token = new_token(state, rec)
    if token is None:
        return None
    device_id = state.device.device_id
    state.used_tokens.add(token)
    kind = "provisional" if is_provisional(token) else "leased"
    state.rows.tokens.append({"token": token, "device_id": device_id, "seq": rec.seq, "kind": kind})
    if kind == "leased":
        return None
    final = state.finals.take()
    state.rows.tokens.append({"token": final, "device_id": device_id, "seq": rec.seq, "kind": "final"})
    return final
