"""Migration 0004 on a database that already has kiosks and devices (at 0002), and back."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from server_stub import admin
from server_stub.db import _alembic_config, kiosks, make_engine, migrate, schema_revision


def test_0004_adds_the_console_tables_and_keeps_existing_kiosks(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    keys_dir = tmp_path / "keys"
    admin.init_server(engine, 1, keys_dir)
    with engine.begin() as conn:
        command.downgrade(_alembic_config(conn, keys_dir), "0002")
    assert schema_revision(engine) == "0002"
    with engine.begin() as conn:
        assert "console_users" not in sa.inspect(conn).get_table_names()
        conn.execute(
            sa.table("lsps", *map(sa.column, ("lsp_id", "name", "api_key_hash", "created_at")))
            .insert()
            .values(lsp_id="LSP0001", name="A", api_key_hash="h", created_at=1)
        )
        old_kiosks = sa.table("kiosks", *map(sa.column, ("kiosk_code", "lsp_id", "name", "created_at")))
        conn.execute(old_kiosks.insert().values(kiosk_code="K1", lsp_id="LSP0001", name="S", created_at=1))
    migrate(engine, keys_dir)
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        assert {"console_users", "console_sessions", "audit_log"} <= names
        assert conn.execute(sa.select(kiosks.c.name, kiosks.c.district)).all() == [("S", None)]
        columns = {c["name"] for c in sa.inspect(conn).get_columns("devices")}
        assert "printer_state" in columns
    engine.dispose()
