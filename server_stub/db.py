"""Storage: SQLAlchemy Core tables, the engine (SQLite or PostgreSQL), transactions and migrations.

Transactions: :func:`write` for anything that writes, :func:`read` for a request that only reads.
On SQLite (the default; WAL mode, ``synchronous=FULL``) a write transaction begins with
``BEGIN IMMEDIATE`` so concurrent writers (several uvicorn workers) queue on the write lock
instead of failing half way, and a read transaction with a deferred ``BEGIN``: in WAL mode it
never waits for a writer. Never open a second connection while a write transaction is open (on
SQLite it would wait on its own lock): load what a request needs first. A plain
``engine.begin()`` / ``engine.connect()`` counts as a write.

PostgreSQL serialises per-device ingest with ``SELECT ... FOR UPDATE`` on the device row; serials
come from ranges a worker reserves with a ``SEQUENCE`` (:mod:`server_stub.leases`), SQLite keeps
the single-row ``UPDATE ... RETURNING``.

A SQLite database file (and its -wal/-shm) is made 0600; the folder is created 0700, and a looser
existing folder is reported in the log. The server's private keys are never stored here
(:mod:`server_stub.keys`); ``server_public_keys`` holds their public halves so a start-up with the
wrong key files is refused.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import make_url

from server_stub.errors import ConfigError

log = logging.getLogger(__name__)

metadata = sa.MetaData()

server_public_keys = sa.Table(
    "server_public_keys",
    metadata,
    sa.Column("name", sa.String(16), primary_key=True),  # "sign" (Ed25519) | "seal" (X25519)
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
sa.Index("uq_lsps_name", sa.func.lower(lsps.c.name), unique=True)

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
    sa.Column("district", sa.String(64), nullable=True),  # for the console's network view (0004)
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
    sa.Column("printer_state", sa.String(32), nullable=True),  # as the last heartbeat said (0004)
    # Kept as leases are granted and records stored (0006): the lease cap's "unused" is
    # serials_leased - tokens_used, without counting the device's records on every request.
    sa.Column("serials_leased", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tokens_used", sa.BigInteger, nullable=False, server_default="0"),  # leased tokens stored
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
    sa.Column("request_id", sa.String(64), nullable=True),  # LeaseRequest.request_id (idempotency)
    sa.Index("ix_leases_device_request", "device_id", "request_id"),
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
    # created_at earlier than the record before it, or ahead of the receive time (within the margin)
    sa.Column("clock_suspect", sa.Boolean, nullable=False, server_default=sa.false()),
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

# Fixed-window counters shared by every worker (server_stub.limits): failed enrollments, lookups.
rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("window_start", sa.BigInteger, nullable=False),  # seconds since the epoch
    sa.Column("count", sa.Integer, nullable=False),
)

# Every token follow-up answered: who asked, for what, when, and what the answer revealed.
token_lookups = sa.Table(
    "token_lookups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("kiosk_code", sa.String(32), nullable=False),
    sa.Column("token", sa.String(80), nullable=False),
    sa.Column("asked_at", sa.BigInteger, nullable=False),
    sa.Column("revealed", sa.String(12), nullable=False),  # full | summary | none
    sa.Index("ix_token_lookups_device_asked", "device_id", "asked_at"),
)


# Monthly commission statements as issued: the signed document's bytes, never changed once written
# (server_stub.statements; migration 0005).
statements = sa.Table(
    "statements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lsp_id", sa.String(32), sa.ForeignKey("lsps.lsp_id"), nullable=False),
    sa.Column("month", sa.String(7), nullable=False),  # YYYY-MM in the server's timezone
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("document", sa.LargeBinary, nullable=False),  # the signed JSON file as downloaded
    sa.UniqueConstraint("lsp_id", "month", name="uq_statements_lsp_month"),
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


_READ_ONLY = "kiosk_read_only"


def _sqlite_begin(conn: Connection) -> None:
    deferred = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed at the end, rolled back on error."""
    with engine.begin() as conn:
        yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read transaction (deferred on SQLite: never waits for a writer). Nothing is written."""
    with engine.connect() as conn:
        conn.execution_options(**{_READ_ONLY: True})
        with conn.begin():
            yield conn


@contextmanager
def _autocommit(conn: Connection) -> Iterator[Connection]:
    """``conn`` in autocommit for the block (PostgreSQL), then back to its default isolation."""
    conn.execution_options(isolation_level="AUTOCOMMIT")
    try:
        with conn.begin():  # no BEGIN or COMMIT reaches the server
            yield conn
    finally:
        conn.execution_options(isolation_level=conn.default_isolation_level)


@contextmanager
def read_only(conn: Connection) -> Iterator[Connection]:
    """A read transaction on an open connection (deferred on SQLite), ended at the end of the
    block, so the same connection can begin a write transaction next.

    On PostgreSQL its statements run in autocommit: each sees what was committed when it began,
    as in the READ COMMITTED transaction it was, without the BEGIN and COMMIT round trips (each
    a few % of a batch's CPU). A caller that needs two reads to agree orders them (see
    :func:`server_stub.ingest.batch.receive`)."""
    if is_postgres(conn):
        with _autocommit(conn):
            yield conn
        return
    conn.execution_options(**{_READ_ONLY: True})
    try:
        with conn.begin():
            yield conn
    finally:
        conn.execution_options(**{_READ_ONLY: False})


@contextmanager
def single_write(conn: Connection) -> Iterator[Connection]:
    """Writes on an open connection that each stand alone (a nonce): on PostgreSQL in autocommit,
    each statement its own transaction (one round trip where BEGIN, the INSERT and COMMIT were
    three); a write transaction elsewhere (``BEGIN IMMEDIATE`` on SQLite)."""
    if is_postgres(conn):
        with _autocommit(conn):
            yield conn
        return
    with conn.begin():
        yield conn


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing; tighten it (and its -wal/-shm) if looser."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if stat.S_IMODE(p.stat().st_mode) & 0o077:
                os.chmod(p, 0o600)
        except FileNotFoundError:
            continue


def private_dir(folder: Path) -> None:
    """Create ``folder`` 0700 if missing (an existing one is left as it is: see :func:`warn_if_open`)."""
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


def warn_if_open(engine: Engine) -> None:
    """Log a warning when the folder of a SQLite database can be read by other users (it may be a
    folder of the operator's choosing, so it is reported, not changed)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return
    folder = Path(database).parent
    if folder.exists() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
        log.warning("%s can be read by other users; make it 0700 (chmod 700)", folder)


def make_engine(url: str, connections: int = 20) -> Engine:
    """An engine for ``url`` with a pool of ``connections`` (no pre-ping: a dead connection fails
    its request with a 503 and is replaced; the pool is sized to the worker's request slots, so
    a request never waits long for one); creates the directory of a SQLite file."""
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"database URL {url!r} is not valid") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            private_dir(Path(parsed.database).parent)
            _private_file(Path(parsed.database))
            # a file database has a queue pool; :memory: has one connection
            pool.update(pool_timeout=10, pool_size=connections, max_overflow=2)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30, "check_same_thread": False}, **pool)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return sa.create_engine(
            parsed, pool_size=connections, max_overflow=2, pool_timeout=10, pool_recycle=1800
        )
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+psycopg://...")


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


@lru_cache(maxsize=32)
def _insert(table: sa.Table) -> sa.Insert:
    return table.insert()


@lru_cache(maxsize=32)
def _copy_statement(table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect) -> str:
    quote = dialect.identifier_preparer.quote
    return f"COPY {quote(table.name)} ({', '.join(quote(n) for n in names)}) FROM STDIN"


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (mappings with the same keys) into ``table``, in the caller's transaction.

    On PostgreSQL one ``COPY ... FROM STDIN`` (psycopg formats the rows in C): an executemany of
    a 50-record batch (records and tokens, 100 rows) cost ~5.5 ms of the worker's CPU, the COPY
    ~1.6 ms. A database error is raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``
    ...), as from any other statement. Elsewhere an executemany.

    Text, not ``FORMAT BINARY`` with ``set_types``: binary formats the rows in ~2/3 of the time
    (~1.4 us a record, under 1% of a batch), but psycopg's binary int4 dumper wraps an integer
    out of range silently (2**31 is stored as -2**31), where PostgreSQL refuses it in text."""
    if not rows:
        return
    if not is_postgres(conn):
        conn.execute(_insert(table), list(rows))
        return
    import psycopg

    names = tuple(rows[0])
    statement = _copy_statement(table, names, conn.dialect)
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[n] for n in names])
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, psycopg.Error) from exc


def _alembic_config(conn: Connection, keys_dir: Path | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("server_stub") / "migrations"))
    cfg.attributes["connection"] = conn
    cfg.attributes["keys_dir"] = keys_dir  # migration 0002 moves keys out of the database to here
    return cfg


def migrate(engine: Engine, keys_dir: Path | None = None) -> None:
    """Bring the schema to the newest migration (safe to run on every start).

    When a migration removed secrets (0002: the private keys), a SQLite file is rebuilt
    (``VACUUM``) and its WAL truncated, so no copy of them is left in free pages."""
    from alembic import command

    with engine.begin() as conn:
        cfg = _alembic_config(conn, keys_dir)
        command.upgrade(cfg, "head")
    if cfg.attributes.get("scrub") and engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
        finally:
            raw.close()


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
