"""serials from a PostgreSQL sequence of ranges (no hot counter row)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

On PostgreSQL, ``serial_ranges`` hands out the first serial of a fresh range of
``server_stub.leases.SERIAL_RANGE`` serials per ``nextval`` (outside any transaction's locks: a
sequence is never rolled back). It starts where ``serial_counter`` stands, so no serial handed out
before is handed out again. SQLite keeps the counter row. A downgrade moves the counter row past
every range the sequence gave.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SERIAL_RANGE = 100_000  # = server_stub.leases.SERIAL_RANGE (a migration does not import the app)
FIRST_SERIAL = 1

_counter = sa.table("serial_counter", sa.column("id", sa.Integer), sa.column("next_serial", sa.BigInteger))


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    start = conn.execute(sa.select(_counter.c.next_serial).where(_counter.c.id == 1)).scalar()
    start = int(start) if start is not None else FIRST_SERIAL
    op.execute(
        f"CREATE SEQUENCE serial_ranges AS bigint INCREMENT BY {SERIAL_RANGE} START WITH {start} NO CYCLE"
    )


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    last = conn.execute(sa.text("SELECT last_value, is_called FROM serial_ranges")).first()
    if last is not None and last.is_called:
        after = int(last.last_value) + SERIAL_RANGE
        conn.execute(_counter.update().where(_counter.c.id == 1).values(next_serial=after))
    op.execute("DROP SEQUENCE serial_ranges")
