"""Request signing for device calls, and the server's signature on token leases.

A device signs every request with its Ed25519 key. The signed string is::

    METHOD \\n path?query \\n sha256hex(body as sent on the wire) \\n timestamp \\n nonce

and travels in four headers (``X-Device-Id``, ``X-Timestamp`` unix seconds,
``X-Nonce`` 32 hex chars, ``X-Signature`` base64). The body digest is over the
bytes on the wire (after compression), so the server can check the signature
before it decompresses anything. The server refuses a timestamp more than
``MAX_SKEW_S`` away from its clock and any nonce it has already seen from that
device within the window.

Leases (blocks of the global token serial space) are signed by the server's
Ed25519 key over a canonical JSON document so the agent can keep them as proof.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sync.wire.canonical import canonical_json

HEADER_DEVICE = "X-Device-Id"
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
SIGNED_HEADERS = (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
MAX_SKEW_S = 300

_NONCE_RE = re.compile(r"^[0-9a-f]{32}$")
_DEVICE_RE = re.compile(r"^[0-9A-Za-z-]{1,64}$")


class SignatureError(Exception):
    """A request whose signature headers are missing, malformed, stale or wrong.

    ``code`` is the machine-readable reason the server puts in its 401 body.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SignedHeaders:
    device_id: str
    timestamp: int
    nonce: str
    signature: bytes


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def signing_string(method: str, path: str, digest_hex: str, timestamp: int, nonce: str) -> bytes:
    """The bytes a device signs. ``path`` includes ``?query`` when there is one."""
    return f"{method.upper()}\n{path}\n{digest_hex}\n{timestamp}\n{nonce}".encode()


def sign_request(
    private_key: Ed25519PrivateKey,
    device_id: str,
    method: str,
    path: str,
    body: bytes = b"",
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers that authenticate one request (``path`` as sent, with its query)."""
    ts = int(time.time() if now is None else now)
    nonce = nonce or os.urandom(16).hex()
    sig = private_key.sign(signing_string(method, path, body_digest(body), ts, nonce))
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: base64.b64encode(sig).decode("ascii"),
    }


def parse_signed_headers(headers: Mapping[str, str]) -> SignedHeaders:
    """Read the four signing headers (case-insensitive mapping) or raise SignatureError."""
    values = {name: headers.get(name) for name in SIGNED_HEADERS}
    missing = [name for name, v in values.items() if not v]
    if missing:
        raise SignatureError("missing_signature", f"request is not signed: missing {', '.join(missing)}")
    device_id = str(values[HEADER_DEVICE])
    ts_text = str(values[HEADER_TIMESTAMP])
    nonce = str(values[HEADER_NONCE])
    if not _DEVICE_RE.match(device_id):
        raise SignatureError("unknown_device", "the device id is not one this server issued")
    if not ts_text.isascii() or not ts_text.isdigit() or len(ts_text) > 12:
        raise SignatureError("bad_timestamp", "X-Timestamp must be unix seconds")
    if not _NONCE_RE.match(nonce):
        raise SignatureError("bad_nonce", "X-Nonce must be 32 lower-case hex characters")
    try:
        sig = base64.b64decode(str(values[HEADER_SIGNATURE]), validate=True)
    except ValueError:
        raise SignatureError("bad_signature", "X-Signature is not base64") from None
    if len(sig) != 64:
        raise SignatureError("bad_signature", "X-Signature has the wrong length")
    return SignedHeaders(device_id, int(ts_text), nonce, sig)


def verify_request(
    public_key: Ed25519PublicKey,
    signed: SignedHeaders,
    method: str,
    path: str,
    digest_hex: str,
    now: float,
    max_skew_s: int = MAX_SKEW_S,
) -> None:
    """Check the timestamp window and the signature; raise SignatureError if either fails.

    The nonce is checked by the caller, which owns the (shared) nonce cache.
    """
    if abs(now - signed.timestamp) > max_skew_s:
        raise SignatureError(
            "stale_timestamp", f"X-Timestamp is more than {max_skew_s} s from server time; check the clock"
        )
    message = signing_string(method, path, digest_hex, signed.timestamp, signed.nonce)
    try:
        public_key.verify(signed.signature, message)
    except InvalidSignature:
        raise SignatureError("bad_signature", "the request signature does not match") from None


# --- leases -------------------------------------------------------------------------------------


def lease_signing_bytes(device_id: str, lease_id: int, start_serial: int, end_serial: int) -> bytes:
    """What the server signs for a lease: [start_serial, end_serial) belongs to device_id."""
    return canonical_json(
        {
            "kind": "kiosk-lease-v1",
            "device_id": device_id,
            "lease_id": lease_id,
            "start_serial": start_serial,
            "end_serial": end_serial,
        }
    )


def sign_lease(
    server_key: Ed25519PrivateKey, device_id: str, lease_id: int, start_serial: int, end_serial: int
) -> str:
    sig = server_key.sign(lease_signing_bytes(device_id, lease_id, start_serial, end_serial))
    return base64.b64encode(sig).decode("ascii")


def verify_lease(
    server_public_key: Ed25519PublicKey,
    device_id: str,
    lease_id: int,
    start_serial: int,
    end_serial: int,
    sig_b64: str,
) -> bool:
    try:
        server_public_key.verify(
            base64.b64decode(sig_b64, validate=True),
            lease_signing_bytes(device_id, lease_id, start_serial, end_serial),
        )
    except (InvalidSignature, ValueError):
        return False
    return True
