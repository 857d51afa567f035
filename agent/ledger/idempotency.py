"""Idempotency keys of the local API's new sales (``POST /api/transactions``).

A key is stored in the same commit as its sale (:func:`store`, called by ``Ledger.append``),
so a retry after a lost answer finds the sale, never makes a second one. The request is kept
only as an HMAC under a key derived from the device key: it can tell "the same request" from
"a different one" but holds no citizen number.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import NamedTuple

from agent.ledger.db import Connection

_DERIVE = b"kiosk-agent idempotency key v1"


class Stored(NamedTuple):
    seq: int
    body_mac: str


def mac_key(sign: Callable[[bytes], bytes]) -> bytes:
    """The HMAC key: SHA-256 of the device's (deterministic Ed25519) signature over a constant."""
    return hashlib.sha256(sign(_DERIVE)).digest()


def body_mac(key: bytes, canonical_body: bytes) -> str:
    return hmac.new(key, canonical_body, hashlib.sha256).hexdigest()


def lookup(conn: Connection, key: str) -> Stored | None:
    row = conn.execute("SELECT seq, body_mac FROM idempotency_keys WHERE key = ?", (key,)).fetchone()
    return None if row is None else Stored(int(row[0]), str(row[1]))


def store(conn: Connection, key: str, seq: int, mac: str, now_ms: int) -> None:
    """Inside the sale's write transaction."""
    conn.execute(
        "INSERT INTO idempotency_keys (key, seq, body_mac, created_at) VALUES (?, ?, ?, ?)",
        (key, seq, mac, now_ms),
    )


__all__ = ["Stored", "body_mac", "lookup", "mac_key", "store"]
