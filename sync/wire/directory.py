"""The device directory: every enrolled device's public key, signed by the server, so any kiosk
can check any kiosk's receipt QR with no network (issue 14).

The server answers ``GET /v1/directory?since=<version>`` with one page: the devices enrolled
after ``since`` (``version`` is a device's ``enrolled_at`` in ms, so pages are incremental),
oldest first, and ``more`` when another page follows. The page's body is signed with the
server's Ed25519 key over ``DOMAIN + canonical_json(body)``; the kiosk keeps pages as files and
checks each against the server key it pinned at enrollment every time it loads them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from sync.wire.canonical import canonical_json

DOMAIN = b"kiosk-directory-v1\n"
PAGE_MAX = 5000  # about 200 bytes a device: a page is ~1 MB, a state's 80,000 kiosks ~16 pages


class DirectoryEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: StrictStr
    kiosk_code: StrictStr
    public_key: StrictStr = Field(description="base64 raw Ed25519 public key")
    enrolled_at: StrictInt


class DirectoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: StrictInt
    version: StrictInt = Field(description="the newest enrolled_at in this page (or since when empty)")
    more: StrictInt = Field(description="1 when another page follows: ask again since this version")
    devices: list[DirectoryEntry]


class DirectoryPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: DirectoryBody
    sig: StrictStr = Field(description="base64 Ed25519 over DOMAIN + canonical JSON of body")


def signing_bytes(body: DirectoryBody | dict[str, Any]) -> bytes:
    doc = body.model_dump() if isinstance(body, DirectoryBody) else body
    return DOMAIN + canonical_json(doc)


def sign_page(key: Ed25519PrivateKey, body: DirectoryBody) -> DirectoryPage:
    sig = base64.b64encode(key.sign(signing_bytes(body))).decode("ascii")
    return DirectoryPage(body=body, sig=sig)


def verify_page(key: Ed25519PublicKey, page: DirectoryPage) -> bool:
    """True when the server signed exactly this body (the exact base64 of the exact signature)."""
    try:
        sig = base64.b64decode(page.sig, validate=True)
    except (binascii.Error, ValueError):
        return False
    if base64.b64encode(sig).decode("ascii") != page.sig:
        return False
    try:
        key.verify(sig, signing_bytes(page.body))
    except InvalidSignature:
        return False
    return True


__all__ = [
    "DOMAIN",
    "PAGE_MAX",
    "DirectoryBody",
    "DirectoryEntry",
    "DirectoryPage",
    "sign_page",
    "signing_bytes",
    "verify_page",
]
