"""Sealed boxes for the Aadhaar number: only the server can open them.

X25519 (ephemeral) + HKDF-SHA256 + ChaCha20-Poly1305. The output is base64 of
``ephemeral public key (32) || nonce (12) || ciphertext+tag``.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"kiosk-agent aadhaar seal v1"


def _key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub, info=_INFO).derive(shared)


def _raw(pub: X25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def seal(recipient_pub_b64: str, plaintext: str) -> str:
    recipient = X25519PublicKey.from_public_bytes(base64.b64decode(recipient_pub_b64, validate=True))
    eph = X25519PrivateKey.generate()
    eph_pub = _raw(eph.public_key())
    key = _key(eph.exchange(recipient), eph_pub, _raw(recipient))
    nonce = os.urandom(12)
    ct = ChaCha20Poly1305(key).encrypt(nonce, plaintext.encode("utf-8"), None)
    return base64.b64encode(eph_pub + nonce + ct).decode("ascii")


def open_sealed(private_key: X25519PrivateKey, sealed_b64: str) -> str:
    blob = base64.b64decode(sealed_b64, validate=True)
    eph_pub, nonce, ct = blob[:32], blob[32:44], blob[44:]
    key = _key(
        private_key.exchange(X25519PublicKey.from_public_bytes(eph_pub)),
        eph_pub,
        _raw(private_key.public_key()),
    )
    return ChaCha20Poly1305(key).decrypt(nonce, ct, None).decode("utf-8")


def new_keypair() -> tuple[X25519PrivateKey, str]:
    """A fresh X25519 key and its public half as base64 (for the server)."""
    priv = X25519PrivateKey.generate()
    return priv, base64.b64encode(_raw(priv.public_key())).decode("ascii")
