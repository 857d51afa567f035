"""``GS k`` barcodes as an Epson-compatible printer draws them.

The symbology numbers are ESC/POS's: function A (``GS k m d1..dk NUL``, m = 0..6)
and function B (``GS k m n d1..dn``, m = 65..73).  The bar patterns come from
python-barcode (the library python-escpos renders software barcodes with); what
the printer adds is checked here as a printer does: digits only, lengths, the
check digit it computes or verifies.  Data a printer would refuse gives ``None``
(nothing is printed, as on paper).  UPC-E and CODE93 are recognised but drawn as
a labelled frame: no library here encodes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import barcode
from barcode.errors import BarcodeError

SYMBOLOGIES: dict[int, str] = {
    0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR",
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF", 71: "CODABAR",
    72: "CODE93", 73: "CODE128",
}  # fmt: skip

# symbology -> (python-barcode name, digits the printer takes without / with the check digit)
_EAN_LIKE = {"UPC-A": ("upca", 11), "EAN13": ("ean13", 12), "EAN8": ("ean8", 7)}
_DRAWN_AS_FRAME = {"UPC-E", "CODE93"}
_CODE39_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%+-./")


@dataclass(frozen=True)
class Symbol:
    """What the printer will draw: ``text`` is the human-readable line (HRI), ``modules`` the bars."""

    symbology: str
    text: str
    modules: str  # "1" = a bar module, "0" = a space; empty = drawn as a labelled frame


def _ean_like(symbology: str, data: str) -> Symbol | None:
    name, length = _EAN_LIKE[symbology]
    if not data.isdigit() or len(data) not in (length, length + 1):
        return None
    code = barcode.get(name, data[:length])
    full = code.get_fullcode()
    if len(data) == length + 1 and full != data:
        return None  # a wrong check digit: the printer prints nothing
    return Symbol(symbology, full, "".join(code.build()))


def _code128_text(data: bytes) -> str | None:
    """ESC/POS CODE128 data: ``{A`` / ``{B`` / ``{C`` pick the code set, ``{{`` is a brace."""
    out: list[str] = []
    code_set, i = "", 0
    while i < len(data):
        if data[i] == 0x7B and i + 1 < len(data):
            sel = chr(data[i + 1])
            i += 2
            if sel in "ABC":
                code_set = sel
            elif sel == "{":
                out.append("{")
            continue  # FNC1-4 and SHIFT carry no text
        if not code_set:
            return None  # the data must start by choosing a code set
        out.append(f"{data[i]:02d}" if code_set == "C" else chr(data[i]))
        i += 1
    return "".join(out) or None


def encode(m: int, data: bytes) -> Symbol | None:
    """The symbol ``GS k m`` would print for ``data``, or None if the printer would refuse it."""
    symbology = SYMBOLOGIES.get(m)
    if symbology is None or not data:
        return None
    try:
        if symbology == "CODE128":
            text = _code128_text(data)
            return (
                None
                if text is None
                else Symbol(symbology, text, "".join(barcode.get("code128", text).build()))
            )
        chars = data.decode("ascii")
        if symbology in _EAN_LIKE:
            return _ean_like(symbology, chars)
        if symbology in _DRAWN_AS_FRAME:
            return Symbol(symbology, chars, "")
        if symbology == "CODE39":
            chars = chars.strip("*")  # the printer adds the start/stop characters itself
            if not chars or any(c not in _CODE39_CHARS for c in chars):
                return None
            code = barcode.get_barcode_class("code39")(chars, add_checksum=False)
            return Symbol(symbology, f"*{chars}*", "".join(code.build()))
        if symbology == "ITF" and (not chars.isdigit() or len(chars) % 2):
            return None
        cls = barcode.get_barcode_class("itf" if symbology == "ITF" else "codabar")
        return Symbol(symbology, chars, "".join(cls(chars, narrow=1, wide=3).build()))
    except (BarcodeError, ValueError, UnicodeDecodeError, KeyError, IndexError):
        return None
