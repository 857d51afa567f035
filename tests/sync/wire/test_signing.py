"""Request signing and lease signatures (sync.wire.signing)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from sync.wire.signing import (
    HEADER_DEVICE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SignatureError,
    body_digest,
    parse_signed_headers,
    sign_lease,
    sign_request,
    signing_string,
    verify_lease,
    verify_request,
)

KEY = Ed25519PrivateKey.generate()
DEV = "0b6c1f4e-7d1a-4a52-9a3e-3f1f7c9d2e11"
NOW = 1_790_000_000


def verify(
    headers: dict[str, str],
    method: str = "POST",
    path: str = "/v1/batches",
    body: bytes = b"{}",
    now: float = NOW,
) -> None:
    verify_request(KEY.public_key(), parse_signed_headers(headers), method, path, body_digest(body), now)


def test_round_trip_and_header_shape() -> None:
    h = sign_request(KEY, DEV, "post", "/v1/batches", b"{}", now=NOW, nonce="ab" * 16)
    assert set(h) == {HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE}
    assert h[HEADER_TIMESTAMP] == str(NOW) and h[HEADER_DEVICE] == DEV and h[HEADER_NONCE] == "ab" * 16
    verify(h)
    fresh = sign_request(KEY, DEV, "GET", "/v1/catalog?since=1", now=NOW)
    assert len(fresh[HEADER_NONCE]) == 32
    verify(fresh, "GET", "/v1/catalog?since=1", b"")


def test_signing_string_is_documented_form() -> None:
    assert signing_string("get", "/p?q=1", "d" * 64, 5, "n") == f"GET\n/p?q=1\n{'d' * 64}\n5\nn".encode()


@pytest.mark.parametrize(
    "change",
    [
        {"method": "PUT"},
        {"path": "/v1/leases"},
        {"path": "/v1/batches?x=1"},
        {"body": b"{ }"},
    ],
)
def test_any_change_breaks_the_signature(change: dict) -> None:  # type: ignore[type-arg]
    h = sign_request(KEY, DEV, "POST", "/v1/batches", b"{}", now=NOW)
    with pytest.raises(SignatureError) as exc:
        verify(h, **change)
    assert exc.value.code == "bad_signature"


def test_other_key_and_window() -> None:
    h = sign_request(Ed25519PrivateKey.generate(), DEV, "POST", "/v1/batches", b"{}", now=NOW)
    with pytest.raises(SignatureError, match="does not match"):
        verify(h)
    h = sign_request(KEY, DEV, "POST", "/v1/batches", b"{}", now=NOW)
    verify(h, now=NOW + 300)
    verify(h, now=NOW - 300)
    for now in (NOW + 301, NOW - 301):
        with pytest.raises(SignatureError) as exc:
            verify(h, now=now)
        assert exc.value.code == "stale_timestamp"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        (HEADER_TIMESTAMP, "", "missing_signature"),
        (HEADER_TIMESTAMP, "12.5", "bad_timestamp"),
        (HEADER_TIMESTAMP, "-5", "bad_timestamp"),
        (HEADER_NONCE, "xyz", "bad_nonce"),
        (HEADER_SIGNATURE, "not base64!", "bad_signature"),
        (HEADER_SIGNATURE, base64.b64encode(b"short").decode(), "bad_signature"),
        (HEADER_DEVICE, "dev\nice", "unknown_device"),
    ],
)
def test_malformed_headers(field: str, value: str, code: str) -> None:
    h = sign_request(KEY, DEV, "POST", "/v1/batches", b"{}", now=NOW)
    h[field] = value
    with pytest.raises(SignatureError) as exc:
        parse_signed_headers(h)
    assert exc.value.code == code


@given(body=st.binary(max_size=512), flip=st.integers(min_value=0, max_value=4095))
def test_flipping_any_body_bit_is_caught(body: bytes, flip: int) -> None:
    h = sign_request(KEY, DEV, "POST", "/v1/batches", body, now=NOW)
    verify(h, body=body)
    if body:
        i = flip % (len(body) * 8)
        tampered = bytearray(body)
        tampered[i // 8] ^= 1 << (i % 8)
        with pytest.raises(SignatureError):
            verify(h, body=bytes(tampered))


def test_lease_signature_binds_device_and_range() -> None:
    sig = sign_lease(KEY, DEV, 1001, 1001, 2001)
    pub = KEY.public_key()
    assert verify_lease(pub, DEV, 1001, 1001, 2001, sig)
    assert not verify_lease(pub, "other", 1001, 1001, 2001, sig)
    assert not verify_lease(pub, DEV, 1001, 1001, 2002, sig)
    assert not verify_lease(pub, DEV, 1001, 1000, 2001, sig)
    assert not verify_lease(pub, DEV, 1001, 1001, 2001, "garbage")
