"""Receipt data validation, the signed QR and the byte stream."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps, features

import hardware
from hardware.errors import PermanentHardwareError, ReceiptError, ReceiptQRInvalid
from hardware.raster import layout_engine, needs_raster, render_text
from hardware.receipt import (
    ReceiptData,
    build_receipt,
    format_ist,
    format_rupees,
    qr_signing_bytes,
    receipt_qr_text,
    render_png,
    verify_receipt_qr,
)
from hardware.sim.escpos import EscposDecoder

MakeReceipt = Callable[..., ReceiptData]


@pytest.mark.parametrize("width", [384, 576])
@pytest.mark.parametrize("lang", ["hi", "en"])
def test_every_receipt_starts_with_init_and_ends_with_cut(
    width: int, lang: str, device_key: Ed25519PrivateKey, make_receipt: MakeReceipt
) -> None:
    out = build_receipt(make_receipt(lang=lang), width, sign=device_key.sign)
    assert out.startswith(b"\x1b@")
    assert out.endswith(b"\x1dV\x00")
    decoder = EscposDecoder(width_dots=width)
    decoder.feed(out)
    assert decoder.unknown_bytes == 0 and decoder.paper.cuts == 1
    assert all(len(line) <= width // 12 for line in decoder.paper.lines)
    assert all(r.image.width <= width for r in decoder.paper.rasters)


def test_english_receipt_rasterises_only_the_rupee_sign(
    device_key: Ed25519PrivateKey, make_receipt: MakeReceipt
) -> None:
    decoder = EscposDecoder(width_dots=576)
    decoder.feed(build_receipt(make_receipt(lang="en"), 576, sign=device_key.sign))
    assert decoder.paper.rasters == []  # no full-width raster lines in English
    assert "Total" in decoder.paper.text


def test_qr_round_trip_and_tampering(device_key: Ed25519PrivateKey, make_receipt: MakeReceipt) -> None:
    data = make_receipt()
    text = receipt_qr_text(data, device_key.sign)
    assert text.startswith("KA1|K-0042|A-017|1234|0123456789abcdef|")
    assert verify_receipt_qr(text, device_key.public_key().public_bytes_raw())["seq"] == 1234
    tampered = text.replace("|1234|", "|1235|")
    with pytest.raises(ReceiptQRInvalid, match="does not verify"):
        verify_receipt_qr(tampered, device_key.public_key())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ReceiptQRInvalid):
        verify_receipt_qr(text, other)
    for bad in ("", "hello", "KA1|a|b|c|d|e", text + "|x", text[:-10] + "!!!!!!!!!!"):
        with pytest.raises(ReceiptQRInvalid):
            verify_receipt_qr(bad, device_key.public_key())
    assert issubclass(ReceiptQRInvalid, PermanentHardwareError)


def test_qr_signature_covers_exactly_the_payload(
    device_key: Ed25519PrivateKey, make_receipt: MakeReceipt
) -> None:
    seen: list[bytes] = []

    def sign(body: bytes) -> bytes:
        seen.append(body)
        return device_key.sign(body)

    text = receipt_qr_text(make_receipt(), sign)
    assert seen == [qr_signing_bytes(make_receipt())] and text.rsplit("|", 1)[0].encode() == seen[0]


@given(token=st.from_regex(r"[A-Z0-9][A-Z0-9-]{0,11}", fullmatch=True), seq=st.integers(0, 10**9))
def test_qr_verifies_for_any_token(token: str, seq: int) -> None:
    from tests.hardware.conftest import make_receipt

    key = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    text = receipt_qr_text(make_receipt(token=token, seq=seq), key.sign)
    assert verify_receipt_qr(text, key.public_key())["token"] == token


@pytest.mark.parametrize(
    "changes",
    [
        {"citizen_ref_masked": "1234-5678-9012"},  # unmasked Aadhaar refused
        {"created_at": datetime(2025, 1, 1)},  # naive time
        {"amount_paise": -1},
        {"amount_paise": 10.5},
        {"token": "A|B"},
        {"hash_hex": "xyz"},
        {"lang": "fr"},
    ],
)
def test_bad_receipt_data_is_refused(changes: dict[str, object], make_receipt: MakeReceipt) -> None:
    with pytest.raises(ReceiptError):
        make_receipt(**changes)


def test_repr_has_no_citizen_reference(make_receipt: MakeReceipt) -> None:
    assert "1234" not in repr(make_receipt(seq=5)).replace("K-0042", "")


def test_formatting(make_receipt: MakeReceipt) -> None:
    assert format_rupees(0) == "\u20b9 0.00"
    assert format_rupees(150050) == "\u20b9 1,500.50"
    assert format_rupees(123456789) == "\u20b9 12,34,567.89"
    assert format_ist(make_receipt().created_at) == "25-11-2025 14:00 IST"


def test_render_png(tmp_path: Path, device_key: Ed25519PrivateKey, make_receipt: MakeReceipt) -> None:
    path = hardware.render_png(make_receipt(duplicate=True), 384, tmp_path / "r.png", sign=device_key.sign)
    with Image.open(path) as img:
        assert img.width == 384 and img.height > 500
    assert render_png is hardware.render_png


def test_devanagari_is_shaped_with_raqm() -> None:
    assert needs_raster("राशि") and needs_raster("\u20b9") and not needs_raster("Amount 12.00")
    if not features.check("raqm"):
        pytest.skip("Pillow built without raqm")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layout_engine().name == "RAQM"
    # with shaping, the conjunct "क्ष" is narrower than its three code points laid side by side
    shaped = ImageOps.invert(render_text("क्ष", 384, size=40).convert("L")).getbbox()
    apart = ImageOps.invert(render_text("क ् ष", 384, size=40).convert("L")).getbbox()
    assert shaped is not None and apart is not None and shaped[2] < apart[2]


def test_bad_width_refused(device_key: Ed25519PrivateKey, make_receipt: MakeReceipt) -> None:
    with pytest.raises(ReceiptError):
        build_receipt(make_receipt(), 500, sign=device_key.sign)


def test_receiptdata_is_plain(make_receipt: MakeReceipt) -> None:
    assert isinstance(make_receipt(), ReceiptData)


_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_only_the_exact_signature_encoding_verifies(
    device_key: Ed25519PrivateKey, make_receipt: MakeReceipt
) -> None:
    """64 bytes are 86 base64 characters whose last one carries 4 spare bits: its 15 twins decode
    to the same signature and were all accepted; now only the encoding written is."""
    text = receipt_qr_text(make_receipt(), device_key.sign)
    body, last = text[:-1], text[-1]
    accepted = []
    for ch in _B64URL:
        try:
            verify_receipt_qr(body + ch, device_key.public_key())
            accepted.append(ch)
        except ReceiptQRInvalid:
            pass
    assert accepted == [last]
    for padded in (text + "==", text + "=", " " + text.replace("|", "| ", 1)):
        with pytest.raises(ReceiptQRInvalid):
            verify_receipt_qr(padded, device_key.public_key())


_KEY = Ed25519PrivateKey.from_private_bytes(b"\x09" * 32)


@given(data=st.data())
def test_any_change_to_any_field_or_signature_character_is_refused(data: st.DataObject) -> None:
    """The offline receipt check: change one QR field (to anything else) or one character of the
    signature (to any other character) and the QR no longer verifies."""
    from tests.hardware.conftest import make_receipt

    token = data.draw(st.from_regex(r"[0-9]{11}|P[A-Z0-9]{1,8}-[1-9][0-9]{0,5}", fullmatch=True))
    seq = data.draw(st.integers(0, 10**12))
    text = receipt_qr_text(make_receipt(token=token, seq=seq), _KEY.sign)
    parts = text.split("|")
    assert verify_receipt_qr(text, _KEY.public_key())["seq"] == seq
    where = data.draw(st.integers(0, len(parts) - 1))
    if where == len(parts) - 1:
        i = data.draw(st.integers(0, len(parts[-1]) - 1))
        ch = data.draw(st.sampled_from(_B64URL + "=+/ .").filter(lambda c: c != parts[-1][i]))
        parts[-1] = parts[-1][:i] + ch + parts[-1][i + 1 :]
    else:
        old = parts[where]
        near = [f" {old}", f"{old} ", f"\t{old}", old.lower(), old.upper(), f"0{old}", old[:-1], old + "0"]
        new = data.draw(
            st.sampled_from(near) | st.text(st.characters(codec="utf-8", exclude_characters="|"), max_size=40)
        )
        if new == old:
            new += "0"
        parts[where] = new
    changed = "|".join(parts)
    with pytest.raises(ReceiptQRInvalid):
        verify_receipt_qr(changed, _KEY.public_key())
