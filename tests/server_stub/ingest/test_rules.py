"""The business rules of ingest, one at a time, against a batch state built in memory."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.auth import Device
from server_stub.ingest import RULES
from server_stub.ingest.rules import first_broken
from server_stub.ingest.state import BatchState, CatalogFacts, FinalTokens, Offer, Sale, Trust
from sync.wire.protocol import RejectReason, WireRecord
from sync.wire.tokens import provisional_token
from sync.wire.verhoeff import token_for_serial

DEVICE_ID = "0190c1d2-0000-7000-8000-000000000001"
HOUR = 3_600_000
ENROLLED = 100 * HOUR
NOW = 200 * HOUR  # when the batch is received
V2_LOADED = 150 * HOUR
# v1: ELEC_BILL at Rs 10, up to Rs 2 lakh; v2 (loaded at V2_LOADED): Rs 12, and no WATER_BILL
CATALOG = CatalogFacts(
    loaded_at={1: 0, 2: V2_LOADED},
    offers={
        1: {"ELEC_BILL": Offer(1000, 20_000_000), "WATER_BILL": Offer(1000, 5_000_000)},
        2: {"ELEC_BILL": Offer(1200, 20_000_000)},
    },
)
TRUST = Trust(grace_ms=72 * HOUR, margin_ms=HOUR, tolerance_ms=300_000)


def _state(**facts: Any) -> BatchState:
    device = Device(
        device_id=DEVICE_ID,
        kiosk_code="K0001",
        lsp_id="LSP0001",
        public_key=Ed25519PrivateKey.generate().public_key(),
        head_seq=0,
        head_hash="0" * 64,
        flagged_at=None,
        enrolled_at=ENROLLED,
    )
    base: dict[str, Any] = {
        "stored": {},
        "quarantined": set(),
        "passed_over": {},
        "used_tokens": set(),
        "lease_starts": [1000],
        "lease_ends": [2000],
        "voided": set(),
        "sales": {},
        "known_gaps": set(),
        "now_ms": NOW,
    }
    base.update(facts)
    finals = FinalTokens(lambda n: 1, 0, 0)
    return BatchState(
        device=device,
        head_seq=0,
        head_hash="0" * 64,
        finals=finals,
        catalog=CATALOG,
        trust=TRUST,
        **base,
    )


def _rec(**fields: Any) -> WireRecord:
    doc = {
        "seq": 5,
        "txn_id": "t1",
        "kind": "sale",
        "created_at": 120 * HOUR,
        "service": "ELEC_BILL",
        "fee_paise": 1000,
        "catalog_version": 1,
        "sig": "AA==",
    }
    doc.update(fields)
    return WireRecord.model_validate(doc)


def test_a_sale_needs_a_new_token_of_its_own_lease_or_kiosk() -> None:
    state = _state(used_tokens={token_for_serial(1001)})
    assert first_broken(state, _rec(token=token_for_serial(1500))) is None
    assert first_broken(state, _rec()) == "missing_token"
    assert first_broken(state, _rec(token=token_for_serial(1001))) == "token_used"
    assert first_broken(state, _rec(token=token_for_serial(2000))) == "token_not_leased"
    assert first_broken(state, _rec(token="12345678901")) == "bad_token"
    assert first_broken(state, _rec(token=provisional_token("K0001", DEVICE_ID, 5))) is None
    assert (
        first_broken(state, _rec(token=provisional_token("K0002", DEVICE_ID, 5))) == "bad_provisional_token"
    )


def test_rules_run_in_order_and_the_first_reason_wins() -> None:
    # a sale that names a seq to void and has no token breaks two rules: the first listed wins
    assert first_broken(_state(), _rec(voids_seq=2)) == "bad_record"


def test_a_void_names_an_earlier_sale_not_yet_voided() -> None:
    sale = Sale(
        token=token_for_serial(1001), final_token=None, service="ELEC_BILL", amount_paise=0, fee_paise=1000
    )
    state = _state(sales={2: sale}, voided={3}, used_tokens={token_for_serial(1001)})
    void: dict[str, Any] = {"kind": "void", "reason": "typo"}
    assert first_broken(state, _rec(voids_seq=2, **void)) is None
    assert first_broken(state, _rec(voids_seq=2, token=token_for_serial(1001), **void)) is None  # its sale's
    assert first_broken(state, _rec(voids_seq=2, token=token_for_serial(1700), **void)) is None
    assert first_broken(state, _rec(voids_seq=3, **void)) == "bad_void"  # voided already
    assert first_broken(state, _rec(voids_seq=4, **void)) == "bad_void"  # not a sale the server holds
    assert first_broken(state, _rec(voids_seq=5, **void)) == "bad_void"  # itself
    assert first_broken(state, _rec(**void)) == "bad_void"
    # a void repeats its sale: another amount, fee or service is not that sale's void
    assert first_broken(state, _rec(voids_seq=2, amount_paise=99, **void)) == "bad_void"
    assert first_broken(state, _rec(voids_seq=2, fee_paise=1, **void)) == "bad_void"
    assert first_broken(state, _rec(voids_seq=2, service="WATER_BILL", **void)) == "bad_void"


def _sale(**fields: Any) -> WireRecord:
    return _rec(token=token_for_serial(1500), **fields)


def test_a_sale_is_checked_against_the_catalog_version_it_names() -> None:
    state = _state()
    assert first_broken(state, _sale()) is None
    assert first_broken(state, _sale(service="NO_SUCH")) == "unknown_service"
    assert first_broken(state, _sale(fee_paise=10**12)) == "fee_mismatch"  # a forged fee
    assert first_broken(state, _sale(fee_paise=1200)) == "fee_mismatch"  # v2's fee, naming v1
    assert first_broken(state, _sale(fee_paise=1200, catalog_version=2, created_at=V2_LOADED)) is None
    assert first_broken(state, _sale(amount_paise=20_000_000)) is None
    assert first_broken(state, _sale(amount_paise=20_000_001)) == "amount_over_limit"
    assert first_broken(state, _sale(catalog_version=9)) == "catalog_not_in_force"  # never loaded
    assert first_broken(state, _sale(service="WATER_BILL", catalog_version=2, created_at=V2_LOADED)) == (
        "unknown_service"  # v2 dropped it
    )


def test_a_replaced_catalog_is_accepted_for_the_grace_period_only() -> None:
    state = _state(now_ms=V2_LOADED + 80 * HOUR)
    assert first_broken(state, _sale(created_at=V2_LOADED + 72 * HOUR)) is None  # pulled late: still fine
    assert first_broken(state, _sale(created_at=V2_LOADED + 72 * HOUR + 1)) == "catalog_not_in_force"


def test_a_sale_naming_no_version_is_checked_against_the_one_in_force_when_made() -> None:
    state = _state()
    assert first_broken(state, _sale(catalog_version=None)) is None  # made before v2: v1, Rs 10
    late = _sale(catalog_version=None, created_at=V2_LOADED + HOUR)
    assert first_broken(state, late) == "fee_mismatch"
    assert (
        first_broken(state, _sale(catalog_version=None, created_at=V2_LOADED + HOUR, fee_paise=1200)) is None
    )


def test_created_at_must_be_plausible() -> None:
    state = _state()
    assert first_broken(state, _sale(created_at=NOW + HOUR)) is None  # within the margin
    assert first_broken(state, _sale(created_at=NOW + HOUR + 1)) == "time_implausible"
    # a leased token, or a provisional token with the K-code, before the device enrolled: impossible
    assert first_broken(state, _sale(created_at=ENROLLED - HOUR - 1)) == "time_implausible"
    kcode = _rec(token=provisional_token("K0001", DEVICE_ID, 5), created_at=ENROLLED - 2 * HOUR)
    assert first_broken(state, kcode) == "time_implausible"
    # ... but a kiosk may sell offline before it enrolls, with a PD<device> provisional token
    before = _rec(token=provisional_token(None, DEVICE_ID, 5), created_at=ENROLLED - 20 * HOUR)
    assert first_broken(state, before) is None


def test_clock_suspect_counts_what_is_plausible_but_odd() -> None:
    state = _state(last_created_at=120 * HOUR)
    assert not state.clock_suspect(_sale(created_at=120 * HOUR - 300_000))  # within the tolerance
    assert state.clock_suspect(_sale(created_at=120 * HOUR - 300_001))  # the clock stepped back
    assert not state.clock_suspect(_sale(created_at=NOW + 300_000))
    assert state.clock_suspect(_sale(created_at=NOW + 300_001))  # ahead of the server, within the margin


def test_a_new_rule_is_a_function_in_the_list() -> None:
    def within_limit(_state: BatchState, rec: WireRecord) -> RejectReason | None:
        return "bad_record" if rec.amount_paise > 10_000_000 else None

    rules = (*RULES, within_limit)
    ok = _rec(token=token_for_serial(1500), amount_paise=10_000_000)
    assert first_broken(_state(), _rec(token=token_for_serial(1500), amount_paise=10_000_001)) is None
    assert first_broken(_state(), ok, rules) is None
    assert first_broken(_state(), _rec(token=token_for_serial(1500), amount_paise=10_000_001), rules) == (
        "bad_record"
    )
