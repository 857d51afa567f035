"""Ingest's storage: what a batch needs, read in a few queries before any record is looked at,
and what it decided, written at the end (all in the caller's transaction)."""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from server_stub.auth import READ_DEVICE, Device
from server_stub.db import (
    catalog_versions,
    devices,
    gap_reports,
    insert_rows,
    is_postgres,
    leases,
    quarantine,
    records,
    tokens,
)
from server_stub.hotpath import Hot
from server_stub.ingest.state import BatchState, CatalogFacts, FinalTokens, Offer, Sale, StoredRecord, Trust
from server_stub.leases import take_serials
from sync.wire.protocol import RejectReason, WireRecord

# The statements every batch runs, built once (building one costs more CPU than running it;
# SQLAlchemy caches the compiled form, not the construction). Parameters: device_id, first, last.
_DEVICE = sa.bindparam("device_id", type_=sa.String)
_FIRST = sa.bindparam("first", type_=sa.BigInteger)
_LAST = sa.bindparam("last", type_=sa.BigInteger)
# A batch's read-only snapshot in one statement (so one snapshot on PostgreSQL too): the device
# row with its LSP and, joined, the records held at the batch's seqs: a row per held record, or
# one row with NULLs for them. One round trip where the hashes and the device were two.
_HELD = sa.and_(records.c.device_id == devices.c.device_id, records.c.seq.between(_FIRST, _LAST))
_SNAPSHOT = Hot(
    READ_DEVICE.add_columns(
        records.c.hash.label("held_hash"), records.c.final_token.label("held_final")
    ).outerjoin(records, _HELD)
)
# The batch's tokens already used. On PostgreSQL one array parameter: the same statement
# (prepared by psycopg) for every batch, where IN (...) is rewritten by SQLAlchemy and is a new
# statement for each number of tokens.
_TOKENS_USED = tokens.c.token.in_(sa.bindparam("tokens", expanding=True))
_TOKENS_USED_PG = tokens.c.token == sa.any_(sa.bindparam("tokens", type_=postgresql.ARRAY(sa.String)))
# What the server holds that a batch touches, read in one statement (each statement costs the
# worker ~0.1-0.3 ms of client CPU; these were seven): rows of (fact, a, b, hash, text).
STORED, QUARANTINED, GAP, LEASE, CATALOG, LAST_CREATED, USED_TOKEN = range(7)
_NO_INT = sa.cast(sa.null(), sa.BigInteger)
_NO_TEXT = sa.cast(sa.null(), sa.String)
_LAST_CREATED_AT = (
    sa.select(records.c.created_at)
    .where(records.c.device_id == _DEVICE)
    .order_by(records.c.seq.desc())
    .limit(1)
    .scalar_subquery()
)


def _fact(n: int) -> sa.ColumnElement[int]:
    return sa.literal_column(str(n), sa.Integer).label("fact")


def _facts(tokens_used: sa.ColumnElement[bool]) -> sa.CompoundSelect[Any]:
    return sa.union_all(
        sa.select(
            _fact(STORED),
            records.c.seq.label("a"),
            _NO_INT.label("b"),
            records.c.hash,
            records.c.final_token.label("text"),
        ).where(records.c.device_id == _DEVICE, records.c.seq.between(_FIRST, _LAST)),
        sa.select(
            _fact(QUARANTINED), quarantine.c.seq, _NO_INT, quarantine.c.hash, quarantine.c.reason
        ).where(quarantine.c.device_id == _DEVICE, quarantine.c.seq.between(_FIRST, _LAST)),
        sa.select(_fact(GAP), gap_reports.c.seq, _NO_INT, _NO_TEXT, _NO_TEXT).where(
            gap_reports.c.device_id == _DEVICE, gap_reports.c.seq.between(_FIRST, _LAST)
        ),
        sa.select(_fact(LEASE), leases.c.start_serial, leases.c.end_serial, _NO_TEXT, _NO_TEXT).where(
            leases.c.device_id == _DEVICE
        ),
        sa.select(
            _fact(CATALOG), catalog_versions.c.version, catalog_versions.c.loaded_at, _NO_TEXT, _NO_TEXT
        ),
        sa.select(_fact(LAST_CREATED), _LAST_CREATED_AT, _NO_INT, _NO_TEXT, _NO_TEXT),
        sa.select(_fact(USED_TOKEN), _NO_INT, _NO_INT, _NO_TEXT, tokens.c.token).where(tokens_used),
    )


_FACTS = _facts(_TOKENS_USED)
_FACTS_PG = Hot(_facts(_TOKENS_USED_PG))


def _span(device_id: str, first: int, last: int) -> dict[str, Any]:
    return {"device_id": device_id, "first": first, "last": last}


def snapshot(conn: Connection, device_id: str, first: int, last: int) -> tuple[Any, dict[str, str | None]]:
    """The device's row (None when unknown: see ``DeviceAuthenticator.verify_row``) and, hash ->
    final token, the records the server holds from seq ``first`` to ``last``."""
    rows = _SNAPSHOT.rows(conn, _span(device_id, first, last))
    held = {row.held_hash: row.held_final for row in rows if row.held_hash is not None}
    return (rows[0] if rows else None), held


def _span_facts(conn: Connection, device_id: str, recs: Sequence[WireRecord]) -> list[list[Any]]:
    """The rows of :data:`_FACTS` for the batch ``recs``, by fact."""
    params = _span(device_id, recs[0].seq, recs[-1].seq)
    params["tokens"] = sorted({r.token for r in recs if r.token})
    rows = _FACTS_PG.rows(conn, params) if is_postgres(conn) else conn.execute(_FACTS, params)
    by_fact: list[list[Any]] = [[] for _ in range(USED_TOKEN + 1)]
    for row in rows:
        by_fact[row.fact].append(row)
    return by_fact


def _quarantined(rows: list[Any]) -> tuple[set[tuple[int, str]], dict[tuple[int, str], RejectReason]]:
    held: set[tuple[int, str]] = set()
    passed_over: dict[tuple[int, str], RejectReason] = {}
    for row in rows:  # (seq, hash, reason)
        held.add((row.a, row.hash))
        if row.text != "fork":
            passed_over[(row.a, row.hash)] = cast(RejectReason, row.text)
    return held, passed_over


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


def load_catalog(conn: Connection, stamps: list[Any]) -> CatalogFacts:
    """Every version's load time (``stamps``: version, loaded_at rows of :data:`_FACTS`) and
    services (bodies read only for versions this process has not parsed yet)."""
    parsed = _PARSED.setdefault(conn.engine, {})
    missing = [r.a for r in stamps if r.a not in parsed]
    if missing:
        query = sa.select(catalog_versions.c.version, catalog_versions.c.body)
        for r in conn.execute(query.where(catalog_versions.c.version.in_(missing))):
            parsed[r.version] = _offers(r.body)
    return CatalogFacts(loaded_at={r.a: r.b for r in stamps}, offers={r.a: parsed[r.a] for r in stamps})


def load_state(
    conn: Connection, device: Device, recs: Sequence[WireRecord], now_ms: int, trust: Trust | None = None
) -> BatchState:
    """What the server holds that the batch ``recs`` (consecutive seqs) touches."""
    did = device.device_id
    facts = _span_facts(conn, did, recs)
    held, passed_over = _quarantined(facts[QUARANTINED])
    lease_rows = sorted((r.a, r.b) for r in facts[LEASE])
    voided, sales = _void_targets(conn, did, recs)
    pending = sum(1 for r in recs if FinalTokens.counts(r, device.head_seq))
    return BatchState(
        device=device,
        now_ms=now_ms,
        head_seq=device.head_seq,
        head_hash=device.head_hash,
        stored={r.a: StoredRecord(r.hash, r.text) for r in facts[STORED]},
        quarantined=held,
        passed_over=passed_over,
        used_tokens={r.text for r in facts[USED_TOKEN]},
        lease_starts=[start for start, _end in lease_rows],
        lease_ends=[end for _start, end in lease_rows],
        voided=voided,
        sales=sales,
        known_gaps={r.a for r in facts[GAP]},
        finals=FinalTokens(lambda n: take_serials(conn, n), pending, device.head_seq),
        catalog=load_catalog(conn, facts[CATALOG]),
        trust=trust or Trust(),
        last_created_at=facts[LAST_CREATED][0].a,
    )


def _uses_a_leased_token(row: Any) -> bool:
    token = row["token"]
    return row["kind"] == "sale" and token is not None and not token.startswith("P")


# The head moved, nothing flagged: every accepted batch (``used`` may be 0: the same value written).
_MOVE_HEAD = Hot(
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
    if "head_seq" in changes and not flag:  # the usual batch: the statement built once
        _MOVE_HEAD.run(
            conn, {"device": device.device_id, "seq": state.head_seq, "hash": state.head_hash, "used": used}
        )
        return
    if used:  # the lease cap's count of used serials (server_stub.leases); an expression built here
        changes.update(tokens_used=devices.c.tokens_used + used)
    if changes:
        conn.execute(devices.update().where(devices.c.device_id == device.device_id).values(**changes))
