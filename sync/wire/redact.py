"""One rule for every error message on both sides: never repeat a number that may be a citizen's.

:func:`redact` replaces any run of 10 or more digits (a mobile number is 10, an Aadhaar number 12,
also when typed in groups such as ``2345 6789 0124``) with ``<number>``. The CLIs and the HTTP
error handlers pass their messages through it as a last line of defence; the messages themselves
are written not to echo input in the first place.
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_LONG_NUMBER = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){9,}(?![0-9])")


def redact(text: str) -> str:
    return _LONG_NUMBER.sub("<number>", text)
