"""Rasterise text that a printer's code pages cannot print (Devanagari, the rupee sign).

Devanagari needs shaping (conjuncts, matras, reph), so we lay text out with
Pillow's raqm engine (HarfBuzz + FriBiDi).  If raqm is missing we fall back to
the basic layout with a warning: the text still prints, but conjuncts come out
as separate letters.

Two bundled OFL fonts (see ``hardware/fonts/OFL.txt``) cover the receipt:
Noto Sans Devanagari (Devanagari, digits, punctuation, the rupee sign) and
Noto Sans for Latin letters, which the Devanagari font lacks.
"""

from __future__ import annotations

import logging
import unicodedata
import warnings
from functools import cache
from importlib import resources
from typing import Literal

from PIL import Image, ImageDraw, ImageFont, features

log = logging.getLogger(__name__)

Align = Literal["left", "center", "right"]

DEVANAGARI_FONT = "NotoSansDevanagari-Regular.ttf"
LATIN_FONT = "NotoSans-Regular.ttf"


def font_path(name: str) -> str:
    return str(resources.files("hardware.fonts").joinpath(name))


@cache
def layout_engine() -> ImageFont.Layout:
    """RAQM when Pillow has it (the PyPI wheels bundle it), else BASIC with a warning."""
    if features.check("raqm"):
        return ImageFont.Layout.RAQM
    message = (
        "Pillow has no raqm support: Hindi text will print without proper conjuncts. "
        "Install a Pillow wheel from PyPI (it bundles raqm) or libraqm."
    )
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    log.warning(message)
    return ImageFont.Layout.BASIC


@cache
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(name), size, layout_engine=layout_engine())


def needs_raster(text: str) -> bool:
    """True if ``text`` has anything outside printable ASCII."""
    return any(not (0x20 <= ord(ch) < 0x7F) for ch in text)


def _is_devanagari(ch: str) -> bool:
    cp = ord(ch)
    return 0x0900 <= cp <= 0x097F or 0xA8E0 <= cp <= 0xA8FF or 0x1CD0 <= cp <= 0x1CFF or cp == 0x20B9


def _runs(text: str) -> list[tuple[str, str]]:
    """Split into (font name, text) runs.  Spaces, digits and punctuation join the current run."""
    runs: list[tuple[str, str]] = []
    current = DEVANAGARI_FONT
    buf = ""
    for ch in text:
        if _is_devanagari(ch):
            want = DEVANAGARI_FONT
        elif ch.isalpha() or unicodedata.category(ch) == "Sc":
            want = LATIN_FONT
        else:
            want = current  # neutral: spaces, digits, punctuation, joiners
        if want != current and buf:
            runs.append((current, buf))
            buf = ""
        current = want
        buf += ch
    if buf:
        runs.append((current, buf))
    return runs


def text_width(text: str, size: int) -> float:
    return sum(_font(name, size).getlength(run) for name, run in _runs(text))


def _line_metrics(size: int) -> tuple[int, int]:
    ascent, descent = _font(DEVANAGARI_FONT, size).getmetrics()
    return ascent, descent


def _draw_runs(draw: ImageDraw.ImageDraw, x: float, baseline: int, text: str, size: int, bold: bool) -> None:
    for name, run in _runs(text):
        font = _font(name, size)
        lang = "hi" if name == DEVANAGARI_FONT else "en"
        language = lang if layout_engine() == ImageFont.Layout.RAQM else None
        draw.text((x, baseline), run, font=font, fill=0, anchor="ls", language=language)
        if bold:
            draw.text((x + 1, baseline), run, font=font, fill=0, anchor="ls", language=language)
        x += font.getlength(run, language=language)


def wrap(text: str, width_dots: int, size: int) -> list[str]:
    """Greedy word wrap to ``width_dots``."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if line and text_width(candidate, size) > width_dots:
            lines.append(line)
            line = word
        else:
            line = candidate
    if line or not lines:
        lines.append(line)
    return lines


def render_text(
    text: str, width_dots: int, *, size: int = 26, align: Align = "left", bold: bool = False
) -> Image.Image:
    """A 1-bit image ``width_dots`` wide holding ``text`` (wrapped), black on white."""
    ascent, descent = _line_metrics(size)
    line_h = ascent + descent + 2
    lines = wrap(text, width_dots, size)
    img = Image.new("L", (width_dots, line_h * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        w = text_width(line, size)
        x = 0.0 if align == "left" else (width_dots - w) / 2 if align == "center" else width_dots - w
        _draw_runs(draw, max(x, 0.0), i * line_h + ascent + 1, line, size, bold)
    return img.point(lambda v: 255 if v >= 128 else 0).convert("1")


def render_pair(left: str, right: str, width_dots: int, *, size: int = 26, bold: bool = False) -> Image.Image:
    """``left`` flush left and ``right`` flush right on one line (wrapping ``left`` if needed)."""
    ascent, descent = _line_metrics(size)
    line_h = ascent + descent + 2
    right_w = text_width(right, size)
    left_lines = wrap(left, max(int(width_dots - right_w - size // 2), width_dots // 3), size)
    img = Image.new("L", (width_dots, line_h * len(left_lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(left_lines):
        _draw_runs(draw, 0.0, i * line_h + ascent + 1, line, size, bold)
    last = len(left_lines) - 1
    _draw_runs(draw, max(width_dots - right_w, 0.0), last * line_h + ascent + 1, right, size, bold)
    return img.point(lambda v: 255 if v >= 128 else 0).convert("1")


INLINE_HEIGHT = 24  # one text line of Font A
INLINE_SIZE = 18  # Devanagari at 18 px fits 24 dots with matras above and below


def render_inline(text: str, *, cell: int = 12, size: int = INLINE_SIZE, bold: bool = False) -> Image.Image:
    """A 24-dot-high 1-bit image of ``text`` whose width is a whole number of text cells."""
    width = int(text_width(text, size)) + 2
    width = max(cell, -(-width // cell) * cell)
    img = Image.new("L", (width, INLINE_HEIGHT), 255)
    _draw_runs(ImageDraw.Draw(img), 1.0, INLINE_HEIGHT - 6, text, size, bold)
    return img.point(lambda v: 255 if v >= 128 else 0).convert("1")


def esc_star_24(img: Image.Image) -> bytes:
    """``ESC * 33``: a 24-dot-high bit image printed inline, on the current text line."""
    bw = img.convert("1")
    width, height = bw.size
    if height != INLINE_HEIGHT or not 0 < width < 65536:
        raise ValueError("inline images must be 24 dots high")
    px = bw.load()
    assert px is not None
    data = bytearray()
    for x in range(width):
        for band in range(3):
            byte = 0
            for bit in range(8):
                if px[x, band * 8 + bit] == 0:  # black dot
                    byte |= 0x80 >> bit
            data.append(byte)
    return b"\x1b*\x21" + bytes((width & 0xFF, width >> 8)) + bytes(data)
