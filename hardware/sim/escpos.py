"""An ESC/POS decoder and paper renderer (the heart of the printer simulator).

:class:`EscposDecoder` consumes a byte stream incrementally (commands may be
split across reads) and builds a :class:`Paper`: text lines with their styles,
raster images (``GS v 0``), QR codes (``GS ( k``: the stored data is kept
verbatim, so tests know the exact payload), barcodes (``GS k`` with ``GS h``,
``GS w``, ``GS H``: see :mod:`hardware.sim.barcodes`), feeds and cuts (``GS V``).
Real-time status requests (``DLE EOT n``) and the status / ID commands an
Epson-compatible printer answers in order (``GS r n``, ``GS I n``, ``GS a n``
for automatic status back) go to callbacks that supply the reply bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import qrcode
from PIL import Image, ImageChops, ImageDraw, ImageFont

from hardware.sim.barcodes import Symbol, encode

log = logging.getLogger(__name__)

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
LF, CR, HT, FF = 0x0A, 0x0D, 0x09, 0x0C

CELL_W, CELL_H, LINE_GAP = 12, 24, 6

# fixed argument counts after "ESC x" / "GS x" / "FS x"
_ESC_ARGS = {
    "@": 0, "!": 1, "E": 1, "-": 1, "a": 1, "d": 1, "J": 1, "2": 0, "3": 1, "t": 1, "M": 1, "G": 1,
    "{": 1, "V": 1, "R": 1, "B": 2, "p": 3, "r": 1, "U": 1, " ": 1, "$": 2, "\\": 2, "c": 2, "i": 0,
    "m": 0, "e": 1, "S": 0, "T": 1, "L": 0, "W": 8, "=": 1, "%": 1, "?": 1, "&": 0,
}  # fmt: skip
_GS_ARGS = {
    "!": 1, "B": 1, "h": 1, "w": 1, "H": 1, "f": 1, "b": 1, "a": 1, "I": 1, "r": 1, "E": 1, "L": 2,
    "W": 2, "P": 2, "$": 2, "\\": 2, "/": 1, ":": 0, "^": 3, "T": 1,
}  # fmt: skip
_FS_ARGS = {"&": 0, ".": 0, "!": 1, "-": 1, "C": 1, "p": 2, "S": 2, "W": 1}
_CUT_WITH_N = {65, 66, 97, 98, 103, 104}

_QR_EC = {
    48: qrcode.constants.ERROR_CORRECT_L,
    49: qrcode.constants.ERROR_CORRECT_M,
    50: qrcode.constants.ERROR_CORRECT_Q,
    51: qrcode.constants.ERROR_CORRECT_H,
}


@dataclass(frozen=True)
class Style:
    bold: bool = False
    underline: int = 0
    invert: bool = False
    align: str = "left"
    width: int = 1
    height: int = 1
    font: int = 0


@dataclass(frozen=True)
class TextLine:
    """A line of text; inline bit images (``ESC *``) show as spaces in ``text`` and sit in ``inline``."""

    text: str
    style: Style = Style()
    inline: tuple[tuple[int, Image.Image], ...] = ()


@dataclass(frozen=True)
class Raster:
    image: Image.Image  # mode "L", 0 = printed (black)
    align: str = "left"


@dataclass(frozen=True)
class QRCode:
    payload: bytes
    module: int = 3
    ec: int = 48
    align: str = "left"


@dataclass(frozen=True)
class Barcode:
    """A ``GS k`` barcode: ``height`` dots tall, ``module`` dots per narrow bar, HRI 0-3 (none,
    above, below, both)."""

    symbol: Symbol
    height: int = 162
    module: int = 3
    hri: int = 0
    align: str = "left"


@dataclass(frozen=True)
class Feed:
    dots: int


@dataclass(frozen=True)
class Cut:
    partial: bool = False


Element = TextLine | Raster | QRCode | Barcode | Feed | Cut


@dataclass
class Paper:
    """What came out of the printer."""

    width_dots: int = 576
    elements: list[Element] = field(default_factory=list)

    @property
    def lines(self) -> list[str]:
        return [e.text for e in self.elements if isinstance(e, TextLine)]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    @property
    def qr_payloads(self) -> list[str]:
        return [e.payload.decode("utf-8", "replace") for e in self.elements if isinstance(e, QRCode)]

    @property
    def barcodes(self) -> list[tuple[str, str]]:
        """(symbology, human-readable text) of every barcode printed."""
        return [(e.symbol.symbology, e.symbol.text) for e in self.elements if isinstance(e, Barcode)]

    @property
    def rasters(self) -> list[Raster]:
        return [e for e in self.elements if isinstance(e, Raster)]

    @property
    def cuts(self) -> int:
        return sum(isinstance(e, Cut) for e in self.elements)

    def clear(self) -> None:
        self.elements.clear()

    def render(self) -> Image.Image:
        """The paper as a grayscale image ``width_dots`` wide."""
        blocks = [_render(e, self.width_dots) for e in self.elements]
        height = max(sum(b.height for b in blocks), 1)
        out = Image.new("L", (self.width_dots, height), 255)
        y = 0
        for block in blocks:
            out.paste(block, (0, y))
            y += block.height
        return out

    def save_png(self, path: str | Path) -> Path:
        path = Path(path)
        self.render().save(path, format="PNG")
        return path


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        from hardware.raster import LATIN_FONT, font_path

        return ImageFont.truetype(font_path(LATIN_FONT), size)
    except OSError:  # pragma: no cover - fonts are bundled
        return ImageFont.load_default()


def _place(img: Image.Image, width: int, align: str) -> Image.Image:
    block = Image.new("L", (width, img.height), 255)
    x = 0 if align == "left" else (width - img.width) // 2 if align == "center" else width - img.width
    block.paste(img.crop((0, 0, min(img.width, width), img.height)), (max(x, 0), 0))
    return block


def _render(e: Element, width: int) -> Image.Image:
    if isinstance(e, TextLine):
        s = e.style
        cols = max(len(e.text), 1)
        line = Image.new("L", (cols * CELL_W, CELL_H), 0 if s.invert else 255)
        draw = ImageDraw.Draw(line)
        font = _font(20)
        ink = 255 if s.invert else 0
        for i, ch in enumerate(e.text):
            for dx in (0, 1) if s.bold else (0,):
                draw.text((i * CELL_W + CELL_W // 2 + dx, CELL_H - 5), ch, font=font, fill=ink, anchor="ms")
        for x, img in e.inline:
            line.paste(ImageChops.invert(img) if s.invert else img, (x, CELL_H - img.height))
        if s.underline:
            draw.line((0, CELL_H - 2, cols * CELL_W, CELL_H - 2), fill=ink, width=s.underline)
        line = line.resize((line.width * s.width, line.height * s.height), Image.Resampling.NEAREST)
        gap = Image.new("L", (width, line.height + LINE_GAP), 255)
        gap.paste(_place(line, width, s.align), (0, 0))
        return gap
    if isinstance(e, Raster):
        return _place(e.image, width, e.align)
    if isinstance(e, QRCode):
        qr = qrcode.QRCode(box_size=max(e.module, 1), border=1, error_correction=_QR_EC.get(e.ec, 1))
        try:
            qr.add_data(e.payload)
            qr.make(fit=True)
            img = qr.make_image().get_image().convert("L")
        except Exception:  # noqa: BLE001 - a broken payload still shows up on paper
            img = Image.new("L", (64, 64), 128)
        return _place(img, width, e.align)
    if isinstance(e, Barcode):
        return _place(_render_barcode(e), width, e.align)
    if isinstance(e, Feed):
        return Image.new("L", (width, max(e.dots, 0)), 255)
    # Cut: a dashed line with some margin
    block = Image.new("L", (width, 16), 255)
    draw = ImageDraw.Draw(block)
    for x in range(0, width, 12):
        draw.line((x, 8, x + 6, 8), fill=0)
    return block


def _render_barcode(e: Barcode) -> Image.Image:
    modules = e.symbol.modules
    bars_w = len(modules) * e.module if modules else max(len(e.symbol.text), 8) * CELL_W
    hri_h = CELL_H
    above = hri_h if e.hri in (1, 3) else 0
    below = hri_h if e.hri in (2, 3) else 0
    img = Image.new("L", (bars_w, above + e.height + below), 255)
    draw = ImageDraw.Draw(img)
    if modules:
        for i, bit in enumerate(modules):
            if bit == "1":
                draw.rectangle((i * e.module, above, (i + 1) * e.module - 1, above + e.height - 1), fill=0)
    else:  # a symbology drawn as a labelled frame
        draw.rectangle((0, above, bars_w - 1, above + e.height - 1), outline=0, width=2)
    font = _font(18)
    for top in ([0] if above else []) + ([above + e.height] if below else []):
        draw.text((bars_w // 2, top + hri_h - 4), e.symbol.text, font=font, fill=0, anchor="ms")
    return img


class EscposDecoder:
    """Incremental ESC/POS decoder.

    ``status(n)`` answers ``DLE EOT n`` (return ``None`` to stay silent);
    ``answer(command, n)`` answers ``GS r n`` / ``GS I n`` / ``GS a n`` (``command`` is
    ``"r"``, ``"I"`` or ``"a"``); ``accepting()`` False makes the "printer" discard
    printable output (paper out).
    """

    def __init__(
        self,
        *,
        width_dots: int = 576,
        status: Callable[[int], bytes | None] | None = None,
        answer: Callable[[str, int], bytes | None] | None = None,
        accepting: Callable[[], bool] | None = None,
    ) -> None:
        self.paper = Paper(width_dots=width_dots)
        self._status = status or (lambda n: bytes([0x12]))
        self._answer = answer or (lambda command, n: None)
        self._accepting = accepting or (lambda: True)
        self._replies = bytearray()
        #: barcodes the printer refused (bad data, too wide): nothing printed, as on paper
        self.refused_barcodes = 0
        self._bar_height, self._bar_module, self._bar_hri = 162, 3, 0
        self.style = Style()
        self.unknown_bytes = 0
        self.status_requests: list[int] = []
        self.refused_elements = 0
        self._buf = bytearray()
        self._line = ""
        self._inline: list[tuple[int, Image.Image]] = []
        self._line_style = self.style
        self._qr_data = b""
        self._qr_module = 3
        self._qr_ec = 48

    # --- output ----------------------------------------------------------------------------------

    def _emit(self, element: Element) -> None:
        if self._accepting():
            self.paper.elements.append(element)
        else:
            self.refused_elements += 1

    def _newline(self) -> None:
        self._emit(TextLine(self._line, self._line_style, tuple(self._inline)))
        self._line = ""
        self._inline = []
        self._line_style = self.style

    def _set(self, **changes: object) -> None:
        self.style = replace(self.style, **changes)  # type: ignore[arg-type]
        if not self._line:
            self._line_style = self.style

    # --- parsing ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume bytes; return the replies to send back (status bytes)."""
        self._buf.extend(data)
        replies = self._replies
        i = 0
        buf = self._buf
        while i < len(buf):
            step = self._step(buf, i, replies)
            if step is None:
                break
            i = step
        del buf[:i]
        out, self._replies = bytes(replies), bytearray()
        return out

    def _step(self, b: bytearray, i: int, replies: bytearray) -> int | None:
        """Decode one command at ``i``; return the index after it, or None if incomplete."""
        c = b[i]
        n = len(b)
        if c == LF:
            self._newline()
            return i + 1
        if c == CR:
            return i + 1
        if c == HT:
            self._line += " " * (8 - len(self._line) % 8)
            return i + 1
        if c == FF:
            if self._line:
                self._newline()
            return i + 1
        if c == DLE:
            if i + 3 > n:
                return None
            sub, arg = b[i + 1], b[i + 2]
            if sub == 0x04:  # DLE EOT n
                self.status_requests.append(arg)
                reply = self._status(arg)
                if reply:
                    replies.extend(reply)
                return i + 3
            if sub == 0x05:  # DLE ENQ n
                return i + 3
            if sub == 0x14:  # DLE DC4 fn a b
                return None if i + 5 > n else i + 5
            self.unknown_bytes += 1
            return i + 1
        if c == ESC:
            return self._esc(b, i)
        if c == GS:
            return self._gs(b, i)
        if c == FS:
            if i + 1 >= n:
                return None
            key = chr(b[i + 1])
            if key == "(":
                return self._skip_len(b, i + 2)
            got = self._fixed(_FS_ARGS, b, i)
            return None if got is None else got[0]
        if c < 0x20 or c == 0x7F:
            self.unknown_bytes += 1
            return i + 1
        # printable: take the whole run of text at once
        j = i
        while j < n and b[j] >= 0x20 and b[j] != 0x7F:
            j += 1
        if not self._line:
            self._line_style = self.style
        self._line += bytes(b[i:j]).decode("cp437")
        return j

    def _fixed(self, table: dict[str, int], b: bytearray, i: int) -> tuple[int, bytes | None] | None:
        """(end, args) of a fixed-length command at ``i``; args is None for an unknown command."""
        count = table.get(chr(b[i + 1]))
        if count is None:
            self.unknown_bytes += 2
            return i + 2, None
        if i + 2 + count > len(b):
            return None
        return i + 2 + count, bytes(b[i + 2 : i + 2 + count])

    @staticmethod
    def _skip_len(b: bytearray, at: int) -> int | None:
        """Skip ``pL pH`` + that many bytes starting at ``at``."""
        if at + 2 > len(b):
            return None
        end = at + 2 + b[at] + 256 * b[at + 1]
        return None if end > len(b) else end

    def _esc(self, b: bytearray, i: int) -> int | None:
        n = len(b)
        if i + 1 >= n:
            return None
        key = chr(b[i + 1])
        if key == "*":  # ESC * m nL nH data
            if i + 5 > n:
                return None
            m, cols = b[i + 2], b[i + 3] + 256 * b[i + 4]
            depth = 3 if m in (32, 33) else 1
            end = i + 5 + cols * depth
            if end > n:
                return None
            self._inline_image(bytes(b[i + 5 : end]), cols, depth)
            return end
        if key == "D":  # tab stops, NUL terminated
            end = b.find(b"\x00", i + 2)
            return None if end < 0 else end + 1
        got = self._fixed(_ESC_ARGS, b, i)
        if got is None:
            return None
        end, args = got
        if args is None:
            return end
        if key == "@":
            self._bar_height, self._bar_module, self._bar_hri = 162, 3, 0
            self.style = Style()
            self._line = ""
            self._inline = []
            self._line_style = self.style
        elif key == "!":
            m = args[0]
            self._set(
                font=m & 1,
                bold=bool(m & 8),
                height=2 if m & 16 else 1,
                width=2 if m & 32 else 1,
                underline=1 if m & 128 else 0,
            )
        elif key == "E":
            self._set(bold=bool(args[0] & 1))
        elif key == "-":
            self._set(underline=args[0] % 48 if args[0] >= 48 else args[0])
        elif key == "a":
            self._set(align={0: "left", 1: "center", 2: "right"}.get(args[0] % 48, "left"))
        elif key == "d":
            if self._line:
                self._newline()
            self._emit(Feed(args[0] * (CELL_H + LINE_GAP)))
        elif key == "J":
            if self._line:
                self._newline()
            self._emit(Feed(args[0]))
        elif key == "M":
            self._set(font=args[0] % 48)
        return end

    def _inline_image(self, data: bytes, cols: int, depth: int) -> None:
        img = Image.new("L", (max(cols, 1), depth * 8), 255)
        px = img.load()
        assert px is not None
        for x in range(cols):
            for band in range(depth):
                byte = data[x * depth + band]
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        px[x, band * 8 + bit] = 0
        if not self._line:
            self._line_style = self.style
        self._inline.append((len(self._line) * CELL_W, img))
        self._line += " " * -(-cols // CELL_W)

    def _gs(self, b: bytearray, i: int) -> int | None:
        n = len(b)
        if i + 1 >= n:
            return None
        key = chr(b[i + 1])
        if key == "V":  # cut
            if i + 2 >= n:
                return None
            m = b[i + 2]
            end = i + 4 if m in _CUT_WITH_N else i + 3
            if end > n:
                return None
            if self._line:
                self._newline()
            self._emit(Cut(partial=m in (1, 49, 66, 98, 104)))
            return end
        if key == "v":  # GS v 0 m xL xH yL yH data
            if i + 8 > n:
                return None
            xb = b[i + 4] + 256 * b[i + 5]
            yd = b[i + 6] + 256 * b[i + 7]
            end = i + 8 + xb * yd
            if end > n:
                return None
            if xb and yd:
                bits = Image.frombytes("1", (xb * 8, yd), bytes(b[i + 8 : end]))
                # in ESC/POS a set bit is a printed (black) dot; in PIL mode "1" it is white
                img = ImageChops.invert(bits.convert("L"))
                if self._line:
                    self._newline()
                self._emit(Raster(img, self.style.align))
            return end
        if key == "(":
            if i + 5 > n:
                return None
            fn_class = chr(b[i + 2])
            block_end = self._skip_len(b, i + 3)
            if block_end is None:
                return None
            if fn_class == "k":
                self._qr_command(bytes(b[i + 5 : block_end]))
            return block_end
        if key == "k":  # barcode
            return self._barcode(b, i)
        if key == "*":
            if i + 4 > n:
                return None
            end = i + 4 + b[i + 2] * b[i + 3] * 8
            return None if end > n else end
        got = self._fixed(_GS_ARGS, b, i)
        if got is None:
            return None
        end, args = got
        if args is not None:
            self._gs_fixed(key, args)
        return end

    def _gs_fixed(self, key: str, args: bytes) -> None:
        """The fixed-length ``GS`` commands we act on (the rest are skipped)."""
        if key == "!":
            self._set(width=((args[0] >> 4) & 7) + 1, height=(args[0] & 7) + 1)
        elif key == "B":
            self._set(invert=bool(args[0] & 1))
        elif key == "h" and args[0]:
            self._bar_height = args[0]
        elif key == "w" and 1 <= args[0] <= 6:
            self._bar_module = args[0]
        elif key == "H":
            self._bar_hri = args[0] % 48 if args[0] >= 48 else args[0] & 3
        elif key in ("r", "I", "a"):
            reply = self._answer(key, args[0])
            if reply:
                self._replies.extend(reply)

    def _barcode(self, b: bytearray, i: int) -> int | None:
        """``GS k m d1..dk NUL`` (m <= 6) or ``GS k m n d1..dn`` (m >= 65)."""
        n = len(b)
        if i + 3 > n:
            return None
        m = b[i + 2]
        if m <= 6:
            stop = b.find(b"\x00", i + 3)
            if stop < 0:
                return None
            data, end = bytes(b[i + 3 : stop]), stop + 1
        else:
            if i + 4 > n:
                return None
            end = i + 4 + b[i + 3]
            if end > n:
                return None
            data = bytes(b[i + 4 : end])
        symbol = encode(m, data)
        if symbol is None or len(symbol.modules) * self._bar_module > self.paper.width_dots:
            self.refused_barcodes += 1
            return end
        if self._line:
            self._newline()
        self._emit(Barcode(symbol, self._bar_height, self._bar_module, self._bar_hri, self.style.align))
        return end

    def _qr_command(self, body: bytes) -> None:
        if len(body) < 2 or body[0] != 49:  # cn 49 = QR code
            return
        fn, rest = body[1], body[2:]
        if fn == 67 and rest:
            self._qr_module = rest[0]
        elif fn == 69 and rest:
            self._qr_ec = rest[0]
        elif fn == 80 and rest:
            self._qr_data = bytes(rest[1:])  # first byte is m = 48
        elif fn == 81:
            if self._line:
                self._newline()
            self._emit(QRCode(self._qr_data, self._qr_module, self._qr_ec, self.style.align))
