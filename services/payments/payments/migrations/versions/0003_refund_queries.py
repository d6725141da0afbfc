"""Payments: when a refund was sent to its provider and when to ask about it again.

Revision ID: payments_0003
Revises: payments_0002
"""

from alembic import op
from prepaid_common.migration_ops import ts

revision = "payments_0003"
down_revision = "payments_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payments_refunds") as batch:
        batch.add_column(ts("sent_at", nullable=True))
        batch.add_column(ts("next_query_at", nullable=True))
    op.create_index("ix_payments_refunds_open", "payments_refunds", ["status", "next_query_at"])


def downgrade() -> None:
    op.drop_index("ix_payments_refunds_open", "payments_refunds")
    with op.batch_alter_table("payments_refunds") as batch:
        batch.drop_column("next_query_at")
        batch.drop_column("sent_at")
