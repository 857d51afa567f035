"""Citizen identifiers (DESIGN section 8): validate, mask, seal. Messages
never repeat the number that was typed."""

from __future__ import annotations

import re

from agent.errors import InvalidInput
from sync.wire import verhoeff

_MOBILE = re.compile(r"^[6-9][0-9]{9}$")
_AADHAAR = re.compile(r"^[2-9][0-9]{11}$")


def normalise_mobile(text: str) -> str:
    digits = text.strip().replace(" ", "")
    if digits.startswith("+91"):
        digits = digits[3:]
    if not digits.isascii() or not _MOBILE.match(digits):
        raise InvalidInput("mobile number must be 10 digits starting with 6, 7, 8 or 9")
    return digits


def mask_mobile(mobile: str | None) -> str | None:
    return None if not mobile else "XXXXXX" + mobile[-4:]


def normalise_aadhaar(text: str) -> str:
    digits = text.strip().replace(" ", "").replace("-", "")
    if not digits.isascii() or not _AADHAAR.match(digits) or not verhoeff.is_valid(digits):
        raise InvalidInput("Aadhaar number is not valid (12 digits with a correct check digit)")
    return digits


def mask_aadhaar(last4: str | None) -> str | None:
    return None if not last4 else "XXXX XXXX " + last4
