"""The business rules of ingest, one at a time, against a batch state built in memory."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from server_stub.auth import Device
from server_stub.ingest import RULES
from server_stub.ingest.rules import first_broken
from server_stub.ingest.state import BatchState, FinalTokens, Sale
from sync.wire.protocol import RejectReason, WireRecord
from sync.wire.tokens import provisional_token
from sync.wire.verhoeff import token_for_serial

DEVICE_ID = "0190c1d2-0000-7000-8000-000000000001"


def _state(**facts: Any) -> BatchState:
    device = Device(
        device_id=DEVICE_ID,
        kiosk_code="K0001",
        lsp_id="LSP0001",
        public_key=Ed25519PrivateKey.generate().public_key(),
        head_seq=0,
        head_hash="0" * 64,
        flagged_at=None,
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
    }
    base.update(facts)
    finals = FinalTokens(lambda n: 1, 0, 0)
    return BatchState(device=device, now_ms=0, head_seq=0, head_hash="0" * 64, finals=finals, **base)


def _rec(**fields: Any) -> WireRecord:
    doc = {"seq": 5, "txn_id": "t1", "kind": "sale", "created_at": 1, "service": "ELEC_BILL", "sig": "AA=="}
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
    sale = Sale(token=token_for_serial(1001), final_token=None)
    state = _state(sales={2: sale}, voided={3}, used_tokens={token_for_serial(1001)})
    void: dict[str, Any] = {"kind": "void", "reason": "typo"}
    assert first_broken(state, _rec(voids_seq=2, **void)) is None
    assert first_broken(state, _rec(voids_seq=2, token=token_for_serial(1001), **void)) is None  # its sale's
    assert first_broken(state, _rec(voids_seq=2, token=token_for_serial(1700), **void)) is None
    assert first_broken(state, _rec(voids_seq=3, **void)) == "bad_void"  # voided already
    assert first_broken(state, _rec(voids_seq=4, **void)) == "bad_void"  # not a sale the server holds
    assert first_broken(state, _rec(voids_seq=5, **void)) == "bad_void"  # itself
    assert first_broken(state, _rec(**void)) == "bad_void"


def test_a_new_rule_is_a_function_in_the_list() -> None:
    def within_limit(_state: BatchState, rec: WireRecord) -> RejectReason | None:
        return "bad_record" if rec.amount_paise > 10_000_000 else None

    rules = (*RULES, within_limit)
    ok = _rec(token=token_for_serial(1500), amount_paise=10_000_000)
    assert first_broken(_state(), ok, rules) is None
    assert first_broken(_state(), _rec(token=token_for_serial(1500), amount_paise=10_000_001), rules) == (
        "bad_record"
    )
