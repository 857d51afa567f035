"""The business rules a signed, chained record must keep to be accepted.

Each rule looks at one record against what the batch knows (:class:`BatchState`) and returns the
reason to refuse it, or None. :data:`RULES` are checked in order; the first reason wins. A record
that breaks one is kept in quarantine with that reason and the chain moves past it.

The server checks what a kiosk sends against its own data, never believing it:

- the sale's token is new and the device's (a serial leased to it, or its own provisional one);
- a void names an earlier, unvoided sale and repeats its service, amount and fee;
- ``created_at`` is plausible: not more than the margin ahead of the receive time, and not before
  the device enrolled when it carries a token only an enrolled device has (a leased serial or a
  ``P<K-code>`` token; a ``PD...`` token is made before enrollment by design);
- a sale's service is in the catalog version it names (or, naming none, the one in force when it
  was made); that version was in force then (made no later than the grace period after the next
  version was loaded); its fee is that version's fee; its amount is within the service's limit.

A new rule is a function here and a line in :data:`RULES` (with any fact it needs loaded once per
batch in :mod:`server_stub.ingest.store`).
"""

from __future__ import annotations

from collections.abc import Callable

from server_stub.ingest.state import BatchState, Offer
from sync.wire.protocol import RejectReason, WireRecord
from sync.wire.tokens import is_provisional, is_provisional_of, provisional_prefixes, serial_of_token

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


def void_repeats_its_sale(state: BatchState, rec: WireRecord) -> RejectReason | None:
    if rec.kind != "void" or rec.voids_seq is None:
        return None
    sale = state.sales.get(rec.voids_seq)
    return None if sale is None or sale.matches(rec) else "bad_void"


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


def _needs_enrollment(state: BatchState, token: str | None) -> bool:
    """A token only an enrolled device can have: a leased serial, or a provisional token with its K-code."""
    if token is None:
        return False
    after_enrolling, _before = provisional_prefixes(state.device.kiosk_code, state.device.device_id)
    return token.startswith(after_enrolling) or not is_provisional(token)


def created_at_is_plausible(state: BatchState, rec: WireRecord) -> RejectReason | None:
    margin = state.trust.margin_ms
    if rec.created_at > state.now_ms + margin:
        return "time_implausible"
    if rec.created_at < state.device.enrolled_at - margin and _needs_enrollment(state, rec.token):
        return "time_implausible"
    return None


def _offer(state: BatchState, rec: WireRecord) -> Offer | None:
    version = state.catalog.version_for(rec)
    return None if version is None else state.catalog.offers.get(version, {}).get(rec.service)


def service_is_in_its_catalog(state: BatchState, rec: WireRecord) -> RejectReason | None:
    if rec.kind != "sale":
        return None
    version = state.catalog.version_for(rec)
    if version is None or version not in state.catalog.loaded_at:
        return "catalog_not_in_force"
    return None if _offer(state, rec) is not None else "unknown_service"


def catalog_was_in_force(state: BatchState, rec: WireRecord) -> RejectReason | None:
    version = state.catalog.version_for(rec)
    if rec.kind != "sale" or version is None:
        return None
    replaced = state.catalog.replaced_at(version)
    late = replaced is not None and rec.created_at > replaced + state.trust.grace_ms
    return "catalog_not_in_force" if late else None


def fee_is_the_catalogs(state: BatchState, rec: WireRecord) -> RejectReason | None:
    offer = _offer(state, rec)
    if rec.kind != "sale" or offer is None:
        return None
    return None if rec.fee_paise == offer.fee_paise else "fee_mismatch"


def amount_within_limit(state: BatchState, rec: WireRecord) -> RejectReason | None:
    offer = _offer(state, rec)
    if rec.kind != "sale" or offer is None:
        return None
    return None if rec.amount_paise <= offer.max_amount_paise else "amount_over_limit"


RULES: tuple[Rule, ...] = (
    sale_voids_nothing,
    sale_has_token,
    void_names_an_unvoided_sale,
    void_repeats_its_sale,
    token_is_new_and_ours,
    created_at_is_plausible,
    service_is_in_its_catalog,
    catalog_was_in_force,
    fee_is_the_catalogs,
    amount_within_limit,
)


def first_broken(state: BatchState, rec: WireRecord, rules: tuple[Rule, ...] = RULES) -> RejectReason | None:
    for rule in rules:
        reason = rule(state, rec)
        if reason is not None:
            return reason
    return None
