"""What the DOIT&C operator does: set up, LSPs (add, list, rotate a key), kiosks (add, list),
devices (list, revoke, reinstate). The CLI is a thin layer over these functions, and a console
can be another: every function that acts takes the acting person (:class:`Actor`).

LSP names are unique (ignoring case). Messages never repeat what was typed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from server_stub import catalog
from server_stub.config import default_keys_dir
from server_stub.db import devices, kiosks, lsps, migrate, serial_counter, warn_if_open, write
from server_stub.errors import BadRequest, Conflict, NotFound
from server_stub.keys import KeySource, ensure_keys

FIRST_SERIAL = 1
_ENROLL_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_enrollment_code(code: str) -> str:
    return code.replace("-", "").replace(" ", "").upper()


@dataclass(frozen=True)
class Actor:
    """Who does an admin action (the CLI passes the OS user; a console will pass its user)."""

    name: str
    role: str = "doitc_admin"


CLI = Actor("cli")


@dataclass(frozen=True)
class NewLsp:
    lsp_id: str
    api_key: str


@dataclass(frozen=True)
class NewKiosk:
    kiosk_code: str
    enrollment_code: str
    expires_at_ms: int


def init_server(engine: Engine, now_ms: int, keys_dir: Path | None = None) -> bool:
    """Migrate, create (or check) the server keys, the serial space and catalog version 1.
    True on first run. ``keys_dir`` defaults to :func:`server_stub.config.default_keys_dir`."""
    folder = keys_dir or default_keys_dir(engine.url.render_as_string(hide_password=False))
    warn_if_open(engine)
    migrate(engine, folder)
    with write(engine) as conn:
        created = ensure_keys(conn, KeySource.at(folder), now_ms)
        if conn.execute(sa.select(serial_counter.c.id)).first() is None:
            conn.execute(serial_counter.insert().values(id=1, next_serial=FIRST_SERIAL))
        if catalog.latest_version(conn) == 0:
            catalog.add_version(conn, catalog.bundled_catalog_text(), now_ms)
    return created


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or any(ord(c) < 32 for c in name):
        raise BadRequest("a name must be 1 to 200 printable characters")
    return name


def _lsp_named(conn: Connection, name: str) -> str | None:
    return conn.execute(sa.select(lsps.c.lsp_id).where(sa.func.lower(lsps.c.name) == name.lower())).scalar()


def create_lsp(conn: Connection, name: str, now_ms: int, *, actor: Actor = CLI) -> NewLsp:
    name = _clean_name(name)
    taken = _lsp_named(conn, name)
    if taken is not None:
        raise Conflict(f"an LSP with that name already exists ({taken})", code="lsp_name_taken")
    api_key = "lsk_" + secrets.token_urlsafe(32)
    row_id = conn.execute(
        lsps.insert().values(name=name, api_key_hash=sha256_hex(api_key), created_at=now_ms)
    ).inserted_primary_key[0]  # type: ignore[index]
    lsp_id = f"LSP{row_id:04d}"
    conn.execute(lsps.update().where(lsps.c.id == row_id).values(lsp_id=lsp_id))
    return NewLsp(lsp_id, api_key)


def lsp_exists(conn: Connection, lsp_id: str) -> bool:
    return conn.execute(sa.select(lsps.c.id).where(lsps.c.lsp_id == lsp_id)).first() is not None


def rotate_lsp_key(conn: Connection, lsp_id: str, now_ms: int, *, actor: Actor = CLI) -> NewLsp:
    """A new API key for the LSP (printed once); the old one stops working at once."""
    api_key = "lsk_" + secrets.token_urlsafe(32)
    done = conn.execute(lsps.update().where(lsps.c.lsp_id == lsp_id).values(api_key_hash=sha256_hex(api_key)))
    if done.rowcount != 1:
        raise NotFound("no such LSP; see `kiosk-server lsp list`", code="unknown_lsp")
    return NewLsp(lsp_id, api_key)


def _new_enrollment_code() -> tuple[str, str]:
    """(the code as shown, XXXX-XXXX-XXXX; its hash as stored)."""
    raw = "".join(secrets.choice(_ENROLL_ALPHABET) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4)), sha256_hex(raw)


def clean_district(district: str | None) -> str | None:
    if district is None:
        return None
    district = district.strip()
    if not district or len(district) > 64 or any(ord(c) < 32 for c in district):
        raise BadRequest("a district must be 1 to 64 printable characters")
    return district


def create_kiosk(
    conn: Connection,
    lsp_id: str,
    name: str,
    now_ms: int,
    ttl_hours: int,
    *,
    actor: Actor = CLI,
    district: str | None = None,
) -> NewKiosk:
    name = _clean_name(name)
    district = clean_district(district)
    if not lsp_exists(conn, lsp_id):
        raise NotFound("no such LSP; see `kiosk-server lsp list`", code="unknown_lsp")
    code, code_hash = _new_enrollment_code()
    expires = now_ms + ttl_hours * 3600 * 1000
    row_id = conn.execute(
        kiosks.insert().values(
            lsp_id=lsp_id,
            name=name,
            district=district,
            created_at=now_ms,
            enrollment_code_hash=code_hash,
            enrollment_expires_at=expires,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    kiosk_code = f"K{10_000_000 + row_id}"
    conn.execute(kiosks.update().where(kiosks.c.id == row_id).values(kiosk_code=kiosk_code))
    return NewKiosk(kiosk_code, code, expires)


def issue_enrollment_code(
    conn: Connection, kiosk_code: str, now_ms: int, ttl_hours: int, *, actor: Actor = CLI
) -> NewKiosk:
    """A new one-time enrollment code for a kiosk (a replacement PC, or a code that expired unused);
    any earlier code stops working. Devices already enrolled stay enrolled."""
    code, code_hash = _new_enrollment_code()
    expires = now_ms + ttl_hours * 3600 * 1000
    done = conn.execute(
        kiosks.update()
        .where(kiosks.c.kiosk_code == kiosk_code)
        .values(enrollment_code_hash=code_hash, enrollment_expires_at=expires, enrolled_at=None)
    )
    if done.rowcount != 1:
        raise NotFound("no such kiosk; see `kiosk-server kiosk list`", code="unknown_kiosk")
    return NewKiosk(kiosk_code, code, expires)


def expire_enrollment_code(conn: Connection, kiosk_code: str, now_ms: int, *, actor: Actor = CLI) -> None:
    """End a kiosk's unused enrollment code now."""
    done = conn.execute(
        kiosks.update()
        .where(kiosks.c.kiosk_code == kiosk_code, kiosks.c.enrollment_code_hash.is_not(None))
        .values(enrollment_code_hash=None, enrollment_expires_at=now_ms)
    )
    if done.rowcount != 1:
        raise NotFound("that kiosk has no enrollment code to expire", code="no_enrollment_code")


def _device_ids(conn: Connection, ident: str) -> tuple[sa.ColumnElement[bool], list[str]]:
    cond = sa.or_(devices.c.device_id == ident, devices.c.kiosk_code == ident)
    found = [r.device_id for r in conn.execute(sa.select(devices.c.device_id).where(cond))]
    if not found:
        raise NotFound("no such device or kiosk; see `kiosk-server device list`", code="unknown_device")
    return cond, found


def revoke_device(conn: Connection, ident: str, now_ms: int, *, actor: Actor = CLI) -> list[str]:
    """Revoke a device by its device id, or every device of a kiosk by its K-code."""
    cond, found = _device_ids(conn, ident)
    conn.execute(devices.update().where(cond, devices.c.revoked_at.is_(None)).values(revoked_at=now_ms))
    return found


def reinstate_device(conn: Connection, ident: str, now_ms: int, *, actor: Actor = CLI) -> list[str]:
    """Undo a revocation (a device id, or every device of a K-code); the fork flag, if any, stays."""
    cond, found = _device_ids(conn, ident)
    conn.execute(devices.update().where(cond).values(revoked_at=None))
    return found
