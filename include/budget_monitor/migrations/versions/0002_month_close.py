"""month_close: which months of a fund were closed (the year-end waits for December)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "month_close",
        sa.Column("fund_code", sa.String(length=64), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fund_code", "month", name=op.f("pk_month_close")),
    )


def downgrade() -> None:
    op.drop_table("month_close")
