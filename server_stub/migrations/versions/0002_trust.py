"""keys out of the database; lease request ids; clock-suspect records; token lookup audit;
shared rate windows; unique LSP names

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

The private keys move from the ``server_keys`` table to key files in the keys folder that
``server_stub.db.migrate`` hands over (``kiosk-server init`` and ``serve`` pass the configured
one); only their public halves stay, in ``server_public_keys``. ``migrate`` then rebuilds a SQLite
file so no free page keeps a copy. LSPs whose names differ only in case get their id appended
before the unique index is made.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_legacy = sa.table(
    "server_keys",
    sa.column("name", sa.String),
    sa.column("private_raw", sa.LargeBinary),
    sa.column("public_b64", sa.String),
    sa.column("created_at", sa.BigInteger),
)
_public = sa.table(
    "server_public_keys",
    sa.column("name", sa.String),
    sa.column("public_b64", sa.String),
    sa.column("created_at", sa.BigInteger),
)
_lsps = sa.table(
    "lsps", sa.column("id", sa.Integer), sa.column("lsp_id", sa.String), sa.column("name", sa.String)
)


def _keys_dir() -> Path | None:
    folder = op.get_context().config.attributes.get("keys_dir")  # type: ignore[union-attr]
    return None if folder is None else Path(folder)


def _move_keys_out() -> None:
    from server_stub.keys import adopt_legacy

    bind = op.get_bind()
    op.create_table(
        "server_public_keys",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("public_b64", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    rows = bind.execute(sa.select(_legacy)).all()
    if rows:
        folder = _keys_dir()
        if folder is None:
            raise RuntimeError(
                "this database holds the server keys: run `kiosk-server init` to move them out"
            )
        adopt_legacy(folder, {r.name: r.private_raw for r in rows})  # files first, then the rows go
        bind.execute(
            _public.insert(),
            [{"name": r.name, "public_b64": r.public_b64, "created_at": r.created_at} for r in rows],
        )
        op.get_context().config.attributes["scrub"] = True  # type: ignore[union-attr]
    op.drop_table("server_keys")


def _unique_lsp_names() -> None:
    bind = op.get_bind()
    seen: set[str] = set()
    for row in bind.execute(sa.select(_lsps).order_by(_lsps.c.id)).all():
        key = row.name.lower()
        if key in seen:
            bind.execute(_lsps.update().where(_lsps.c.id == row.id).values(name=f"{row.name} ({row.lsp_id})"))
        seen.add(key)
    op.create_index("uq_lsps_name", "lsps", [sa.text("lower(name)")], unique=True)


def upgrade() -> None:
    _move_keys_out()
    op.create_table(
        "rate_windows",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "token_lookups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kiosk_code", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=80), nullable=False),
        sa.Column("asked_at", sa.BigInteger(), nullable=False),
        sa.Column("revealed", sa.String(length=12), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_token_lookups_device_asked", "token_lookups", ["device_id", "asked_at"])
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_leases_device_request", ["device_id", "request_id"], unique=False)
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("clock_suspect", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _unique_lsp_names()  # last: batch mode can't reflect an expression index


def downgrade() -> None:
    from server_stub.keys import read_legacy

    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_column("clock_suspect")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index("ix_leases_device_request")
        batch_op.drop_column("request_id")
    op.drop_index("ix_token_lookups_device_asked", table_name="token_lookups")
    op.drop_table("token_lookups")
    op.drop_table("rate_windows")
    op.drop_index("uq_lsps_name", table_name="lsps")
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(length=16), nullable=False),
        sa.Column("private_raw", sa.LargeBinary(), nullable=False),
        sa.Column("public_b64", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    bind = op.get_bind()
    folder = _keys_dir()
    private = read_legacy(folder) if folder is not None else {}
    rows = bind.execute(sa.select(_public)).all()
    if rows and set(private) != {r.name for r in rows}:
        raise RuntimeError("the key files are needed to downgrade; give the keys folder")
    for r in rows:
        bind.execute(
            _legacy.insert().values(
                name=r.name, private_raw=private[r.name], public_b64=r.public_b64, created_at=r.created_at
            )
        )
    op.drop_table("server_public_keys")
