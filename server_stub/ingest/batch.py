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

The caller authenticates the device inside the same transaction, reading its row once and
locking it (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite), so a resent or concurrent
batch of the same device is answered from committed state: any resend is idempotent.

Steps: check the batch's shape, recompute the chain (:func:`sync.wire.canonical.chain_links`,
the check the kiosk's side uses too), load what the server holds, classify each record, write.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection

from server_stub.auth import Device
from server_stub.errors import Unprocessable
from server_stub.ingest.classify import classify
from server_stub.ingest.state import Trust
from server_stub.ingest.store import load_state, write_batch
from sync.wire.canonical import chain_links
from sync.wire.protocol import BatchRequest, BatchResponse, Head, RecordAck


def ingest_batch(
    conn: Connection, device: Device, batch: BatchRequest, now_ms: int, trust: Trust | None = None
) -> BatchResponse:
    """Answer and store ``batch`` from ``device`` (read, locked, in ``conn``'s transaction), with
    the server's tolerances ``trust`` (:meth:`Trust.of` the config; the defaults when None)."""
    recs = batch.records
    first = recs[0].seq
    if any(r.seq != first + i for i, r in enumerate(recs)):
        raise Unprocessable(
            "the records of a batch must have consecutive seqs, oldest first", code="bad_batch"
        )
    links = chain_links([r.record() for r in recs], [r.sig for r in recs], device.public_key, batch.prev_hash)
    state = load_state(conn, device, recs, now_ms, trust)
    acks: list[RecordAck] = []
    for rec, link in zip(recs, links, strict=True):
        acks.append(classify(state, rec, link, acks[-1] if acks else None))
        state.finals.passed(rec)
    write_batch(conn, state)
    flagged = device.flagged_at is not None or state.fork_seq is not None
    return BatchResponse(acks=acks, head=Head(seq=state.head_seq, hash=state.head_hash), flagged=flagged)
