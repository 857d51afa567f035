"""monthly commission statements (signed, stored once issued)

Revision ID: 0005
Revises: 0004 (re-chained in the i15a merge: the console's 0004 comes first)
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("lsp_id", sa.String(length=32), sa.ForeignKey("lsps.lsp_id"), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.LargeBinary(), nullable=False),
        sa.UniqueConstraint("lsp_id", "month", name="uq_statements_lsp_month"),
    )


def downgrade() -> None:
    op.drop_table("statements")
