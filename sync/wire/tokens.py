"""Token formats, shared by kiosk and server (DESIGN section 4).

- A **leased token** is 11 digits: a 10-digit serial from a block the server leased to the
  device, plus its Verhoeff check digit (:func:`token_for_serial`, :func:`serial_of_token`).
- A **provisional token** is issued when every block is spent: ``P<K-code>-<seq>``, or
  ``PD<first 8 hex of the device id>-<seq>`` before enrollment. It is unique by construction;
  the server gives it a final leased token at ingest.

This module is the one home of both formats: the agent builds them, the server parses them.
"""

from __future__ import annotations

import re

from sync.wire.verhoeff import TOKEN_SERIAL_DIGITS, serial_of_token, token_for_serial

__all__ = [
    "TOKEN_SERIAL_DIGITS",
    "is_provisional",
    "is_well_formed",
    "is_provisional_of",
    "provisional_prefixes",
    "provisional_token",
    "serial_of_token",
    "token_for_serial",
]


def _device_prefix(device_id: str) -> str:
    return "D" + device_id.replace("-", "")[:8].upper()


def provisional_token(kiosk_code: str | None, device_id: str, seq: int) -> str:
    """The provisional token of ``seq``: the kiosk's own code (or device id before enrollment)."""
    return f"P{kiosk_code or _device_prefix(device_id)}-{seq}"


def provisional_prefixes(kiosk_code: str, device_id: str) -> tuple[str, str]:
    """The two prefixes a device's provisional tokens may carry (after and before enrollment)."""
    return f"P{kiosk_code}-", f"P{_device_prefix(device_id)}-"


def is_provisional(token: str) -> bool:
    return token.startswith("P")


_PROVISIONAL = re.compile(r"^P(?:K[0-9]{1,20}|D[0-9A-F]{8})-[1-9][0-9]{0,15}$")


def is_well_formed(token: str) -> bool:
    """A leased token (11 digits, correct Verhoeff check digit) or a provisional token
    (``P<K-code>-<seq>`` / ``PD<8 hex>-<seq>``). Anything else can't be anyone's token."""
    if is_provisional(token):
        return bool(_PROVISIONAL.match(token))
    return serial_of_token(token) is not None


def is_provisional_of(token: str, kiosk_code: str, device_id: str) -> bool:
    """True when ``token`` is one of this device's provisional tokens: a known prefix and a seq."""
    for prefix in provisional_prefixes(kiosk_code, device_id):
        rest = token[len(prefix) :]
        if token.startswith(prefix) and rest.isascii() and rest.isdigit():
            return True
    return False
