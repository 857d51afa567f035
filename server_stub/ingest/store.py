"""Ingest's storage: what a batch needs, read in a few queries before any record is looked at,
and what it decided, written at the end (all in the caller's transaction)."""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from server_stub.auth import Device
from server_stub.db import (
    catalog_versions,
    devices,
    gap_reports,
    insert_rows,
    leases,
    quarantine,
    records,
    tokens,
)
from server_stub.ingest.state import BatchState, CatalogFacts, FinalTokens, Offer, Sale, StoredRecord, Trust
from server_stub.leases import take_serials
from sync.wire.protocol import RejectReason, WireRecord

# The statements every batch runs, built once (building one costs more CPU than running it;
# SQLAlchemy caches the compiled form, not the construction). Parameters: device_id, first, last.
_DEVICE = sa.bindparam("device_id", type_=sa.String)
_FIRST = sa.bindparam("first", type_=sa.BigInteger)
_LAST = sa.bindparam("last", type_=sa.BigInteger)
_STORED = sa.select(records.c.seq, records.c.hash, records.c.final_token).where(
    records.c.device_id == _DEVICE, records.c.seq.between(_FIRST, _LAST)
)
_QUARANTINED = sa.select(quarantine.c.seq, quarantine.c.hash, quarantine.c.reason).where(
    quarantine.c.device_id == _DEVICE, quarantine.c.seq.between(_FIRST, _LAST)
)
_USED_TOKENS = sa.select(tokens.c.token).where(tokens.c.token.in_(sa.bindparam("tokens", expanding=True)))
_LEASES = (
    sa.select(leases.c.start_serial, leases.c.end_serial)
    .where(leases.c.device_id == _DEVICE)
    .order_by(leases.c.start_serial)
)
_KNOWN_GAPS = sa.select(gap_reports.c.seq).where(
    gap_reports.c.device_id == _DEVICE, gap_reports.c.seq.between(_FIRST, _LAST)
)
_CATALOG_STAMPS = sa.select(catalog_versions.c.version, catalog_versions.c.loaded_at)
_LAST_CREATED_AT = (
    sa.select(records.c.created_at)
    .where(records.c.device_id == _DEVICE)
    .order_by(records.c.seq.desc())
    .limit(1)
)


def _span(device_id: str, first: int, last: int) -> dict[str, Any]:
    return {"device_id": device_id, "first": first, "last": last}


def held_records(conn: Connection, device_id: str, first: int, last: int) -> dict[int, StoredRecord]:
    """Seq -> hash and final token of the records the server holds from ``first`` to ``last``."""
    rows = conn.execute(_STORED, _span(device_id, first, last))
    return {row.seq: StoredRecord(row.hash, row.final_token) for row in rows}


def _quarantined(
    conn: Connection, device_id: str, first: int, last: int
) -> tuple[set[tuple[int, str]], dict[tuple[int, str], RejectReason]]:
    held: set[tuple[int, str]] = set()
    passed_over: dict[tuple[int, str], RejectReason] = {}
    for row in conn.execute(_QUARANTINED, _span(device_id, first, last)):
        held.add((row.seq, row.hash))
        if row.reason != "fork":
            passed_over[(row.seq, row.hash)] = cast(RejectReason, row.reason)
    return held, passed_over


def _used_tokens(conn: Connection, recs: Sequence[WireRecord]) -> set[str]:
    batch_tokens = {r.token for r in recs if r.token}
    if not batch_tokens:
        return set()
    return {row.token for row in conn.execute(_USED_TOKENS, {"tokens": sorted(batch_tokens)})}


def _leases(conn: Connection, device_id: str) -> tuple[list[int], list[int]]:
    rows = conn.execute(_LEASES, {"device_id": device_id}).all()
    return [r.start_serial for r in rows], [r.end_serial for r in rows]


def _void_targets(
    conn: Connection, device_id: str, recs: Sequence[WireRecord]
) -> tuple[set[int], dict[int, Sale]]:
    """Of the seqs the batch's voids name: those already voided, and the stored sales among them."""
    named = {r.voids_seq for r in recs if r.voids_seq is not None}
    if not named:
        return set(), {}
    cols = (records.c.seq, records.c.kind, records.c.token, records.c.final_token, records.c.voids_seq)
    rows = conn.execute(
        sa.select(*cols, records.c.service, records.c.amount_paise, records.c.fee_paise)
        .where(records.c.device_id == device_id)
        .where(
            sa.or_(
                records.c.seq.in_(sorted(named)),
                sa.and_(records.c.kind == "void", records.c.voids_seq.in_(sorted(named))),
            )
        )
    ).all()
    voided = {r.voids_seq for r in rows if r.kind == "void" and r.voids_seq in named}
    sales = {
        r.seq: Sale(r.token, r.final_token, r.service, r.amount_paise, r.fee_paise)
        for r in rows
        if r.kind == "sale" and r.seq in named
    }
    return voided, sales


def _known_gaps(conn: Connection, device_id: str, first: int, last: int) -> set[int]:
    return {row.seq for row in conn.execute(_KNOWN_GAPS, _span(device_id, first, last))}


@functools.lru_cache(maxsize=64)
def _offers(body: str) -> dict[str, Offer]:
    """A stored catalog version's services (versions never change: parsed once per process)."""
    try:
        services = json.loads(body)["services"]
        return {s["code"]: Offer(int(s["fee_paise"]), int(s["max_amount_paise"])) for s in services}
    except (ValueError, KeyError, TypeError):
        return {}  # unreadable: every sale naming it is refused as unknown_service


# engine -> version -> services: a stored version never changes, so its body is read once.
_PARSED: weakref.WeakKeyDictionary[Engine, dict[int, dict[str, Offer]]] = weakref.WeakKeyDictionary()


def load_catalog(conn: Connection) -> CatalogFacts:
    """Every version's load time (one small query per batch) and services (bodies read only for
    versions this process has not parsed yet)."""
    parsed = _PARSED.setdefault(conn.engine, {})
    stamps = conn.execute(_CATALOG_STAMPS).all()
    missing = [r.version for r in stamps if r.version not in parsed]
    if missing:
        query = sa.select(catalog_versions.c.version, catalog_versions.c.body)
        for r in conn.execute(query.where(catalog_versions.c.version.in_(missing))):
            parsed[r.version] = _offers(r.body)
    return CatalogFacts(
        loaded_at={r.version: r.loaded_at for r in stamps},
        offers={r.version: parsed[r.version] for r in stamps},
    )


def _last_created_at(conn: Connection, device_id: str) -> int | None:
    return conn.execute(_LAST_CREATED_AT, {"device_id": device_id}).scalar_one_or_none()


def load_state(
    conn: Connection, device: Device, recs: Sequence[WireRecord], now_ms: int, trust: Trust | None = None
) -> BatchState:
    """What the server holds that the batch ``recs`` (consecutive seqs) touches."""
    did, first, last = device.device_id, recs[0].seq, recs[-1].seq
    held, passed_over = _quarantined(conn, did, first, last)
    lease_starts, lease_ends = _leases(conn, did)
    voided, sales = _void_targets(conn, did, recs)
    pending = sum(1 for r in recs if FinalTokens.counts(r, device.head_seq))
    return BatchState(
        device=device,
        now_ms=now_ms,
        head_seq=device.head_seq,
        head_hash=device.head_hash,
        stored=held_records(conn, did, first, last),
        quarantined=held,
        passed_over=passed_over,
        used_tokens=_used_tokens(conn, recs),
        lease_starts=lease_starts,
        lease_ends=lease_ends,
        voided=voided,
        sales=sales,
        known_gaps=_known_gaps(conn, did, first, last),
        finals=FinalTokens(lambda n: take_serials(conn, n), pending, device.head_seq),
        catalog=load_catalog(conn),
        trust=trust or Trust(),
        last_created_at=_last_created_at(conn, did),
    )


def _uses_a_leased_token(row: Any) -> bool:
    token = row["token"]
    return row["kind"] == "sale" and token is not None and not token.startswith("P")


# The head moved, nothing flagged: every accepted batch (``used`` may be 0: the same value written).
_MOVE_HEAD = (
    devices.update()
    .where(devices.c.device_id == sa.bindparam("device", type_=sa.String))
    .values(
        head_seq=sa.bindparam("seq", type_=sa.BigInteger),
        head_hash=sa.bindparam("hash", type_=sa.String),
        tokens_used=devices.c.tokens_used + sa.bindparam("used", type_=sa.BigInteger),
    )
)


def write_batch(conn: Connection, state: BatchState) -> None:
    """The batch's rows (one COPY per table on PostgreSQL), and the device's new head and fork flag."""
    insert_rows(conn, records, state.rows.records)
    insert_rows(conn, tokens, state.rows.tokens)
    insert_rows(conn, quarantine, state.rows.quarantine)
    insert_rows(conn, gap_reports, state.rows.gaps)
    device = state.device
    changes: dict[str, Any] = {}
    if state.head_seq != device.head_seq:
        changes.update(head_seq=state.head_seq, head_hash=state.head_hash)
    flag = state.fork_seq is not None and device.flagged_at is None
    if flag:
        changes.update(flagged_at=state.now_ms, flag_reason=f"fork at seq {state.fork_seq}")
    used = sum(1 for r in state.rows.records if _uses_a_leased_token(r))
    if used:  # the lease cap's count of used serials (server_stub.leases)
        changes.update(tokens_used=devices.c.tokens_used + used)
    if "head_seq" in changes and not flag:  # the usual batch: the statement built once
        conn.execute(
            _MOVE_HEAD,
            {"device": device.device_id, "seq": state.head_seq, "hash": state.head_hash, "used": used},
        )
    elif changes:
        conn.execute(devices.update().where(devices.c.device_id == device.device_id).values(**changes))
