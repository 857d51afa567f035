"""Receipts: the data, the signed QR, the ESC/POS bytes and a PNG preview.

Layout for 58 mm (384 dots, 32 columns of Font A) and 80 mm (576 dots, 48 columns).
Plain ASCII lines go to the printer as text; lines holding Devanagari or the
rupee sign (which printer code pages lack) are rasterised (``GS v 0``).

The QR carries ``KA1|<kiosk>|<token>|<seq>|<hash first 16 hex>|<signature>``.
The signature is the device's Ed25519 signature over the QR text before the
last ``|`` (so anyone holding the device's public key can check a receipt from
the QR alone), encoded as unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from hardware.errors import ReceiptError, ReceiptQRInvalid
from hardware.escpos_lib import Dummy
from hardware.raster import esc_star_24, render_inline, render_text
from hardware.rupees import format_rupees

IST = timezone(timedelta(hours=5, minutes=30), "IST")
QR_VERSION = "KA1"
HASH_PREFIX_LEN = 16
WIDTHS = (384, 576)
FONT_A_DOTS = 12  # Font A is 12 x 24 dots on both paper widths

Sign = Callable[[bytes], bytes]
Lang = Literal["hi", "en"]

_FIELD_OK = set(string.ascii_letters + string.digits + "-_/.:")


@dataclass(frozen=True)
class ReceiptData:
    """Everything printed on a receipt.  Money in paise; ``created_at`` an aware UTC datetime.

    ``citizen_ref_masked`` must already be masked (at most 4 digits shown).
    ``lang="hi"`` prints Hindi and English; ``lang="en"`` English only.
    """

    kiosk_code: str
    token: str
    seq: int
    service_en: str
    service_hi: str
    amount_paise: int
    fee_paise: int
    created_at: datetime
    citizen_ref_masked: str
    hash_hex: str
    duplicate: bool = False
    lang: Lang = "hi"

    def __post_init__(self) -> None:
        for name in ("kiosk_code", "token"):
            value = getattr(self, name)
            if not value or len(value) > 32 or not set(value) <= _FIELD_OK:
                raise ReceiptError(f"Receipt {name} must be 1-32 characters of A-Z, 0-9 and -_/.:")
        if not isinstance(self.seq, int) or self.seq < 0:
            raise ReceiptError("Receipt seq must be a non-negative integer.")
        for name in ("amount_paise", "fee_paise"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ReceiptError(f"Receipt {name} must be a non-negative integer number of paise.")
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise ReceiptError("Receipt created_at must be timezone-aware (UTC).")
        if len(self.hash_hex) < HASH_PREFIX_LEN or not re.fullmatch(r"[0-9a-fA-F]+", self.hash_hex):
            raise ReceiptError(f"Receipt hash_hex must be at least {HASH_PREFIX_LEN} hex digits.")
        if sum(ch.isdigit() for ch in self.citizen_ref_masked) > 4:
            raise ReceiptError("Receipt citizen reference must be masked (at most 4 digits visible).")
        if not self.citizen_ref_masked.isascii():
            raise ReceiptError("Receipt citizen reference must be ASCII (e.g. XXXX-XXXX-1234).")
        if self.lang not in ("hi", "en"):
            raise ReceiptError('Receipt lang must be "hi" or "en".')
        if not self.service_en.isascii():
            raise ReceiptError("Receipt service_en must be ASCII.")

    def __repr__(self) -> str:
        return (
            f"ReceiptData(kiosk_code={self.kiosk_code!r}, token={self.token!r}, seq={self.seq}, "
            f"amount_paise={self.amount_paise}, fee_paise={self.fee_paise}, duplicate={self.duplicate})"
        )


# --- QR ------------------------------------------------------------------------------------------


def qr_signing_bytes(data: ReceiptData) -> bytes:
    """The bytes the device signs: the QR text without its last ``|signature`` part."""
    fields = [QR_VERSION, data.kiosk_code, data.token, str(data.seq), data.hash_hex[:HASH_PREFIX_LEN].lower()]
    return "|".join(fields).encode("ascii")


def receipt_qr_text(data: ReceiptData, sign: Sign) -> str:
    body = qr_signing_bytes(data)
    sig = sign(body)
    if len(sig) != 64:
        raise ReceiptError("The signing function must return a 64-byte Ed25519 signature.")
    return body.decode("ascii") + "|" + base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii")


def _public_key(key: Ed25519PublicKey | bytes) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes | bytearray) and len(key) == 32:
        return Ed25519PublicKey.from_public_bytes(bytes(key))
    raise ValueError("public_key must be an Ed25519PublicKey or 32 raw bytes")


_SIG_B64 = re.compile(r"[A-Za-z0-9_-]{86}")


def parse_receipt_qr(text: str) -> dict[str, Any]:
    """The fields of a receipt QR in its exact form (no key needed: the kiosk code says whose key
    to check it with). Raises :class:`ReceiptQRInvalid`."""
    parts = text.rstrip("\r\n").split("|")  # a scanner's line end; nothing else is forgiven
    if len(parts) != 6 or parts[0] != QR_VERSION:
        raise ReceiptQRInvalid(f"Not a kiosk receipt QR (expected 6 fields starting with {QR_VERSION}).")
    _, kiosk, token, seq, hash_prefix, sig_b64 = parts
    if not kiosk or not token or not set(kiosk + token) <= _FIELD_OK:
        raise ReceiptQRInvalid("Receipt QR has a malformed kiosk code or token.")
    if not re.fullmatch(r"0|[1-9][0-9]{0,17}", seq) or not re.fullmatch(r"[0-9a-f]{16}", hash_prefix):
        raise ReceiptQRInvalid("Receipt QR has a malformed sequence number or hash prefix.")
    # 64 bytes are exactly 86 unpadded URL-safe characters; the last one carries 2 spare bits, so
    # only the encoding this module writes is accepted (re-encode and compare), not its 15 twins.
    if not _SIG_B64.fullmatch(sig_b64):
        raise ReceiptQRInvalid("Receipt QR signature is not 86 characters of URL-safe base64.")
    try:
        sig = base64.urlsafe_b64decode(sig_b64 + "==")
    except (binascii.Error, ValueError) as exc:
        raise ReceiptQRInvalid("Receipt QR signature is not valid base64.") from exc
    if len(sig) != 64 or base64.urlsafe_b64encode(sig).rstrip(b"=").decode("ascii") != sig_b64:
        raise ReceiptQRInvalid("Receipt QR signature is not in its exact encoding.")
    return {
        "version": QR_VERSION,
        "kiosk_code": kiosk,
        "token": token,
        "seq": int(seq),
        "hash_prefix": hash_prefix,
        "signed": "|".join(parts[:5]).encode("ascii"),
        "sig": sig,
    }


def verify_receipt_qr(text: str, public_key: Ed25519PublicKey | bytes) -> dict[str, Any]:
    """Check a scanned receipt QR.  Returns its fields; raises :class:`ReceiptQRInvalid`."""
    key = _public_key(public_key)
    doc = parse_receipt_qr(text)
    try:
        key.verify(doc.pop("sig"), doc.pop("signed"))
    except InvalidSignature as exc:
        raise ReceiptQRInvalid(
            "Receipt QR signature does not verify: the receipt was altered or comes from another kiosk."
        ) from exc
    return doc


# --- formatting ----------------------------------------------------------------------------------


def format_ist(when: datetime) -> str:
    return when.astimezone(IST).strftime("%d-%m-%Y %H:%M IST")


# --- ESC/POS -------------------------------------------------------------------------------------


class _Builder:
    """Collects ESC/POS bytes via python-escpos's Dummy printer."""

    def __init__(self, width_dots: int) -> None:
        if width_dots not in WIDTHS:
            raise ReceiptError(f"Paper width must be one of {WIDTHS} dots, not {width_dots}.")
        self.width = width_dots
        self.cols = width_dots // FONT_A_DOTS
        self.p = Dummy()
        # a private copy of the profile so that setting the paper width does not leak to other printers
        self.p.profile = copy.copy(self.p.profile)
        self.p.profile.profile_data = copy.deepcopy(self.p.profile.profile_data)
        self.p.profile.profile_data["media"]["width"]["pixels"] = width_dots

    def text(self, line: str, **style: Any) -> None:
        if style:
            self.p.set(**style)
        mult = style.get("width", 1) if style.get("custom_size") else 2 if style.get("double_width") else 1
        for chunk in _wrap_ascii(line, self.cols // mult):
            self.p.textln(chunk)
        if style:
            self.p.set(normal_textsize=True, bold=False, invert=False)

    def image(self, img: Image.Image) -> None:
        self.p.image(img, impl="bitImageRaster", center=False)

    def row(
        self, left: list[str | Image.Image], right: list[str | Image.Image], *, bold: bool = False
    ) -> None:
        """One text line mixing ASCII and inline 24-dot images: ``left`` flush left, ``right`` flush right."""

        def cells(parts: list[str | Image.Image]) -> int:
            return sum(len(x) if isinstance(x, str) else x.width // FONT_A_DOTS for x in parts)

        pad = self.cols - cells(left) - cells(right)
        parts: list[str | Image.Image]
        if pad >= 1:
            parts = [*left, " " * pad, *right]
        else:  # too long for one line: value on its own line, right-aligned
            parts = [*left, "\n", " " * max(self.cols - cells(right), 0), *right]
        self.p.set(align="left", bold=bold)
        for part in parts:
            if isinstance(part, str):
                self.p.text(part)
            else:
                self.p._raw(esc_star_24(part))
        self.p.text("\n")
        if bold:
            self.p.set(bold=False)

    def rule(self) -> None:
        self.p.set(align="left")
        self.p.textln("-" * self.cols)


def _wrap_ascii(line: str, cols: int) -> list[str]:
    if len(line) <= cols:
        return [line]
    out: list[str] = []
    current = ""
    for word in line.split(" "):
        while len(word) > cols:
            if current:
                out.append(current)
                current = ""
            out.append(word[:cols])
            word = word[cols:]
        candidate = f"{current} {word}" if current else word
        if len(candidate) > cols:
            out.append(current)
            current = word
        else:
            current = candidate
    if current:
        out.append(current)
    return out


def _token_size(token: str, cols: int) -> int:
    for mult in (4, 3, 2):
        if len(token) * mult <= cols:
            return mult
    return 1


def build_receipt(data: ReceiptData, width_dots: int, *, sign: Sign) -> bytes:
    """The complete ESC/POS job: starts with ESC @, ends with a paper cut (GS V)."""
    b = _Builder(width_dots)
    hi = data.lang == "hi"
    size = 24 if width_dots == 384 else 28
    p = b.p
    p.hw("INIT")  # ESC @
    p.set(align="center")
    b.text("e-Mitra", bold=True, double_height=True, double_width=True)
    p.set(align="center")
    b.text(f"Kiosk {data.kiosk_code}")
    if data.duplicate:
        p.set(align="center")
        b.text(" DUPLICATE ", bold=True, invert=True, double_height=True, double_width=True)
        if hi:
            b.image(
                render_text("प्रतिलिपि (दोबारा छपी रसीद)", width_dots, size=size, align="center", bold=True)
            )
    b.rule()
    p.set(align="center")
    if hi:
        b.image(render_text("टोकन / TOKEN", width_dots, size=size, align="center"))
    else:
        b.text("TOKEN")
    p.set(align="center")
    mult = _token_size(data.token, b.cols)
    b.text(data.token, bold=True, custom_size=True, width=mult, height=mult)
    b.rule()
    p.set(align="left")
    b.text(f"Service: {data.service_en}")
    if hi and data.service_hi:
        b.image(render_text(f"सेवा: {data.service_hi}", width_dots, size=size))
    rupee = render_inline("\u20b9", cell=FONT_A_DOTS * 2, size=24)
    for hindi, english, paise, bold in (
        ("राशि", "Amount", data.amount_paise, False),
        ("शुल्क", "Fee", data.fee_paise, False),
        ("कुल", "Total", data.amount_paise + data.fee_paise, True),
    ):
        label: list[str | Image.Image] = (
            [render_inline(hindi, bold=bold), f" / {english}"] if hi else [english]
        )
        b.row(label, [rupee, format_rupees(paise).removeprefix("\u20b9")], bold=bold)
    b.rule()
    p.set(align="left")
    b.text(f"Time: {format_ist(data.created_at)}")
    b.text(f"Citizen: {data.citizen_ref_masked}")
    b.text(f"Seq {data.seq}  Ref {data.hash_hex[:HASH_PREFIX_LEN].lower()}")
    p.set(align="center")
    p.ln()
    p.qr(receipt_qr_text(data, sign), native=True, size=4 if width_dots == 384 else 6, ec=1)  # ec=1: level M
    p.ln()
    if hi:
        b.image(render_text("रसीद की जाँच के लिए QR स्कैन करें", width_dots, size=size - 4, align="center"))
    p.set(align="center")
    b.text("Scan the QR to verify this receipt")
    p.set(align="left")
    p.cut()  # feeds, then GS V
    out = p.output
    assert out.startswith(b"\x1b@") and b"\x1dV" in out[-4:]
    return out


def build_day_summary(
    doc: dict[str, Any], names: dict[str, str], width_dots: int, *, lang: Lang = "hi"
) -> bytes:
    """The end-of-day summary as one ESC/POS job: per-service counts and totals, the ledger head
    and the device's signature (``doc`` is ``agent.daysummary.summary``'s answer)."""
    b = _Builder(width_dots)
    p = b.p
    p.hw("INIT")
    p.set(align="center")
    b.text("e-Mitra", bold=True, double_height=True, double_width=True)
    if lang == "hi":
        b.image(render_text("दिन का सारांश", width_dots, size=24, align="center", bold=True))
    p.set(align="center")
    b.text(f"DAY SUMMARY {doc['date']}", bold=True)
    p.set(align="center")
    b.text(f"Kiosk {doc['kiosk_code']}")
    b.rule()
    for s in doc["services"]:
        p.set(align="left")
        b.text(f"{names.get(s['service'], s['service'])[: b.cols]}")
        b.row(
            [f"  {s['count']} x"], [format_rupees(s["amount_paise"] + s["fee_paise"]).removeprefix("\u20b9 ")]
        )
    b.rule()
    for label, value in (
        ("Transactions", str(doc["count"])),
        ("Voids", str(doc["voids"])),
        ("Amounts", format_rupees(doc["amount_paise"]).removeprefix("\u20b9 ")),
        ("Fees", format_rupees(doc["fee_paise"]).removeprefix("\u20b9 ")),
        ("Cash collected", format_rupees(doc["cash_paise"]).removeprefix("\u20b9 ")),
    ):
        b.row([label], [value], bold=label == "Cash collected")
    b.rule()
    p.set(align="left")
    b.text(f"Head seq {doc['head_seq']}")
    b.text(f"Head hash {doc['head_hash']}")
    b.text(f"Device {doc['device_id']}")
    b.text(f"Signature {doc['sig']}")
    p.cut()
    return bytes(p.output)


def render_png(data: ReceiptData, width_dots: int, path: str | Path, *, sign: Sign) -> Path:
    """Render the receipt as it would come out of the printer (through the simulator's decoder)."""
    from hardware.sim.escpos import EscposDecoder

    decoder = EscposDecoder(width_dots=width_dots)
    decoder.feed(build_receipt(data, width_dots, sign=sign))
    return decoder.paper.save_png(path)
