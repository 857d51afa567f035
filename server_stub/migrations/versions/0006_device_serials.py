"""devices.serials_leased and devices.tokens_used: a device's unused serials without counting its
records on every lease request

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: no table rebuild (other tables' rows point at devices).
    op.add_column("devices", sa.Column("serials_leased", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("devices", sa.Column("tokens_used", sa.BigInteger(), nullable=False, server_default="0"))
    # What the lease cap counted until now, counted once more.
    op.execute(
        "UPDATE devices SET"
        " serials_leased = (SELECT COALESCE(SUM(l.end_serial - l.start_serial), 0) FROM leases l"
        " WHERE l.device_id = devices.device_id),"
        " tokens_used = (SELECT COUNT(*) FROM records r WHERE r.device_id = devices.device_id"
        " AND r.kind = 'sale' AND r.token IS NOT NULL AND r.token NOT LIKE 'P%')"
    )


def downgrade() -> None:
    # DROP COLUMN in place (SQLite >= 3.35): a batch rebuild would drop the devices table, which
    # the rows of leases and records refer to.
    op.execute("ALTER TABLE devices DROP COLUMN tokens_used")
    op.execute("ALTER TABLE devices DROP COLUMN serials_leased")
