"""Payments: payments table and plumbing.

Revision ID: payments_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from prepaid_common.migration_ops import create_plumbing_tables, drop_plumbing_tables, ts

revision = "payments_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_plumbing_tables("payments")
    op.create_table(
        "payments_payments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(64), nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        ts("created_at"),
        sa.UniqueConstraint("method", "reference", name="uq_payments_method_reference"),
    )
    op.create_index("ix_payments_account", "payments_payments", ["account_id", "created_at"])


def downgrade() -> None:
    op.drop_table("payments_payments")
    drop_plumbing_tables("payments")
