"""One rule for every error message on both sides: never repeat a number that may be a citizen's.

:func:`redact` replaces any run of 10 or more digits (a mobile number is 10, an Aadhaar number 12)
with ``<number>``, and the usual groupings of both (``2345 6789 0124``, ``98765 43210``,
``987-654-3210``). The CLIs and the HTTP
error handlers pass their messages through it as a last line of defence; the messages themselves
are written not to echo input in the first place.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_GROUPED = (r"[0-9]{4}[ -][0-9]{4}[ -][0-9]{4}", r"[0-9]{5}[ -][0-9]{5}", r"[0-9]{3}[ -][0-9]{3}[ -][0-9]{4}")
_LONG_NUMBER = re.compile(r"(?<![0-9])(?:[0-9]{10,}|" + "|".join(_GROUPED) + r")(?![0-9])")


def redact(text: str) -> str:
    return _LONG_NUMBER.sub("<number>", text)
