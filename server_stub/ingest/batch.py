"""Ingest of a batch of chained, signed records from one device, in one transaction.

Per record (see :mod:`sync.wire.protocol` for the statuses and reasons, and
:mod:`server_stub.ingest.classify` for the order of the checks):

- the server holds this seq with the same hash -> ``duplicate``;
- it holds this seq with another hash, or the record extends a chain that diverged from the
  server's -> a **fork**: the record is kept in ``quarantine``, the device is flagged, the ack is
  ``rejected``/``fork``;
- seq == head + 1 and the chain continues from the server's head -> the business rules
  (:mod:`server_stub.ingest.rules`), then ``accepted`` (a provisional token gets a
  ``final_token`` from the global serial space);
- seq > head + 1 -> ``rejected``/``gap`` (or ``blocked`` after a rejection in the same batch);
  the response's ``head`` says where to resend from.
- a record that is signed and continues the chain but breaks a business rule (its token is not
  leased to the device, already used, malformed; a bad void) -> ``rejected`` with that reason,
  kept in ``quarantine`` with the reason, **and the chain moves past it**: the device's later
  records are still accepted, and resending it gets the same answer. Without this, one bad
  record would block the kiosk for ever.

How a batch is received (:func:`receive`), on one pooled connection:

1. a read-only snapshot (deferred on SQLite: it never waits for a writer) in one statement: the
   device row joined with the hashes the server already holds for the batch's seqs (one
   statement, so on PostgreSQL too the head it reads is that of the hashes it reads);
2. with no transaction open: the request signature, and the chain recomputed
   (:func:`sync.wire.canonical.chain_links`, the check the kiosk's side uses too) with every
   record's signature verified **except** those already stored with the same hash (records are
   never deleted, so a hash seen stored is stored still): a resend costs hashing, not verifying,
   and a batch held in full is answered from the snapshot (it writes only the nonce: one
   statement, in autocommit on PostgreSQL);
3. one write transaction: the device's head and flags read again and its row locked
   (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite) so a resent or concurrent batch of
   the same device is answered from committed state, with the nonce (one statement on
   PostgreSQL); what the server holds; each record classified; the rows written.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection, Engine

from server_stub.auth import Device, DeviceAuthenticator, SignedCall
from server_stub.db import read_only, single_write
from server_stub.errors import Unprocessable
from server_stub.ingest.classify import classify
from server_stub.ingest.state import Trust
from server_stub.ingest.store import load_state, snapshot, write_batch
from sync.wire.canonical import ChainLink, chain_links
from sync.wire.protocol import BatchRequest, BatchResponse, Head, RecordAck, WireRecord


def _check_shape(recs: Sequence[WireRecord]) -> None:
    first = recs[0].seq
    if any(r.seq != first + i for i, r in enumerate(recs)):
        raise Unprocessable(
            "the records of a batch must have consecutive seqs, oldest first", code="bad_batch"
        )


def _links(device: Device, batch: BatchRequest, known: set[str]) -> list[ChainLink]:
    recs = batch.records
    return chain_links(
        [r.record() for r in recs], [r.sig for r in recs], device.public_key, batch.prev_hash, known
    )


def _all_duplicates(
    device: Device, links: list[ChainLink], known: dict[str, str | None]
) -> BatchResponse | None:
    """The answer to a batch the server holds in full (a resend whose acks were lost), from the
    snapshot alone; None when any record is new."""
    if not all(link.hash in known for link in links):
        return None
    acks = [
        RecordAck(seq=link.record["seq"], status="duplicate", final_token=known[link.hash])
        for link in links
        if link.record is not None
    ]
    head = Head(seq=device.head_seq, hash=device.head_hash)
    return BatchResponse(acks=acks, head=head, flagged=device.flagged_at is not None)


def receive(
    engine: Engine,
    auth: DeviceAuthenticator,
    call: SignedCall,
    batch: BatchRequest,
    now: float,
    trust: Trust | None = None,
) -> BatchResponse:
    """Authenticate and ingest a signed ``POST /v1/batches`` (the steps of the module docstring)."""
    _check_shape(batch.records)
    signed = auth.admit(call, now)
    with engine.connect() as conn:
        with read_only(conn):  # one statement: the head it reads is that of the hashes it reads
            row, known = snapshot(conn, signed.device_id, batch.records[0].seq, batch.records[-1].seq)
        device = auth.verify_row(row, call, now, signed)
        links = _links(device, batch, set(known))  # the expensive part, with no transaction open
        resent = _all_duplicates(device, links, known)
        if resent is not None:  # nothing to decide: only the nonce is written
            with single_write(conn):
                auth.remember_nonce(conn, signed, now)
            return resent
        with conn.begin():
            locked = auth.relock_and_remember(conn, device, signed, now)
            return ingest_links(conn, locked, batch, links, int(now * 1000), trust)


def ingest_batch(
    conn: Connection, device: Device, batch: BatchRequest, now_ms: int, trust: Trust | None = None
) -> BatchResponse:
    """Answer and store ``batch`` from ``device`` (read, locked, in ``conn``'s transaction), with
    the server's tolerances ``trust`` (:meth:`Trust.of` the config; the defaults when None)."""
    _check_shape(batch.records)
    return ingest_links(conn, device, batch, _links(device, batch, set()), now_ms, trust)


def ingest_links(
    conn: Connection,
    device: Device,
    batch: BatchRequest,
    links: list[ChainLink],
    now_ms: int,
    trust: Trust | None = None,
) -> BatchResponse:
    """:func:`ingest_batch` with the chain already recomputed."""
    recs = batch.records
    state = load_state(conn, device, recs, now_ms, trust)
    acks: list[RecordAck] = []
    for rec, link in zip(recs, links, strict=True):
        acks.append(classify(state, rec, link, acks[-1] if acks else None))
        state.finals.passed(rec)
    write_batch(conn, state)
    flagged = device.flagged_at is not None or state.fork_seq is not None
    return BatchResponse(acks=acks, head=Head(seq=state.head_seq, hash=state.head_hash), flagged=flagged)
