"""Wire models (sync.wire.protocol): strict types, the record a wire record stands for, JSON schema."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from sync.wire.canonical import RECORD_KEYS, genesis_hash, record_hash, sign_hash, verify_chain
from sync.wire.protocol import MAX_BATCH_RECORDS, BatchRequest, EnrollRequest, WireRecord

DEV = "0b6c1f4e-7d1a-4a52-9a3e-3f1f7c9d2e11"


def full_record(seq: int, prev: str, **extra: object) -> dict:  # type: ignore[type-arg]
    rec = {
        "seq": seq,
        "txn_id": f"0190-{seq}",
        "kind": "sale",
        "created_at": 1_790_000_000_000 + seq,
        "operator": "op1",
        "service": "ELEC_BILL",
        "amount_paise": 150_000,
        "fee_paise": 1000,
        "token": "00000010018",
        "fields": {"k_number": "210412345678"},
        "catalog_version": 1,
        "prev_hash": prev,
        **extra,
    }
    return rec


def test_wire_record_stands_for_the_signed_record() -> None:
    key = Ed25519PrivateKey.generate()
    prev = genesis_hash(DEV)
    fulls, sigs = [], []
    for seq in (1, 2, 3):
        rec = full_record(seq, prev, mobile="9876543210", aadhaar_last4="1234")
        h = record_hash(rec)
        fulls.append(rec)
        sigs.append(sign_hash(key, h))
        prev = h
    wire = [
        WireRecord.model_validate({**{k: v for k, v in r.items() if k != "prev_hash"}, "sig": s})
        for r, s in zip(fulls, sigs, strict=True)
    ]
    assert all(set(w.record()) <= RECORD_KEYS for w in wire)
    assert "sig" not in wire[0].record() and "voids_seq" not in wire[0].record()  # None is left out
    hashes = verify_chain(
        [w.record() for w in wire], [w.sig for w in wire], key.public_key(), genesis_hash(DEV)
    )
    assert hashes == [record_hash(r) for r in fulls]


def test_the_record_is_the_models_dump_without_sig_and_nones() -> None:
    for extra in (
        {},
        {"mobile": "9876543210", "fields": {}},
        {"kind": "void", "voids_seq": 1, "reason": "x"},
    ):
        rec = {k: v for k, v in full_record(2, "0" * 64, **extra).items() if k != "prev_hash"}
        wire = WireRecord.model_validate({**rec, "sig": "c2ln"})
        assert wire.record() == wire.model_dump(exclude_none=True, exclude={"sig"}) == rec


@pytest.mark.parametrize(
    "change",
    [
        {"seq": "1"},  # strings are not coerced: the hash would change
        {"seq": 0},
        {"amount_paise": 1.0},
        {"amount_paise": -1},
        {"amount_paise": 2**60},
        {"kind": "refund"},
        {"prev_hash": "ab"},  # prev_hash never travels per record
        {"hash": "ab"},
        {"unknown": 1},
        {"operator": "a\x00b"},
        {"fields": {"a": 1}},
    ],
)
def test_wire_record_is_strict(change: dict) -> None:  # type: ignore[type-arg]
    base = {k: v for k, v in full_record(1, "0" * 64).items() if k != "prev_hash"}
    base["sig"] = "AAAA"
    WireRecord.model_validate(base)
    with pytest.raises(ValidationError):
        WireRecord.model_validate({**base, **change})


def test_batch_limits() -> None:
    rec = {k: v for k, v in full_record(1, "0" * 64).items() if k != "prev_hash"} | {"sig": "AAAA"}
    BatchRequest.model_validate({"prev_hash": "0" * 64, "records": [rec]})
    with pytest.raises(ValidationError):
        BatchRequest.model_validate({"prev_hash": "0" * 64, "records": []})
    with pytest.raises(ValidationError):
        BatchRequest.model_validate({"prev_hash": "0" * 64, "records": [rec] * (MAX_BATCH_RECORDS + 1)})
    with pytest.raises(ValidationError):
        BatchRequest.model_validate({"prev_hash": "G" * 64, "records": [rec]})


def test_enroll_request_wants_a_raw_key_and_uuid() -> None:
    key = "A" * 43 + "="
    EnrollRequest(enrollment_code="ABCD-EFGH-JKLM", device_public_key=key, device_id=DEV)
    with pytest.raises(ValidationError):
        EnrollRequest(enrollment_code="x", device_public_key="A" * 44, device_id=DEV)
    with pytest.raises(ValidationError):
        EnrollRequest(enrollment_code="x", device_public_key=key, device_id="not-a-uuid")


def test_models_have_json_schemas() -> None:
    schema = BatchRequest.model_json_schema()
    assert schema["properties"]["records"]["maxItems"] == MAX_BATCH_RECORDS
