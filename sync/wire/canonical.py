"""The canonical record encoding, its hash and its signature.

Both sides import this module: the agent signs with it, the server verifies
with it, so the two can never disagree about what a record's bytes are.

A *record* is a plain dict of str/int/dict/list values (never floats, never
None: absent values are left out). Its canonical form is UTF-8 JSON with sorted
keys and no insignificant whitespace. ``hash = SHA-256(canonical(record))``
where the record includes ``prev_hash`` (hex of the previous record's hash, or
the device's genesis hash for seq 1). ``sig = Ed25519(device key, hash bytes)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# The keys a ledger record may carry. Anything else is refused, so a record's
# meaning can't be widened without a protocol change.
RECORD_KEYS = frozenset(
    {
        "seq",  # 1, 2, 3 ... per device, no gaps
        "txn_id",  # UUIDv7, time ordered
        "kind",  # "sale" | "void"
        "created_at",  # integer milliseconds since the Unix epoch, UTC
        "operator",  # who served the citizen
        "service",  # catalog code
        "amount_paise",  # what the citizen pays towards the service (bill, recharge, ...)
        "fee_paise",  # the kiosk's service charge from the catalog
        "token",  # 11-digit leased token, or provisional P<K-code>-<seq>
        "fields",  # dict[str, str]: the service's fields (consumer number, ...)
        "mobile",  # 10 digits; only inside the encrypted ledger and on the wire
        "aadhaar_last4",  # the last four digits, for display
        "aadhaar_sealed",  # the full number sealed to the server's X25519 key (base64)
        "voids_seq",  # for kind == "void": the seq of the record it voids
        "reason",  # for kind == "void"
        "catalog_version",  # the catalog version in force when the record was made
        "prev_hash",  # hex SHA-256 of the previous record (or genesis)
    }
)
KINDS = ("sale", "void")


class CanonicalError(ValueError):
    """A value that has no canonical encoding (a float, None, an unknown key)."""


def _check(value: Any, path: str) -> None:
    # Fast path for what records are made of (exact str/int values, a dict of them); anything
    # else (bool, None, float, subclasses, nesting) goes through the full check below.
    t = type(value)
    if t is str or t is int:
        return
    if t is dict:
        for k, v in value.items():
            tv = type(v)
            if type(k) is not str or (tv is not str and tv is not int):
                _check_item(k, v, path)
        return
    _check_full(value, path)


def _check_item(k: Any, v: Any, path: str) -> None:
    if not isinstance(k, str):
        raise CanonicalError(f"{path}: keys must be strings")
    _check(v, f"{path}.{k}")


def _check_full(value: Any, path: str) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, float):
        raise CanonicalError(f"{path}: {type(value).__name__} has no canonical form")
    if isinstance(value, dict):
        for k, v in value.items():
            _check_item(k, v, path)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check(v, f"{path}[{i}]")
    elif not isinstance(value, (str, int)):
        raise CanonicalError(f"{path}: {type(value).__name__} has no canonical form")


def _plain(value: Any) -> bool:
    """True when ``value`` is made of exact str/int/dict/list only: the common case, checked
    without building a path for every value (:func:`_check` names the path when it is not).
    Plain loops, and no call for a str or int in a dict: ~0.7 us a record where ``all()`` over
    a generator, a call per value, took ~1.3."""
    kind = type(value)
    if kind is str or kind is int:
        return True
    if kind is dict:
        for k, v in value.items():
            tv = type(v)
            if type(k) is not str or (tv is not str and tv is not int and not _plain(v)):
                return False
        return True
    if kind is list:
        for v in value:
            if not _plain(v):
                return False
        return True
    return False


# The canonical form is json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
# encoded as UTF-8: what every record ever signed was hashed from. The standard encoder (built
# once) is the reference; orjson gives the same bytes for plain values (sorted keys, compact,
# UTF-8 unescaped, control characters as \u00XX, the same short escapes) in ~0.5 us where the
# standard one takes ~9 of a record's ~13 (tests/sync/wire/test_canonical.py compares the two).
# What orjson refuses (an integer beyond 64 bits, a lone surrogate) goes to the reference, which
# encodes it or raises as it always did.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _reference_json(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode("utf-8")


def canonical_json(obj: Any) -> bytes:
    """UTF-8 JSON, sorted keys, no whitespace, integers and strings only."""
    if not _plain(obj):
        _check(obj, "$")  # raises with the path, or passes (a str/int subclass)
        return _reference_json(obj)
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _reference_json(obj)


def genesis_hash(device_id: str) -> str:
    return hashlib.sha256(("kiosk-genesis:" + device_id).encode("utf-8")).hexdigest()


def encode_record(record: dict[str, Any]) -> tuple[bytes, str]:
    """The canonical bytes of a record (which must include prev_hash) and their hex SHA-256."""
    unknown = set(record) - RECORD_KEYS
    if unknown:
        raise CanonicalError(f"unknown record keys: {sorted(unknown)}")
    if "prev_hash" not in record:
        raise CanonicalError("record has no prev_hash")
    body = canonical_json(record)
    return body, hashlib.sha256(body).hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical record (which must include prev_hash)."""
    return encode_record(record)[1]


def sign_hash(private_key: Ed25519PrivateKey, hash_hex: str) -> str:
    return base64.b64encode(private_key.sign(bytes.fromhex(hash_hex))).decode("ascii")


def verify_hash(public_key: Ed25519PublicKey, hash_hex: str, sig_b64: str) -> bool:
    try:
        public_key.verify(base64.b64decode(sig_b64, validate=True), bytes.fromhex(hash_hex))
    except (InvalidSignature, ValueError):
        return False
    return True


def public_key_b64(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def load_public_key_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


# What a record with no canonical form passes on to the next: no signed record chains from it.
BROKEN_LINK = "0" * 64


@dataclass(frozen=True)
class ChainLink:
    """One record of a chain, recomputed: its full form (with prev_hash), bytes, hash, signature check.

    ``record`` is None (and ``error`` says why) when the record has no canonical form.
    """

    record: dict[str, Any] | None
    body: bytes
    hash: str
    signed: bool
    error: CanonicalError | None = None


def chain_links(
    records: Sequence[dict[str, Any]],
    sigs: Sequence[str],
    public_key: Ed25519PublicKey,
    prev_hash: str,
    known: Collection[str] = (),
) -> list[ChainLink]:
    """Recompute each record's hash from ``prev_hash`` on, and check its signature.

    Each record is given *without* prev_hash (it is derived from the record before). A record
    with no canonical form gets a link with ``record=None`` and the next one chains from
    :data:`BROKEN_LINK`. A record whose hash is in ``known`` (hashes the caller already holds
    as verified) counts as signed without verifying it again.
    """
    links = []
    for rec, sig in zip(records, sigs, strict=True):
        full = dict(rec, prev_hash=prev_hash)
        try:
            body, h = encode_record(full)
        except CanonicalError as exc:
            links.append(ChainLink(None, b"", "", False, exc))
            prev_hash = BROKEN_LINK
            continue
        links.append(ChainLink(full, body, h, h in known or verify_hash(public_key, h, sig)))
        prev_hash = h
    return links


def verify_chain(
    records: list[dict[str, Any]], sigs: list[str], public_key: Ed25519PublicKey, prev_hash: str
) -> list[str]:
    """Recompute hashes of consecutive records starting after ``prev_hash``.

    Each record is given *without* prev_hash (it is derived). Returns the hex
    hashes; raises CanonicalError naming the first record whose signature fails.
    """
    hashes = []
    for rec, link in zip(records, chain_links(records, sigs, public_key, prev_hash), strict=True):
        if link.error is not None:
            raise link.error
        if not link.signed:
            raise CanonicalError(f"seq {rec.get('seq')}: signature does not match")
        hashes.append(link.hash)
    return hashes
