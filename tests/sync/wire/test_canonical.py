from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from sync.wire import canonical, sealing

json_values = st.recursive(
    st.integers(min_value=-(2**53), max_value=2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_canonical_json_round_trips_and_is_stable(value: object) -> None:
    data = canonical.canonical_json(value)
    back = json.loads(data.decode("utf-8"))
    assert back == value
    assert canonical.canonical_json(back) == data


@given(json_values)
def test_canonical_json_is_the_json_dumps_it_always_was(value: object) -> None:
    """The encoder built once gives the bytes ``json.dumps`` gave with the same arguments."""
    dumped = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical.canonical_json(value) == dumped.encode("utf-8")


# Wider than what records hold: any integer (orjson stops at 64 bits), any code point (control
# characters, U+2028, lone surrogates, astral planes), keys of any text, nesting.
any_json_values = st.recursive(
    st.integers() | st.text(alphabet=st.characters(exclude_categories=()), max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(exclude_categories=()), max_size=8), inner, max_size=4
        )
    ),
    max_leaves=16,
)


def _reference(value: object) -> bytes:
    """The canonical form as it was defined: json.dumps with these arguments, as UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@given(any_json_values)
def test_canonical_json_is_byte_for_byte_the_reference(value: object) -> None:
    """The fast encoder gives the reference's bytes, or the reference's error (a lone surrogate
    cannot be UTF-8), for anything made of ints, strs, lists and dicts."""
    try:
        expected: bytes | type[BaseException] = _reference(value)
    except UnicodeEncodeError:
        expected = UnicodeEncodeError
    if expected is UnicodeEncodeError:
        with pytest.raises(UnicodeEncodeError):
            canonical.canonical_json(value)
    else:
        assert canonical.canonical_json(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**64, "neg": -(2**63) - 1, "max": 2**63 - 1, "umax": 2**64 - 1},
        {"s": '\x00\x1f\x7f\u2028\u2029"\\/\b\f\n\r\t é हिंदी \U0001f600'},
        {"\u0905": 1, "a": 2, "Z": 3, "\U0001f600": 4, "\uffff": 5, "": 6},
    ],
)
def test_canonical_json_edge_values_are_the_reference(value: object) -> None:
    assert canonical.canonical_json(value) == _reference(value)


@pytest.mark.parametrize("depth", [70, 300])  # orjson's own limit is 254 levels
def test_deep_nesting_is_the_reference(depth: int) -> None:
    value: object = 1
    for _ in range(depth):
        value = [value]
    assert canonical.canonical_json(value) == _reference(value)


def test_canonical_form_is_exact() -> None:
    assert canonical.canonical_json({"b": 1, "a": [1, "अ"], "c": {"z": 0, "y": -2}}) == (
        '{"a":[1,"अ"],"b":1,"c":{"y":-2,"z":0}}'.encode()
    )


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=2, max_size=6))
def test_key_order_does_not_matter(d: dict[str, int]) -> None:
    assert canonical.canonical_json(d) == canonical.canonical_json(dict(reversed(list(d.items()))))


@pytest.mark.parametrize(
    "bad",
    [1.5, None, True, {"a": [1, 2.0]}, {1: 2}, {"a": {"b": False}}, {"a": None}, {"a": 1.0}, [{"x": True}]],
)
def test_values_without_canonical_form_are_refused(bad: object) -> None:
    with pytest.raises(canonical.CanonicalError):
        canonical.canonical_json(bad)


def test_chain_verification_names_the_bad_record() -> None:
    key = Ed25519PrivateKey.generate()
    prev = canonical.genesis_hash("dev-1")
    recs, sigs = [], []
    p = prev
    for seq in range(1, 4):
        rec = {"seq": seq, "kind": "sale", "service": "X", "amount_paise": seq}
        h = canonical.record_hash(dict(rec, prev_hash=p))
        recs.append(rec)
        sigs.append(canonical.sign_hash(key, h))
        p = h
    assert canonical.verify_chain(recs, sigs, key.public_key(), prev)[-1] == p
    recs[1]["amount_paise"] = 99
    with pytest.raises(canonical.CanonicalError, match="seq 2"):
        canonical.verify_chain(recs, sigs, key.public_key(), prev)
    with pytest.raises(canonical.CanonicalError, match="unknown record keys"):
        canonical.record_hash({"prev_hash": "x", "colour": "red"})


def test_sealing_round_trip_and_tamper() -> None:
    priv, pub = sealing.new_keypair()
    box = sealing.seal(pub, "234567890124")
    assert sealing.open_sealed(priv, box) == "234567890124"
    assert sealing.seal(pub, "234567890124") != box  # fresh ephemeral key each time
    other, _ = sealing.new_keypair()
    with pytest.raises(InvalidTag):
        sealing.open_sealed(other, box)
