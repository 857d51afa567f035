"""server_stub.db.insert_rows: a COPY on PostgreSQL, an executemany on SQLite, the same rows and
the same errors either way."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from server_stub import admin
from server_stub.db import (
    devices,
    insert_rows,
    kiosks,
    lsps,
    make_engine,
    quarantine,
    read_only,
    records,
    single_write,
    tokens,
)

# What COPY's text format has to escape (tab, newline, backslash, the null marker), non-ASCII,
# NUL-free bytes with every other value, a NULL-able column left out.
AWKWARD = ["tab\there", "line\nbreak", "back\\slash", "\\N", "हिन्दी ₹", "", "cr\r", "\\x00", "\u2028"]


def _rows(n: int) -> list[dict[str, object]]:
    return [
        {
            "device_id": "dev-1",
            "kiosk_code": AWKWARD[i % len(AWKWARD)],
            "seq": i + 1,
            "hash": f"{i:064x}",
            "reason": "fork",
            "created_at": 2**53 - 1 - i,
            "received_at": i,
            "sig": AWKWARD[(i + 1) % len(AWKWARD)],
            "body": bytes(range(1, 256)) + i.to_bytes(2, "big"),
        }
        for i in range(n)
    ]


@pytest.fixture
def engine(db_url: str, tmp_path: Path) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    admin.init_server(eng, int(time.time() * 1000), tmp_path / "keys")
    yield eng
    eng.dispose()


def test_rows_come_back_as_written(engine: sa.Engine) -> None:
    rows = _rows(40)
    with engine.begin() as conn:
        insert_rows(conn, quarantine, rows)
        insert_rows(conn, quarantine, [])  # nothing to write is a no-op
    cols = [quarantine.c[name] for name in rows[0]]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(*cols).order_by(quarantine.c.seq)).all()
    assert [dict(r._mapping) for r in stored] == rows


def _device(conn: sa.Connection) -> None:
    conn.execute(lsps.insert().values(lsp_id="L1", name="LSP", api_key_hash="h", created_at=0))
    conn.execute(kiosks.insert().values(kiosk_code="K1", lsp_id="L1", name="Shop", created_at=0))
    conn.execute(
        devices.insert().values(
            device_id="dev-1", kiosk_code="K1", public_key="k", enrolled_at=0, head_seq=0, head_hash="0"
        )
    )


def _record_rows() -> list[dict[str, object]]:
    """Every column type of ``records`` (bigint, integer, varchar, bytea, boolean), NULL beside
    the empty string, integers at the ends of their ranges, bytes with NUL and every other byte."""
    ends = [0, 1, 2**31 - 1, 2**53 + 1, 2**63 - 1, -(2**63)]
    return [
        {
            "device_id": "dev-1",
            "kiosk_code": AWKWARD[i % len(AWKWARD)],
            "seq": i + 1,
            "hash": f"{i:064x}",
            "txn_id": AWKWARD[(i + 1) % len(AWKWARD)],
            "kind": "sale" if i % 2 else "void",
            "created_at": ends[i % len(ends)],
            "received_at": ends[(i + 1) % len(ends)],
            "service": AWKWARD[(i + 2) % len(AWKWARD)],
            "amount_paise": ends[(i + 2) % len(ends)],
            "fee_paise": ends[(i + 3) % len(ends)],
            "token": [None, "", "P-K1-1", "हि"][i % 4],
            "final_token": [None, ""][i % 2],
            "voids_seq": [None, 2**63 - 1, 0][i % 3],
            "catalog_version": [None, 2**31 - 1, -(2**31), 0][i % 4],
            "sig": AWKWARD[(i + 3) % len(AWKWARD)],
            "body": bytes(range(256)) * (i % 3) + b"\\\t\n\x00",
            "clock_suspect": i % 2 == 0,
        }
        for i in range(3 * len(AWKWARD))
    ]


def test_every_column_type_comes_back_byte_for_byte(engine: sa.Engine) -> None:
    """The COPY (PostgreSQL) and the executemany (SQLite) store the same values: text escapes,
    NULL vs empty string, the integer ranges, raw bytes, booleans."""
    rows = _record_rows()
    with engine.begin() as conn:
        _device(conn)
        insert_rows(conn, records, rows)
    cols = [records.c[name] for name in rows[0]]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(*cols).order_by(records.c.seq)).all()
    assert [dict(r._mapping) for r in stored] == rows


@pytest.mark.parametrize(
    "column, value", [("catalog_version", 2**31), ("created_at", 2**63), ("seq", -(2**63) - 1)]
)
def test_a_value_out_of_its_columns_range_is_refused_and_nothing_is_kept(
    engine: sa.Engine, column: str, value: int
) -> None:
    """PostgreSQL refuses it (a binary COPY would not: psycopg's binary int4 dumper wraps 2**31
    round to -2**31 without a word)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's integers have no column width")
    rows = _record_rows()[:3]
    rows[2] = dict(rows[2], **{column: value})
    with pytest.raises(sa.exc.DataError), engine.begin() as conn:  # as PostgreSQL names it
        _device(conn)
        insert_rows(conn, records, rows)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(records)).scalar() == 0


def test_a_constraint_breach_is_sqlalchemys_integrity_error_and_nothing_is_kept(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        insert_rows(conn, tokens, [{"token": "T1", "device_id": "d", "seq": 1, "kind": "leased"}])
    twice = [{"token": t, "device_id": "d", "seq": 2, "kind": "leased"} for t in ("T2", "T1")]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_rows(conn, tokens, twice)
    with engine.connect() as conn:
        assert conn.execute(sa.select(tokens.c.token)).scalars().all() == ["T1"]


def test_after_a_read_only_block_the_connection_writes_in_a_transaction_again(engine: sa.Engine) -> None:
    """read_only (autocommit on PostgreSQL) hands the connection back transactional: a write
    transaction that fails leaves nothing behind."""
    row = {"token": "T9", "device_id": "d", "seq": 1, "kind": "leased"}
    with engine.connect() as conn:
        with read_only(conn):
            assert conn.execute(sa.select(tokens.c.token)).all() == []
        with pytest.raises(RuntimeError), conn.begin():
            insert_rows(conn, tokens, [row])
            raise RuntimeError("the batch fails after its rows")
        with read_only(conn):
            assert conn.execute(sa.select(tokens.c.token)).all() == []


def test_single_write_statements_stand_alone_on_postgresql_and_not_on_sqlite(engine: sa.Engine) -> None:
    """single_write (a resend's nonce): on PostgreSQL each statement is its own transaction (one
    round trip), so a failure after it keeps what it wrote; on SQLite the block is one write
    transaction. Either way the connection writes in a transaction again afterwards."""
    with engine.connect() as conn:
        with pytest.raises(RuntimeError), single_write(conn):
            insert_rows(conn, tokens, [{"token": "T1", "device_id": "d", "seq": 1, "kind": "leased"}])
            raise RuntimeError("after the statement")
        with pytest.raises(RuntimeError), conn.begin():
            insert_rows(conn, tokens, [{"token": "T2", "device_id": "d", "seq": 2, "kind": "leased"}])
            raise RuntimeError("after the statement")
    with engine.connect() as conn:
        kept = conn.execute(sa.select(tokens.c.token)).scalars().all()
    assert kept == (["T1"] if engine.dialect.name == "postgresql" else [])
