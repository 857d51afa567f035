"""Verhoeff check digits (dihedral group D5): catch every single-digit error
and every adjacent transposition. Used for tokens and for Aadhaar numbers."""

from __future__ import annotations

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
_INV = (0, 4, 3, 2, 1, 5, 6, 7, 8, 9)


def _checksum(digits: str, offset: int) -> int:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[(i + offset) % 8][ord(ch) - 48]]
    return c


def check_digit(digits: str) -> str:
    """The digit to append to ``digits``."""
    if not digits.isascii() or not digits.isdigit():
        raise ValueError("digits only")
    return str(_INV[_checksum(digits, 1)])


def is_valid(number: str) -> bool:
    """True when the last digit of ``number`` is its Verhoeff check digit."""
    if len(number) < 2 or not number.isascii() or not number.isdigit():
        return False
    return _checksum(number, 0) == 0


TOKEN_SERIAL_DIGITS = 10


def token_for_serial(serial: int) -> str:
    """An 11-digit token: the zero-padded 10-digit serial plus its check digit."""
    if not 0 < serial < 10**TOKEN_SERIAL_DIGITS:
        raise ValueError("serial out of range")
    body = f"{serial:0{TOKEN_SERIAL_DIGITS}d}"
    return body + check_digit(body)


def serial_of_token(token: str) -> int | None:
    """The serial of a well-formed leased token, else None."""
    if len(token) != TOKEN_SERIAL_DIGITS + 1 or not is_valid(token):
        return None
    return int(token[:-1])
