"""Catalog versions: every version is kept, so a record's fee and commission follow the version
it was made under (records carry ``catalog_version``).

An admin's catalog is checked like a kiosk's record (:func:`add_version`): never empty, never
silently dropping a service that is in force (the newest version) unless the admin says so
(``allow_removal``), and the difference against the version in force is returned for the CLI to
print (added, removed, fee changed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from server_stub.commission import commission_paise
from server_stub.db import catalog_versions
from server_stub.errors import BadRequest, Conflict
from sync.wire.protocol import Catalog


def bundled_catalog_text() -> str:
    """The sample catalog shipped with the agent (data, read as a resource)."""
    return (resources.files("agent.catalog") / "default.json").read_text(encoding="utf-8")


def parse_catalog(text: str) -> Catalog:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        where = f"line {exc.lineno}" if hasattr(exc, "lineno") else "somewhere"
        raise BadRequest(f"the catalog is not valid JSON ({where})", code="bad_catalog") from None
    try:
        catalog = Catalog.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if where == "services" and first["type"] == "too_short":
            raise BadRequest(
                "the catalog lists no services; every kiosk would lose every service", code="bad_catalog"
            ) from None
        raise BadRequest(f"the catalog is not valid at {where}: {first['msg']}", code="bad_catalog") from None
    for service in catalog.services:
        try:
            commission_paise(service.commission, 0, 0)
        except (KeyError, ValueError, TypeError):
            raise BadRequest(f"service {service.code}: unknown commission rule", code="bad_catalog") from None
    codes = [s.code for s in catalog.services]
    if len(codes) != len(set(codes)):
        raise BadRequest("the catalog lists a service code twice", code="bad_catalog")
    return catalog


def latest_version(conn: Connection) -> int:
    return int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_versions.c.version), 0))).scalar_one()
    )


@dataclass(frozen=True)
class Diff:
    """A new catalog version against the one in force."""

    version: int
    previous: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fee_changed: dict[str, tuple[int, int]] = field(default_factory=dict)  # code -> (old, new) paise

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous": self.previous,
            "added": self.added,
            "removed": self.removed,
            "fee_changed": {k: {"from_paise": a, "to_paise": b} for k, (a, b) in self.fee_changed.items()},
        }


def diff(old: Catalog | None, new: Catalog) -> Diff:
    before = {s.code: s for s in old.services} if old else {}
    after = {s.code: s for s in new.services}
    return Diff(
        version=new.version,
        previous=old.version if old else 0,
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        fee_changed={
            c: (before[c].fee_paise, after[c].fee_paise)
            for c in sorted(set(before) & set(after))
            if before[c].fee_paise != after[c].fee_paise
        },
    )


def add_version(conn: Connection, text: str, now_ms: int, *, allow_removal: bool = False) -> Diff:
    """Store a new catalog version; its ``version`` must be above every stored one, and it may drop
    a service in force only with ``allow_removal``. Returns the difference to the version in force."""
    catalog = parse_catalog(text)
    latest = latest_version(conn)
    if catalog.version <= latest:
        raise Conflict(
            f"catalog version {catalog.version} is not newer than the loaded version {latest}; "
            'raise "version" in the file',
            code="catalog_version_exists",
        )
    change = diff(get_version(conn, latest) if latest else None, catalog)
    if change.removed and not allow_removal:
        raise Conflict(
            f"the catalog drops {len(change.removed)} service(s) in force "
            f"({', '.join(change.removed[:10])}): kiosks would stop offering them; "
            "load it with --allow-removal if that is meant",
            code="catalog_drops_services",
        )
    conn.execute(
        catalog_versions.insert().values(
            version=catalog.version, loaded_at=now_ms, body=catalog.model_dump_json()
        )
    )
    return change


def get_version(conn: Connection, version: int) -> Catalog | None:
    """A stored version (None when missing, or unreadable: e.g. an empty one stored before empty
    catalogs were refused; kiosks keep the one they have)."""
    body = conn.execute(
        sa.select(catalog_versions.c.body).where(catalog_versions.c.version == version)
    ).scalar_one_or_none()
    if body is None:
        return None
    try:
        return Catalog.model_validate_json(body)
    except ValidationError:
        return None


@dataclass(frozen=True)
class Terms:
    """What the server charges and pays for a service in one catalog version."""

    fee_paise: int
    commission: dict[str, Any]


def terms_by_version(conn: Connection) -> dict[int, dict[str, Terms]]:
    """{version: {service code: terms}} for every stored version (an unreadable one is empty)."""
    out: dict[int, dict[str, Terms]] = {}
    for row in conn.execute(sa.select(catalog_versions.c.version, catalog_versions.c.body)):
        try:
            services = json.loads(row.body)["services"]
            out[row.version] = {s["code"]: Terms(int(s["fee_paise"]), s["commission"]) for s in services}
        except (ValueError, KeyError, TypeError):
            out[row.version] = {}
    return out
