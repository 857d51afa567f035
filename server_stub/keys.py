"""The server's own keys: Ed25519 (signs leases) and X25519 (opens sealed Aadhaar numbers).

They live **outside the database**: two key files in a folder of their own
(:meth:`server_stub.config.ServerConfig.keys_path`, made 0700; the files 0600, PKCS#8 PEM), or,
for either key, an environment variable holding the raw 32-byte private key in base64:
``KIOSK_SERVER_SIGNING_KEY`` and ``KIOSK_SERVER_SEAL_KEY`` (a secret store can inject them; then
no file is written for that key).

``kiosk-server init`` (and ``serve``, which runs it first) calls :func:`ensure_keys`: it creates a
missing key only for a database that has never had one, and checks the keys against the public
halves the database records (``server_public_keys``), so a start-up with the wrong or missing
files is refused instead of silently minting new keys that no kiosk knows. The app loads the keys
once at start-up (:func:`load_keys`) and keeps them in memory.

A database from before this layout kept the private keys in a ``server_keys`` table: migration
0002 moves them to the key files (:func:`adopt_legacy`) and drops the table.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy.engine import Connection

from server_stub.db import private_dir, server_public_keys
from server_stub.errors import ConfigError
from sync.wire.fingerprint import key_fingerprint, server_fingerprint

KeyName = Literal["sign", "seal"]
PrivateKey = Ed25519PrivateKey | X25519PrivateKey
FILES: dict[KeyName, str] = {"sign": "signing.key", "seal": "seal.key"}
ENV: dict[KeyName, str] = {"sign": "KIOSK_SERVER_SIGNING_KEY", "seal": "KIOSK_SERVER_SEAL_KEY"}
_TYPES: dict[KeyName, type[PrivateKey]] = {"sign": Ed25519PrivateKey, "seal": X25519PrivateKey}


@dataclass(frozen=True)
class ServerKeys:
    sign: Ed25519PrivateKey
    seal: X25519PrivateKey
    sign_public_b64: str
    seal_public_b64: str

    @classmethod
    def of(cls, sign: Ed25519PrivateKey, seal: X25519PrivateKey) -> ServerKeys:
        return cls(sign, seal, public_b64(sign), public_b64(seal))

    @classmethod
    def generate(cls) -> ServerKeys:
        """A throwaway pair (tests, the OpenAPI document)."""
        return cls.of(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    @property
    def fingerprint(self) -> str:
        """What an enrollment is pinned to: both public keys (:mod:`sync.wire.fingerprint`)."""
        return server_fingerprint(self.sign_public_b64, self.seal_public_b64)

    def fingerprints(self) -> dict[str, str]:
        return {
            "sign": key_fingerprint(base64.b64decode(self.sign_public_b64)),
            "seal": key_fingerprint(base64.b64decode(self.seal_public_b64)),
            "server": self.fingerprint,
        }


@dataclass(frozen=True)
class KeySource:
    """Where the keys come from: the folder, and any key given in the environment (read once)."""

    folder: Path
    env_keys: Mapping[str, str]

    @classmethod
    def at(cls, folder: Path, env: Mapping[str, str] | None = None) -> KeySource:
        env = os.environ if env is None else env
        return cls(folder, {name: env[var] for name, var in ENV.items() if env.get(var)})

    def path(self, name: KeyName) -> Path:
        return self.folder / FILES[name]


def raw_private(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_b64(key: PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def _from_raw(name: KeyName, raw: bytes) -> PrivateKey:
    return _TYPES[name].from_private_bytes(raw)


def _from_env(name: KeyName, text: str) -> PrivateKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        if len(raw) != 32:
            raise ValueError
    except (ValueError, binascii.Error):
        raise ConfigError(f"{ENV[name]} is not a raw 32-byte private key in base64") from None
    return _from_raw(name, raw)


def _from_file(name: KeyName, path: Path) -> PrivateKey | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path} ({exc.__class__.__name__})") from None
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} is not a PEM private key") from None
    if not isinstance(key, _TYPES[name]):
        raise ConfigError(f"{path} holds the wrong kind of key (expected {_TYPES[name].__name__})")
    return key


def _read(source: KeySource, name: KeyName) -> PrivateKey | None:
    if name in source.env_keys:
        return _from_env(name, source.env_keys[name])
    return _from_file(name, source.path(name))


def write_key_file(path: Path, key: PrivateKey) -> None:
    """Atomically, 0600 from creation, in a 0700 folder."""
    private_dir(path.parent)
    if stat.S_IMODE(path.parent.stat().st_mode) & 0o077:
        os.chmod(path.parent, 0o700)  # the keys folder is ours alone
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_keys(source: KeySource) -> ServerKeys:
    """Both keys from the environment or the files; ConfigError when one is missing or unreadable."""
    found = {name: _read(source, name) for name in FILES}
    missing = [str(source.path(n)) for n, k in found.items() if k is None]
    if missing:
        raise ConfigError(f"the server key file {missing[0]} is missing; run `kiosk-server init`")
    sign, seal = found["sign"], found["seal"]
    assert isinstance(sign, Ed25519PrivateKey) and isinstance(seal, X25519PrivateKey)
    return ServerKeys.of(sign, seal)


def _recorded(conn: Connection) -> dict[str, str]:
    rows = conn.execute(sa.select(server_public_keys.c.name, server_public_keys.c.public_b64))
    return {row.name: row.public_b64 for row in rows}


def ensure_keys(conn: Connection, source: KeySource, now_ms: int) -> bool:
    """Create what a new database lacks, check the rest against the database. True when created.

    Refuses (ConfigError) a key that does not match the database's record of it, and a database
    that has keys on record whose private halves are nowhere to be found."""
    recorded = _recorded(conn)
    created = False
    for name in FILES:
        key = _read(source, name)
        if key is None:
            if name in recorded:
                raise ConfigError(
                    f"this database's {name} key is not in {source.path(name)} (nor {ENV[name]}); "
                    "restore the key files from your backup"
                )
            key = _TYPES[name].generate()
            write_key_file(source.path(name), key)
            created = True
        pub = public_b64(key)
        if name not in recorded:
            conn.execute(server_public_keys.insert().values(name=name, public_b64=pub, created_at=now_ms))
        elif recorded[name] != pub:
            raise ConfigError(f"the {name} key in {source.path(name)} is not this database's key")
    return created


def recorded_fingerprints(conn: Connection) -> dict[str, str]:
    """The fingerprints of the keys this database was set up with (from their public halves)."""
    recorded = _recorded(conn)
    if set(recorded) != set(FILES):
        raise ConfigError("the server has no keys yet; run `kiosk-server init`")
    return {
        "sign": key_fingerprint(base64.b64decode(recorded["sign"])),
        "seal": key_fingerprint(base64.b64decode(recorded["seal"])),
        "server": server_fingerprint(recorded["sign"], recorded["seal"]),
    }


def check_recorded(conn: Connection, keys: ServerKeys) -> None:
    """Refuse to serve with keys other than the ones the database was set up with."""
    recorded = _recorded(conn)
    for name, pub in (("sign", keys.sign_public_b64), ("seal", keys.seal_public_b64)):
        if name in recorded and recorded[name] != pub:
            raise ConfigError(f"the server's {name} key is not the one this database was set up with")


def adopt_legacy(folder: Path, private_raw: Mapping[str, bytes]) -> None:
    """Migration 0002: write keys that were kept in the database to key files (an existing file
    must hold the same key)."""
    for name, raw in private_raw.items():
        if name not in FILES:
            continue
        kname: KeyName = "sign" if name == "sign" else "seal"
        key = _from_raw(kname, raw)
        path = folder / FILES[kname]
        existing = _from_file(kname, path)
        if existing is None:
            write_key_file(path, key)
        elif raw_private(existing) != raw:
            raise ConfigError(f"{path} holds another key than the database; move it away and run init again")


def read_legacy(folder: Path) -> dict[str, bytes]:
    """The raw private keys from the files (to downgrade below migration 0002)."""
    out: dict[str, bytes] = {}
    for name in FILES:
        key = _from_file(name, folder / FILES[name])
        if key is not None:
            out[name] = raw_private(key)
    return out
