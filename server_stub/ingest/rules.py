"""The business rules a signed, chained record must keep to be accepted.

Each rule looks at one record against what the batch knows (:class:`BatchState`) and returns the
reason to refuse it, or None. :data:`RULES` are checked in order; the first reason wins. A record
that breaks one is kept in quarantine with that reason and the chain moves past it.

A new rule is a function here and a line in :data:`RULES` (with any fact it needs loaded once per
batch in :mod:`server_stub.ingest.store`).
"""

from __future__ import annotations

from collections.abc import Callable

from server_stub.ingest.state import BatchState
from sync.wire.protocol import RejectReason, WireRecord
from sync.wire.tokens import is_provisional, is_provisional_of, serial_of_token

Rule = Callable[[BatchState, WireRecord], RejectReason | None]


def new_token(state: BatchState, rec: WireRecord) -> str | None:
    """The token this record uses for the first time (a void may repeat its sale's tokens)."""
    if rec.token is None:
        return None
    if rec.kind == "void" and rec.voids_seq is not None:
        sale = state.sales.get(rec.voids_seq)
        if sale is not None and rec.token in (sale.token, sale.final_token):
            return None
    return rec.token


def sale_voids_nothing(_state: BatchState, rec: WireRecord) -> RejectReason | None:
    return "bad_record" if rec.kind == "sale" and rec.voids_seq is not None else None


def sale_has_token(_state: BatchState, rec: WireRecord) -> RejectReason | None:
    return "missing_token" if rec.kind == "sale" and rec.token is None else None


def void_names_an_unvoided_sale(state: BatchState, rec: WireRecord) -> RejectReason | None:
    if rec.kind != "void":
        return None
    target = rec.voids_seq
    if target is None or target >= rec.seq or target in state.voided or target not in state.sales:
        return "bad_void"
    return None


def token_is_new_and_ours(state: BatchState, rec: WireRecord) -> RejectReason | None:
    """Not used before; a provisional token of this kiosk, or a serial leased to this device."""
    token = new_token(state, rec)
    if token is None:
        return None
    if token in state.used_tokens:
        return "token_used"
    if is_provisional(token):
        ours = is_provisional_of(token, state.device.kiosk_code, state.device.device_id)
        return None if ours else "bad_provisional_token"
    serial = serial_of_token(token)
    if serial is None:
        return "bad_token"
    return None if state.in_lease(serial) else "token_not_leased"


RULES: tuple[Rule, ...] = (
    sale_voids_nothing,
    sale_has_token,
    void_names_an_unvoided_sale,
    token_is_new_and_ours,
)


def first_broken(state: BatchState, rec: WireRecord, rules: tuple[Rule, ...] = RULES) -> RejectReason | None:
    for rule in rules:
        reason = rule(state, rec)
        if reason is not None:
            return reason
    return None
