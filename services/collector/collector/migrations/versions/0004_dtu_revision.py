"""Collector: a DTU's settings revision, so bus loops reload only when something changed.

Revision ID: collector_0004
Revises: collector_0003

Every registration that changes a DTU or moves a meter onto or off it bumps the DTU's
revision; each replica compares revisions once per supervision cycle and reloads only the
loops whose DTU changed, instead of every loop re-reading its settings every interval.
"""

import sqlalchemy as sa
from alembic import op

revision = "collector_0004"
down_revision = "collector_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "collector_dtus",
        sa.Column("revision", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("collector_dtus", "revision")
