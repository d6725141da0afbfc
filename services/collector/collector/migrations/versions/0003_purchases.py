"""Collector: pending commands may be purchases for local-prepaid meters.

Revision ID: collector_0003
Revises: collector_0002

A purchase (action ``credit``) carries its amount (fen) and purchase count; the collector
checks both against the sealed envelope before writing them to the meter.
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0003"
down_revision = "collector_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("collector_pending_commands", sa.Column("amount", sa.BigInteger(), nullable=True))
    op.add_column(
        "collector_pending_commands", sa.Column("purchase_count", sa.Integer(), nullable=True)
    )


def downgrade() -> None:
    # SQLite 3.35+ drops a column in place.
    op.drop_column("collector_pending_commands", "purchase_count")
    op.drop_column("collector_pending_commands", "amount")
