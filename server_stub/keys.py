"""The server's own keys: Ed25519 (signs leases) and X25519 (opens sealed Aadhaar numbers).

Created once by ``kiosk-server init`` and kept in the database, so every worker and every
restart uses the same pair.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.engine import Connection

from server_stub.db import server_keys
from server_stub.errors import Unavailable


@dataclass(frozen=True)
class ServerKeys:
    sign: Ed25519PrivateKey
    seal: X25519PrivateKey
    sign_public_b64: str
    seal_public_b64: str


def _raw_private(key: Ed25519PrivateKey | X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public_b64(key: Ed25519PrivateKey | X25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def ensure_keys(conn: Connection, now_ms: int) -> bool:
    """Create the key pair if the database has none. True when created."""
    have = {row.name for row in conn.execute(sa.select(server_keys.c.name))}
    created = False
    for name, key in (("sign", Ed25519PrivateKey.generate()), ("seal", X25519PrivateKey.generate())):
        if name not in have:
            conn.execute(
                server_keys.insert().values(
                    name=name,
                    private_raw=_raw_private(key),
                    public_b64=_raw_public_b64(key),
                    created_at=now_ms,
                )
            )
            created = True
    return created


def load_keys(conn: Connection) -> ServerKeys:
    rows = {row.name: row for row in conn.execute(sa.select(server_keys))}
    if "sign" not in rows or "seal" not in rows:
        raise Unavailable("the server has no keys yet; run `kiosk-server init`")
    return ServerKeys(
        sign=Ed25519PrivateKey.from_private_bytes(rows["sign"].private_raw),
        seal=X25519PrivateKey.from_private_bytes(rows["seal"].private_raw),
        sign_public_b64=rows["sign"].public_b64,
        seal_public_b64=rows["seal"].public_b64,
    )
