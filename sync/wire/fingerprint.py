"""Fingerprints of the server's public keys, so an enrollment can be pinned to the right server.

- :func:`key_fingerprint`: SHA-256 of one raw public key (32 bytes), 64 hex digits in groups of 4.
  ``kiosk-server init`` prints one for the Ed25519 lease key and one for the X25519 seal key.
- :func:`server_fingerprint`: the same over both raw keys, signing key first. This is what
  ``kiosk-server kiosk add`` prints beside the enrollment code and ``kiosk-agent enroll
  --fingerprint`` checks, so a man in the middle can swap neither key (the seal key is the one
  that opens every sealed Aadhaar number).

Comparison ignores spaces, colons, dashes and case (:func:`normalise`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["key_fingerprint", "matches", "normalise", "server_fingerprint"]


def _grouped(digest: bytes) -> str:
    hex_ = digest.hex()
    return " ".join(hex_[i : i + 4] for i in range(0, len(hex_), 4))


def key_fingerprint(public_raw: bytes) -> str:
    return _grouped(hashlib.sha256(public_raw).digest())


def server_fingerprint(sign_public_b64: str, seal_public_b64: str) -> str:
    """The fingerprint of the pair of server keys (base64 of the raw keys, as in the enroll answer)."""
    raw = base64.b64decode(sign_public_b64, validate=True) + base64.b64decode(seal_public_b64, validate=True)
    return _grouped(hashlib.sha256(raw).digest())


def normalise(text: str) -> str:
    return "".join(c for c in text.lower() if c not in " :-\t")


def matches(expected: str, actual: str) -> bool:
    """True when ``expected`` (as typed) is the fingerprint ``actual``, all 64 digits of it."""
    want = normalise(expected)
    return len(want) == 64 and hmac.compare_digest(want, normalise(actual))
