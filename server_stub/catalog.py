"""Catalog versions: every version is kept, so a record's commission follows the rule in force
when it was made (records carry ``catalog_version``)."""

from __future__ import annotations

import json
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
        raise BadRequest(f"the catalog is not valid JSON: {exc}", code="bad_catalog") from None
    try:
        catalog = Catalog.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadRequest(f"the catalog is not valid at {where}: {first['msg']}", code="bad_catalog") from None
    for service in catalog.services:
        try:
            commission_paise(service.commission, 0, 0)
        except (KeyError, ValueError, TypeError):
            raise BadRequest(
                f"service {service.code}: unknown commission rule {service.commission!r}", code="bad_catalog"
            ) from None
    codes = [s.code for s in catalog.services]
    if len(codes) != len(set(codes)):
        raise BadRequest("the catalog lists a service code twice", code="bad_catalog")
    return catalog


def latest_version(conn: Connection) -> int:
    return int(
        conn.execute(sa.select(sa.func.coalesce(sa.func.max(catalog_versions.c.version), 0))).scalar_one()
    )


def add_version(conn: Connection, text: str, now_ms: int) -> int:
    """Store a new catalog version; its ``version`` must be above every stored one."""
    catalog = parse_catalog(text)
    latest = latest_version(conn)
    if catalog.version <= latest:
        raise Conflict(
            f"catalog version {catalog.version} is not newer than the loaded version {latest}; "
            'raise "version" in the file',
            code="catalog_version_exists",
        )
    conn.execute(
        catalog_versions.insert().values(
            version=catalog.version, loaded_at=now_ms, body=catalog.model_dump_json()
        )
    )
    return catalog.version


def get_version(conn: Connection, version: int) -> Catalog | None:
    body = conn.execute(
        sa.select(catalog_versions.c.body).where(catalog_versions.c.version == version)
    ).scalar_one_or_none()
    return None if body is None else Catalog.model_validate_json(body)


def commission_rules(conn: Connection) -> dict[int, dict[str, dict[str, Any]]]:
    """{version: {service code: commission rule}} for every stored version."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for row in conn.execute(sa.select(catalog_versions.c.version, catalog_versions.c.body)):
        doc = json.loads(row.body)
        out[row.version] = {s["code"]: s["commission"] for s in doc["services"]}
    return out
