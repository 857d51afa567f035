"""Storage: SQLAlchemy Core tables, the engine (SQLite or PostgreSQL) and migrations.

SQLite (the default) runs in WAL mode with ``synchronous=FULL`` and every transaction
opened with ``BEGIN IMMEDIATE`` so concurrent writers (several uvicorn workers) queue on
the write lock instead of failing half way. PostgreSQL serialises per-device ingest with
``SELECT ... FOR UPDATE`` on the device row and the serial space with a single-row
``UPDATE ... RETURNING``.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url

from server_stub.errors import ConfigError

metadata = sa.MetaData()

server_keys = sa.Table(
    "server_keys",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),  # "sign" (Ed25519) | "seal" (X25519)
    sa.Column("private_raw", sa.LargeBinary, nullable=False),
    sa.Column("public_b64", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

serial_counter = sa.Table(
    "serial_counter",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("next_serial", sa.BigInteger, nullable=False),
)

lsps = sa.Table(
    "lsps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lsp_id", sa.String(32), unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("api_key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

kiosks = sa.Table(
    "kiosks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kiosk_code", sa.String(32), unique=True),
    sa.Column("lsp_id", sa.String(32), sa.ForeignKey("lsps.lsp_id"), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("enrollment_code_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("enrollment_expires_at", sa.BigInteger, nullable=True),
    sa.Column("enrolled_at", sa.BigInteger, nullable=True),
)

devices = sa.Table(
    "devices",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("kiosk_code", sa.String(32), sa.ForeignKey("kiosks.kiosk_code"), nullable=False, index=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("enrolled_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("flagged_at", sa.BigInteger, nullable=True),
    sa.Column("flag_reason", sa.String(200), nullable=True),
    sa.Column("head_seq", sa.BigInteger, nullable=False, default=0),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("last_heartbeat_at", sa.BigInteger, nullable=True),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("lease_id", sa.BigInteger, primary_key=True, autoincrement=False),  # = start_serial
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False, index=True),
    sa.Column("start_serial", sa.BigInteger, nullable=False, unique=True),
    sa.Column("end_serial", sa.BigInteger, nullable=False),
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("sig", sa.String(128), nullable=False),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), sa.ForeignKey("devices.device_id"), nullable=False),
    sa.Column("kiosk_code", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("txn_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("service", sa.String(64), nullable=False),
    sa.Column("amount_paise", sa.BigInteger, nullable=False),
    sa.Column("fee_paise", sa.BigInteger, nullable=False),
    sa.Column("token", sa.String(80), nullable=True, index=True),
    sa.Column("final_token", sa.String(16), nullable=True),
    sa.Column("voids_seq", sa.BigInteger, nullable=True),
    sa.Column("catalog_version", sa.Integer, nullable=True),
    sa.Column("sig", sa.String(128), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),  # canonical JSON with prev_hash
    sa.UniqueConstraint("device_id", "seq", name="uq_records_device_seq"),
    sa.Index("ix_records_kiosk_created", "kiosk_code", "created_at"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token", sa.String(80), primary_key=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),  # leased | provisional | final
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("kiosk_code", sa.String(32), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Column("sig", sa.String(128), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("device_id", "seq", "hash", name="uq_quarantine_device_seq_hash"),
    sa.Index("ix_quarantine_kiosk_created", "kiosk_code", "created_at"),
)

gap_reports = sa.Table(
    "gap_reports",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("kiosk_code", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("first_seen_at", sa.BigInteger, nullable=False),
)

heartbeat_days = sa.Table(
    "heartbeat_days",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD in the server's timezone
    sa.Column("kiosk_code", sa.String(32), nullable=False, index=True),
    sa.Column("first_at", sa.BigInteger, nullable=False),
    sa.Column("last_at", sa.BigInteger, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("head_seq", sa.BigInteger, nullable=False),
    sa.Column("queue_depth", sa.BigInteger, nullable=False),
)

nonces = sa.Table(
    "nonces",
    metadata,
    sa.Column("device_id", sa.String(64), primary_key=True),
    sa.Column("nonce", sa.String(32), primary_key=True),
    sa.Column("expires_at", sa.BigInteger, nullable=False, index=True),
)

catalog_versions = sa.Table(
    "catalog_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("loaded_at", sa.BigInteger, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; creates the directory of a SQLite file."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"database URL {url!r} is not valid") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=10, max_overflow=10)
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...")


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def _alembic_config(conn: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("server_stub") / "migrations"))
    cfg.attributes["connection"] = conn
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (safe to run on every start)."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upsert(
    conn: Connection, table: sa.Table, values: dict[str, Any], keys: list[str], update: dict[str, Any]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET update (SQLite and PostgreSQL)."""
    if is_postgres(conn):
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(table).values(**values)
        conn.execute(pg_stmt.on_conflict_do_update(index_elements=keys, set_=update))
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        lite_stmt = sqlite_insert(table).values(**values)
        conn.execute(lite_stmt.on_conflict_do_update(index_elements=keys, set_=update))


def database_url_for_display(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<invalid url>"


def default_data_dir() -> Path:
    return Path(os.getcwd()) / "server-data"
