"""Ingest of a batch of chained, signed records from one device, in one transaction.

Per record (see :mod:`sync.wire.protocol` for the statuses and reasons):

- the server holds this seq with the same hash -> ``duplicate``;
- it holds this seq with another hash, or the record extends a chain that diverged from the
  server's -> a **fork**: the record is kept in ``quarantine``, the device is flagged, the ack is
  ``rejected``/``fork``;
- seq == head + 1 and the chain continues from the server's head -> token and void checks, then
  ``accepted`` (a provisional token gets a ``final_token`` from the global serial space);
- seq > head + 1 -> ``rejected``/``gap`` (or ``blocked`` after a rejection in the same batch);
  the response's ``head`` says where to resend from.
- a record that is signed and continues the chain but breaks a business rule (its token is not
  leased to the device, already used, malformed; a bad void) -> ``rejected`` with that reason,
  kept in ``quarantine`` with the reason, **and the chain moves past it**: the device's later
  records are still accepted, and resending it gets the same answer. Without this, one bad
  record would block the kiosk for ever.

The device row is locked for the whole batch (``FOR UPDATE`` on PostgreSQL, the write lock on
SQLite), so a resent or concurrent batch of the same device is answered from committed state:
any resend is idempotent.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Connection

from server_stub.db import devices, gap_reports, is_postgres, leases, quarantine, records, tokens
from server_stub.errors import Unauthorized, Unprocessable
from server_stub.leases import take_serials
from sync.wire.canonical import RECORD_KEYS, CanonicalError, canonical_json, verify_hash
from sync.wire.protocol import BatchRequest, BatchResponse, Head, RecordAck, RejectReason, WireRecord
from sync.wire.tokens import is_provisional, is_provisional_of, serial_of_token, token_for_serial


@dataclass
class _State:
    """What this batch has done so far (not yet written)."""

    head_seq: int
    head_hash: str
    used_tokens: set[str]
    lease_starts: list[int]
    lease_ends: list[int]
    voided: set[int] = field(default_factory=set)  # seqs voided (stored or in this batch)
    sales: dict[int, dict[str, Any]] = field(default_factory=dict)  # accepted in this batch
    final_serials: list[int] = field(default_factory=list)
    record_rows: list[dict[str, Any]] = field(default_factory=list)
    token_rows: list[dict[str, Any]] = field(default_factory=list)
    quarantine_rows: list[dict[str, Any]] = field(default_factory=list)
    gap_rows: list[dict[str, Any]] = field(default_factory=list)
    fork_seq: int | None = None


def _in_lease(state: _State, serial: int) -> bool:
    i = bisect.bisect_right(state.lease_starts, serial) - 1
    return i >= 0 and serial < state.lease_ends[i]


def _check_new_token(state: _State, token: str, kiosk_code: str, device_id: str = "") -> RejectReason | None:
    if token in state.used_tokens:
        return "token_used"
    if is_provisional(token):
        return None if is_provisional_of(token, kiosk_code, device_id) else "bad_provisional_token"
    serial = serial_of_token(token)
    if serial is None:
        return "bad_token"
    if not _in_lease(state, serial):
        return "token_not_leased"
    return None


def _voided_sale(conn: Connection, state: _State, device_id: str, seq: int) -> dict[str, Any] | None:
    if seq in state.sales:
        return state.sales[seq]
    row = conn.execute(
        sa.select(records.c.kind, records.c.token, records.c.final_token).where(
            records.c.device_id == device_id, records.c.seq == seq
        )
    ).first()
    return None if row is None else {"kind": row.kind, "token": row.token, "final_token": row.final_token}


def _check_record(
    conn: Connection, state: _State, device_id: str, kiosk_code: str, rec: dict[str, Any]
) -> tuple[RejectReason | None, bool]:
    """(reason to reject or None, whether the token is new and must be recorded)."""
    token = rec.get("token")
    if rec["kind"] == "sale":
        if "voids_seq" in rec:
            return "bad_record", False
        if not token:
            return "missing_token", False
        return _check_new_token(state, token, kiosk_code, device_id), True
    voids_seq = rec.get("voids_seq")
    if voids_seq is None or voids_seq >= rec["seq"] or voids_seq in state.voided:
        return "bad_void", False
    sale = _voided_sale(conn, state, device_id, voids_seq)
    if sale is None or sale["kind"] != "sale":
        return "bad_void", False
    if token is None or token in (sale["token"], sale["final_token"]):
        return None, False  # a void may repeat the token of the sale it voids
    return _check_new_token(state, token, kiosk_code, device_id), True


def _final_token(conn: Connection, state: _State, provisional_left: int) -> str:
    if not state.final_serials:
        first = take_serials(conn, max(provisional_left, 1))
        state.final_serials = list(range(first, first + max(provisional_left, 1)))
    return token_for_serial(state.final_serials.pop(0))


def ingest_batch(
    conn: Connection, device_id: str, public_key: Ed25519PublicKey, batch: BatchRequest, now_ms: int
) -> BatchResponse:
    recs: list[WireRecord] = batch.records
    first = recs[0].seq
    if any(r.seq != first + i for i, r in enumerate(recs)):
        raise Unprocessable(
            "the records of a batch must have consecutive seqs, oldest first", code="bad_batch"
        )
    last = recs[-1].seq

    query = sa.select(devices).where(devices.c.device_id == device_id)
    if is_postgres(conn):
        query = query.with_for_update()
    dev = conn.execute(query).first()
    if dev is None or dev.revoked_at is not None:
        raise Unauthorized("this device is not enrolled or has been revoked", code="device_revoked")
    kiosk_code = dev.kiosk_code

    # Recompute the chain from the batch's prev_hash.
    # record_hash(rec) == sha256(canonical_json(rec)); the bytes are kept to be stored as they were hashed.
    chain: list[tuple[dict[str, Any] | None, str, bool]] = []
    bodies: dict[int, bytes] = {}
    prev = batch.prev_hash
    for r in recs:
        rec_full = r.record()
        rec_full["prev_hash"] = prev
        try:
            if set(rec_full) - RECORD_KEYS:
                raise CanonicalError("unknown record keys")
            body = canonical_json(rec_full)
        except CanonicalError:
            chain.append((None, "", False))
            prev = "0" * 64
            continue
        h = hashlib.sha256(body).hexdigest()
        bodies[r.seq] = body
        chain.append((rec_full, h, verify_hash(public_key, h, r.sig)))
        prev = h

    stored = {
        row.seq: row
        for row in conn.execute(
            sa.select(records.c.seq, records.c.hash, records.c.final_token).where(
                records.c.device_id == device_id, records.c.seq.between(first, last)
            )
        )
    }
    quarantined: set[tuple[int, str]] = set()
    passed_over: dict[tuple[int, str], RejectReason] = {}  # business rejections the chain moved past
    for row in conn.execute(
        sa.select(quarantine.c.seq, quarantine.c.hash, quarantine.c.reason).where(
            quarantine.c.device_id == device_id, quarantine.c.seq.between(first, last)
        )
    ):
        quarantined.add((row.seq, row.hash))
        if row.reason != "fork":
            passed_over[(row.seq, row.hash)] = cast(RejectReason, row.reason)
    batch_tokens = {r.token for r in recs if r.token}
    used = (
        {row.token for row in conn.execute(sa.select(tokens.c.token).where(tokens.c.token.in_(batch_tokens)))}
        if batch_tokens
        else set()
    )
    lease_rows = conn.execute(
        sa.select(leases.c.start_serial, leases.c.end_serial)
        .where(leases.c.device_id == device_id)
        .order_by(leases.c.start_serial)
    ).all()
    voids_of = [r.voids_seq for r in recs if r.voids_seq is not None]
    already_voided = (
        {
            row.voids_seq
            for row in conn.execute(
                sa.select(records.c.voids_seq).where(
                    records.c.device_id == device_id,
                    records.c.kind == "void",
                    records.c.voids_seq.in_(voids_of),
                )
            )
        }
        if voids_of
        else set()
    )
    known_gaps = {
        row.seq
        for row in conn.execute(
            sa.select(gap_reports.c.seq).where(
                gap_reports.c.device_id == device_id, gap_reports.c.seq.between(first, last)
            )
        )
    }
    state = _State(
        head_seq=dev.head_seq,
        head_hash=dev.head_hash,
        used_tokens=used,
        lease_starts=[r.start_serial for r in lease_rows],
        lease_ends=[r.end_serial for r in lease_rows],
        voided=set(already_voided),
    )
    provisional_left = sum(1 for r in recs if r.token and is_provisional(r.token) and r.seq > dev.head_seq)

    acks: list[RecordAck] = []
    for r, (full, h, sig_ok) in zip(recs, chain, strict=True):
        seq = r.seq
        ack: RecordAck
        if full is None:
            ack = RecordAck(seq=seq, status="rejected", reason="bad_record")
        elif seq in stored and stored[seq].hash == h:
            ack = RecordAck(seq=seq, status="duplicate", final_token=stored[seq].final_token)
        elif (seq, h) in passed_over and sig_ok:
            ack = RecordAck(seq=seq, status="rejected", reason=passed_over[(seq, h)])
        elif seq not in stored and seq > state.head_seq + 1:
            after_rejection = bool(acks) and acks[-1].status == "rejected" and acks[-1].reason != "gap"
            ack = RecordAck(seq=seq, status="rejected", reason="blocked" if after_rejection else "gap")
            if sig_ok and seq not in known_gaps:  # the kiosk has proved it holds this seq
                known_gaps.add(seq)
                state.gap_rows.append(
                    {
                        "device_id": device_id,
                        "seq": seq,
                        "kiosk_code": kiosk_code,
                        "created_at": r.created_at,
                        "first_seen_at": now_ms,
                    }
                )
        elif not sig_ok:
            ack = RecordAck(seq=seq, status="rejected", reason="bad_signature")
        elif (
            seq in stored
            or seq <= state.head_seq
            or (seq == state.head_seq + 1 and full["prev_hash"] != state.head_hash)
        ):
            ack = RecordAck(seq=seq, status="rejected", reason="fork")
            if (seq, h) not in quarantined:
                quarantined.add((seq, h))
                state.quarantine_rows.append(
                    {
                        "device_id": device_id,
                        "kiosk_code": kiosk_code,
                        "seq": seq,
                        "hash": h,
                        "reason": "fork",
                        "created_at": r.created_at,
                        "received_at": now_ms,
                        "sig": r.sig,
                        "body": bodies[seq],
                    }
                )
            if state.fork_seq is None:
                state.fork_seq = seq
        else:
            reason, new_token = _check_record(conn, state, device_id, kiosk_code, full)
            if reason:
                ack = RecordAck(seq=seq, status="rejected", reason=reason)
                if (seq, h) not in quarantined:
                    quarantined.add((seq, h))
                    passed_over[(seq, h)] = reason
                    state.quarantine_rows.append(
                        {
                            "device_id": device_id,
                            "kiosk_code": kiosk_code,
                            "seq": seq,
                            "hash": h,
                            "reason": reason,
                            "created_at": r.created_at,
                            "received_at": now_ms,
                            "sig": r.sig,
                            "body": bodies[seq],
                        }
                    )
                state.head_seq, state.head_hash = seq, h  # signed and chained: the chain goes on
            else:
                final = None
                token = full.get("token")
                if token and new_token:
                    state.used_tokens.add(token)
                    kind = "provisional" if is_provisional(token) else "leased"
                    state.token_rows.append(
                        {"token": token, "device_id": device_id, "seq": seq, "kind": kind}
                    )
                    if kind == "provisional":
                        final = _final_token(conn, state, provisional_left)
                        state.token_rows.append(
                            {"token": final, "device_id": device_id, "seq": seq, "kind": "final"}
                        )
                if full["kind"] == "sale":
                    state.sales[seq] = {"kind": "sale", "token": token, "final_token": final}
                else:
                    state.voided.add(full["voids_seq"])
                state.record_rows.append(
                    {
                        "device_id": device_id,
                        "kiosk_code": kiosk_code,
                        "seq": seq,
                        "hash": h,
                        "txn_id": full["txn_id"],
                        "kind": full["kind"],
                        "created_at": full["created_at"],
                        "received_at": now_ms,
                        "service": full["service"],
                        "amount_paise": full.get("amount_paise", 0),
                        "fee_paise": full.get("fee_paise", 0),
                        "token": token,
                        "final_token": final,
                        "voids_seq": full.get("voids_seq"),
                        "catalog_version": full.get("catalog_version"),
                        "sig": r.sig,
                        "body": bodies[seq],
                    }
                )
                state.head_seq, state.head_hash = seq, h
                ack = RecordAck(seq=seq, status="accepted", final_token=final)
        if r.token and is_provisional(r.token) and seq > dev.head_seq:
            provisional_left -= 1
        acks.append(ack)

    for table, rows in (
        (records, state.record_rows),
        (tokens, state.token_rows),
        (quarantine, state.quarantine_rows),
        (gap_reports, state.gap_rows),
    ):
        if rows:
            conn.execute(table.insert(), rows)
    changes: dict[str, Any] = {}
    if state.head_seq != dev.head_seq:
        changes.update(head_seq=state.head_seq, head_hash=state.head_hash)
    if state.fork_seq is not None and dev.flagged_at is None:
        changes.update(flagged_at=now_ms, flag_reason=f"fork at seq {state.fork_seq}")
    if changes:
        conn.execute(devices.update().where(devices.c.device_id == device_id).values(**changes))
    flagged = dev.flagged_at is not None or state.fork_seq is not None
    return BatchResponse(acks=acks, head=Head(seq=state.head_seq, hash=state.head_hash), flagged=flagged)
